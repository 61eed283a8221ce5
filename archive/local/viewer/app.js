// The archive viewer's page: plain DOM, no framework, nothing from the network but this server.
// Data from the viewer's JSON endpoints (api/...), renders from the image service (/thumbnails/...).
//
// What the page shows is in its URL (?site=…&filter=…&open=…): every change of site, filter or open
// exposure is a history entry (pushState), so Back and Forward walk them and a link opened cold shows
// the same thing. Lists come a page at a time by cursor; a live refresh asks for the newest page and
// adds only the cards it does not have, so the <img> elements on screen (and their signed links) stay.
'use strict';

const POLL_BUSY_MS = 2000;   // while the site uploads (see api/sites/{site}/activity)
const POLL_IDLE_MS = 5000;
const RETRY_MS = 2000;       // while the archive is unreachable
const PAGE = 60;             // exposures per page (the URL's `limit` changes it)
const LOG_PAGE = 100;
const LIST_KEYS = ['user', 'filter', 'type', 'exptime_min', 'exptime_max', 'from', 'to', 'q', 'night'];
const LOG_KEYS = ['failures', 'logq'];
const STORE = { devtools: 'viewer.devtools', site: 'viewer.site' };
const UNKNOWN_SITE = 'unknown_site';

const state = {
  sites: [], site: null, params: new URLSearchParams(), listKey: null, logKey: null,
  cards: new Map(), stackShown: new Map(), next: null, total: null, folded: 0, loadingOlder: false, listSeq: 0,
  pending: [], expiries: new Map(), logNext: null, logSeq: 0, activity: null, timer: null, unreachable: false,
  detail: null, renderSeq: 0,
};

// --- small helpers -------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class Unreachable extends Error {}

// A refusal (4xx, or a 5xx of the image service) is an Error with the server's message; the archive
// not answering at all (network error, 502/503/504 from the front) is Unreachable, which shows the
// banner and leaves what is on screen alone.
async function getJSON(url) {
  let response;
  try {
    response = await fetch(url, { cache: 'no-store' });
  } catch (error) {
    throw new Unreachable(error.message);
  }
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const message = (body && body.message) || `${response.status} ${response.statusText}`;
    if ([502, 503, 504].includes(response.status) && url.startsWith('api/')) throw new Unreachable(message);
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function fill(tbody, rows, emptyText, columns) {
  tbody.replaceChildren();
  if (!rows.length) {
    tbody.append(el('tr', { class: 'empty' }, el('td', { colspan: columns }, emptyText)));
  }
  for (const row of rows) tbody.append(row);
}

function bytes(n) {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function utc(iso) { return iso ? iso.replace('T', ' ').replace('Z', '') : ''; }

function seconds(s) {
  if (s === null || s === undefined) return '';
  if (s < 120) return `${Math.max(0, Math.round(s))} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

function siteApi(site, what) { return `api/sites/${encodeURIComponent(site)}/${what}`; }

function cursorKey(cursor) {
  const [ms, id] = String(cursor || '0_0').split('_').map(Number);
  return [ms, id];
}

function newer(a, b) {  // cursor a after cursor b
  const [am, ai] = cursorKey(a), [bm, bi] = cursorKey(b);
  return am > bm || (am === bm && ai > bi);
}

function pageSize() {
  const n = Number(state.params.get('limit'));
  return Number.isInteger(n) && n >= 1 && n <= 500 ? n : PAGE;
}

function markUnreachable(error) {
  if (!(error instanceof Unreachable)) return false;
  state.unreachable = true;
  const banner = document.getElementById('banner');
  banner.textContent = `Archive unreachable — retrying (${error.message}). What is shown is from before.`;
  banner.hidden = false;
  schedulePoll(RETRY_MS);
  return true;
}

function markReachable() {
  if (!state.unreachable) return false;
  state.unreachable = false;
  document.getElementById('banner').hidden = true;
  return true;
}

// --- the URL -------------------------------------------------------------------------------------

function paramsFromLocation() {
  const params = new URLSearchParams(location.search);
  const legacy = /site=([^&]+)/.exec(location.hash);  // links from before: #site=tst
  if (legacy && !params.get('site')) params.set('site', decodeURIComponent(legacy[1]));
  return params;
}

function navigate(changes, { replace = false, opened = false } = {}) {
  const params = new URLSearchParams(state.params);
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === '' || value === false) params.delete(key);
    else params.set(key, value === true ? 'true' : value);
  }
  const url = `${location.pathname}${params.toString() ? '?' + params : ''}`;
  if (replace) history.replaceState({ opened: history.state && history.state.opened }, '', url);
  else history.pushState({ opened }, '', url);
  apply(params);
}

function keyOf(params, keys) {
  return keys.map(k => `${k}=${params.get(k) || ''}`).join('&') + `&limit=${params.get('limit') || ''}`;
}

// Bring the page in line with `params`: the site, the list's filters, the log's, the open exposure.
function apply(params) {
  const previous = state.params;
  state.params = params;
  const site = params.get('site') || null;
  const siteChanged = site !== state.site;
  if (siteChanged) {
    state.site = site;
    state.activity = null;
    if (site) localStorage.setItem(STORE.site, site);
    markSites();
    document.body.classList.toggle('log-only', site === UNKNOWN_SITE);
  }
  showFilters(params);
  const listKey = `${site}|${keyOf(params, LIST_KEYS)}`;
  const logKey = `${site}|${keyOf(params, LOG_KEYS)}`;
  if (site && siteChanged) {
    refreshSite(site);
  } else if (site) {
    if (listKey !== state.listKey) loadList(site);
    if (logKey !== state.logKey && (devtoolsShown() || site === UNKNOWN_SITE)) loadUploads(site);
  }
  state.listKey = listKey;
  state.logKey = logKey;
  const open = params.get('open');
  if (open && (!state.detail || state.detail.base !== open || previous.get('dir') !== params.get('dir'))) {
    openDetail(open, params.get('dir') || 'data');
  } else if (!open && document.getElementById('detail').open) {
    document.getElementById('detail').close();
  }
}

// --- sites ---------------------------------------------------------------------------------------

async function loadSites() {
  const nav = document.getElementById('sites');
  try {
    state.sites = (await getJSON('api/sites')).sites;
  } catch (error) {
    if (!markUnreachable(error)) nav.replaceChildren(el('span', { class: 'error' }, `sites: ${error.message}`));
    return false;
  }
  nav.replaceChildren(...state.sites.map(s => el('button', {
    type: 'button', class: 'site', dataset: { site: s.site },
    'aria-pressed': String(s.site === state.site),
    title: s.log_only ? 'upload log only' : `${s.exposures} exposures${s.latest ? ', newest ' + utc(s.latest) + ' UTC' : ''}`,
    onclick: () => { if (s.site !== state.site) navigate(siteChange(s.site)); },
  }, s.site)));
  if (!state.sites.length) {
    nav.append(el('span', { class: 'muted' }, 'no sites yet: python -m archive simulate-site --site tst'));
  }
  return true;
}

function siteChange(site) {
  const changes = { site, open: null, dir: null };
  for (const key of [...LIST_KEYS, ...LOG_KEYS]) changes[key] = null;
  return changes;
}

function markSites() {
  for (const button of document.querySelectorAll('#sites .site')) {
    button.setAttribute('aria-pressed', String(button.dataset.site === state.site));
  }
}

function chooseSite() {
  const remembered = localStorage.getItem(STORE.site);
  const first = state.sites.find(s => s.site === remembered) || state.sites.find(s => s.exposures > 0) || state.sites[0];
  if (first) navigate({ site: first.site }, { replace: true });
  else schedulePoll(POLL_IDLE_MS);
}

async function refreshSite(site) {
  // The list first; the dev tools' panels only when they are shown (unknown_site shows its log).
  const tasks = site === UNKNOWN_SITE ? [loadUploads(site)]
    : [loadList(site), loadFacets(site), loadChannels(site), loadAllsky(site), loadExpiries(site)];
  if (devtoolsShown() && site !== UNKNOWN_SITE) tasks.push(...devPanels.map(load => load(site)));
  await Promise.all(tasks);
  poll();
}

// --- filters -------------------------------------------------------------------------------------

async function loadFacets(site) {
  let answer;
  try { answer = await getJSON(siteApi(site, 'facets')); } catch (error) { markUnreachable(error); return; }
  if (site !== state.site) return;
  const form = document.getElementById('filters');
  const options = (select, first, items) => {
    select.replaceChildren(el('option', { value: '' }, first), ...items.map(([value, text]) => el('option', { value }, text)));
  };
  options(form.elements.user, 'everyone', answer.users.map(u => [u.user_id, u.username ? `${u.username} (${u.user_id})` : u.user_id]));
  options(form.elements.filter, 'any', answer.filters.map(f => [f, f]));
  options(form.elements.type, 'any', answer.data_types.map(t => [t, t]));
  showFilters(state.params);
}

function showFilters(params) {
  const form = document.getElementById('filters');
  for (const key of LIST_KEYS) {
    const field = form.elements[key];
    const value = params.get(key) || '';
    if (field.tagName === 'SELECT' && value && ![...field.options].some(o => o.value === value)) {
      field.append(el('option', { value }, value));  // a linked value the facets have not brought (yet)
    }
    field.value = value;
  }
  const log = document.getElementById('log-filters');
  log.elements.failures.checked = params.get('failures') === 'true';
  log.elements.logq.value = params.get('logq') || '';
}

function filtersFromForm() {
  const form = document.getElementById('filters');
  const changes = {};
  for (const key of LIST_KEYS) changes[key] = form.elements[key].value.trim();
  return changes;
}

// --- info images and all-sky ---------------------------------------------------------------------

async function loadChannels(site) {
  const box = document.getElementById('channels');
  let channels;
  try {
    channels = (await getJSON(siteApi(site, 'channels'))).channels;
  } catch (error) {
    if (!markUnreachable(error)) box.replaceChildren(el('p', { class: 'error' }, error.message));
    return;
  }
  if (site !== state.site) return;
  // A channel that still shows the same image keeps its element (and its signed link): no new download.
  const shown = new Map([...box.querySelectorAll('.channel[data-base]')].map(n => [`${n.dataset.channel}/${n.dataset.base}`, n]));
  box.replaceChildren(...channels.map(c => {
    const same = !c.empty && shown.get(`${c.channel}/${c.base_filename}`);
    if (same) return same;
    if (c.empty) {
      return el('div', { class: 'channel empty', dataset: { channel: c.channel } },
        el('span', { class: 'channel-title' }, `info image channel ${c.channel}`),
        el('span', { class: 'placeholder' }, c.assigned ? `waiting for ${c.assigned}` : 'empty'));
    }
    return el('button', {
      type: 'button', class: 'channel', dataset: { channel: c.channel, base: c.base_filename },
      onclick: () => navigate({ open: c.base_filename, dir: 'info-images' }, { opened: true }),
    },
    el('span', { class: 'channel-title' }, `info image channel ${c.channel}`),
    c.thumbnail_url ? el('img', { src: c.thumbnail_url, alt: '', loading: 'lazy' })
      : el('span', { class: 'placeholder' }, 'no JPG yet'),
    el('span', { class: 'name', title: c.base_filename }, c.base_filename),
    el('span', { class: 'muted small' }, [c.object, c.filter, c.data_type].filter(Boolean).join(' · ')));
  }));
}

async function loadAllsky(site) {
  const box = document.getElementById('allsky');
  let images;
  try {
    images = (await getJSON(siteApi(site, 'allsky'))).images;
  } catch (error) {
    if (!markUnreachable(error)) box.replaceChildren(el('p', { class: 'error' }, error.message));
    return;
  }
  if (site !== state.site) return;
  const shown = new Map([...box.querySelectorAll('.channel')].map(n => [n.dataset.key, n]));
  if (!images.length) { box.replaceChildren(el('p', { class: 'muted small' }, 'no all-sky images')); return; }
  box.replaceChildren(...images.map(i => shown.get(i.key) || el('button', {
    type: 'button', class: 'channel', dataset: { key: i.key, base: i.base_filename, testid: 'allsky-image' },
    onclick: () => navigate({ open: i.base_filename, dir: 'allsky' }, { opened: true }),
  },
  el('img', { src: i.thumbnail_url, alt: '', loading: 'lazy' }),
  el('span', { class: 'name', title: i.name }, i.base_filename),
  el('span', { class: 'muted small' }, `${utc(i.last_modified)} UTC`))));
}

// --- exposures -----------------------------------------------------------------------------------

function stackOf(e) {
  if (!/^\d+$/.test(e.SMARTSTK || '') || !/^\d+$/.test(e.SSTKNUM || '')) return null;
  return { id: e.SMARTSTK, number: Number(e.SSTKNUM) };
}

function stackBadge(e) {
  if (!stackOf(e)) return null;
  const total = /^\d+$/.test(e.SSTKLEN || '') ? ` of ${e.SSTKLEN}` : '';
  return el('span', { class: 'badge', title: `smart stack ${e.SMARTSTK}` }, `stack ${e.SSTKNUM}${total}`);
}

function expiryText(base) {
  const expires = state.expiries.get(base);
  if (expires === undefined) return null;
  if (expires === null) return 'kept';
  return `expires in ${seconds(expires - Date.now() / 1000)}`;
}

function card(e) {
  const time = e.capture_date_iso ? `${utc(e.capture_date_iso).slice(0, 16)} UTC` : '';
  const expiry = ['EP', 'EF'].includes(e.data_type) ? expiryText(e.base_filename) : null;  // filled when known
  const fact = (name, cls, value) => [el('span', { class: 'fact-name' }, name), el('span', { class: `fact ${cls}` }, value)];
  return el('button', {
    type: 'button', class: 'exposure',
    dataset: { base: e.base_filename, id: e.image_id, cursor: e.cursor, testid: 'exposure' },
    onclick: () => navigate({ open: e.base_filename, dir: null }, { opened: true }),
  },
  el('span', { class: 'thumb' },
    el('img', { src: e.thumbnail_url, alt: '', loading: 'lazy', dataset: { source: e.thumbnail_source } })),
  el('span', { class: 'name', title: e.base_filename }, e.base_filename),
  el('span', { class: 'badges' }, stackBadge(e),
    ['EP', 'EF'].includes(e.data_type)
      ? el('span', { class: 'badge expiry', dataset: { expires: e.base_filename } }, expiry || '') : null),
  el('span', { class: 'facts' },
    fact('type', 'data-type', e.data_type),
    fact('filter', 'filter', e.filter_used ?? ''),
    fact('exptime', 'exptime', e.exposure_time === null ? '' : `${e.exposure_time} s`),
    fact('ra', 'ra', e.ra_display),
    fact('dec', 'dec', e.dec_display),
    fact('airmass', 'airmass', e.airmass === null || e.airmass === undefined ? '' : Number(e.airmass).toFixed(2)),
    fact('user', 'user', e.username || e.user_id || ''),
    fact('time', 'time', time)),  // to the minute; the seconds are in the dialog
  e.object ? el('span', { class: 'muted object', title: e.object }, e.object) : null);
}

// Whether a frame is folded into a later frame of its smart stack already on screen (the list is newest
// first, so a stack's last frame comes before its earlier ones, possibly on an earlier page).
function folded(e) {
  const stack = stackOf(e);
  if (!stack) return false;
  const shown = state.stackShown.get(stack.id);
  return shown !== undefined && shown.number >= stack.number;
}

function remember(e, node) {
  state.cards.set(String(e.image_id), node);
  const stack = stackOf(e);
  if (stack) state.stackShown.set(stack.id, { number: stack.number, node });
}

function listQuery(extra = {}) {
  const params = new URLSearchParams();
  for (const key of LIST_KEYS) if (state.params.get(key)) params.set(key, state.params.get(key));
  params.set('limit', pageSize());
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  return params;
}

function showCount() {
  const count = document.getElementById('exposure-count');
  const shown = state.cards.size;
  const total = state.total === null ? '' : ` of ${state.total}`;
  count.textContent = `(${shown} shown${total}${state.folded ? `; ${state.folded} earlier smart-stack frames folded` : ''})`;
  document.getElementById('load-older').hidden = !state.next;
  document.getElementById('list-status').textContent = state.next ? '' : shown ? 'the oldest exposure is shown' : '';
}

async function loadList(site) {
  const seq = ++state.listSeq;
  const grid = document.getElementById('exposures');
  let answer;
  try {
    answer = await getJSON(`${siteApi(site, 'exposures')}?${listQuery()}`);
  } catch (error) {
    if (seq === state.listSeq && !markUnreachable(error)) grid.replaceChildren(el('p', { class: 'error' }, error.message));
    return;
  }
  if (seq !== state.listSeq || site !== state.site) return;
  state.cards = new Map();
  state.stackShown = new Map();
  state.pending = [];
  state.folded = answer.collapsed;
  state.total = answer.total;
  state.next = answer.next;
  document.getElementById('new-pill').hidden = true;
  const nodes = [];
  for (const e of answer.exposures) {
    if (folded(e)) { state.folded += 1; continue; }
    const node = card(e);
    remember(e, node);
    nodes.push(node);
  }
  if (!nodes.length) {
    const filtered = LIST_KEYS.some(k => state.params.get(k));
    grid.replaceChildren(el('p', { class: 'muted', 'data-testid': 'no-exposures' },
      filtered ? 'No exposure matches these filters.' : `No exposures with a preview at ${site} yet.`));
  } else {
    grid.replaceChildren(...nodes);
  }
  showCount();
  performance.mark('viewer:list');
  observeEnd();
}

async function loadOlder() {
  const site = state.site;
  if (!state.next || state.loadingOlder || !site) return;
  state.loadingOlder = true;
  const seq = state.listSeq;
  const button = document.getElementById('load-older');
  button.disabled = true;
  try {
    const answer = await getJSON(`${siteApi(site, 'exposures')}?${listQuery({ before: state.next })}`);
    if (seq !== state.listSeq || site !== state.site) return;
    const grid = document.getElementById('exposures');
    state.folded += answer.collapsed;
    for (const e of answer.exposures) {
      if (state.cards.has(String(e.image_id))) continue;
      if (folded(e)) { state.folded += 1; continue; }
      const node = card(e);
      remember(e, node);
      grid.append(node);
    }
    state.next = answer.next;
    showCount();
  } catch (error) {
    if (!markUnreachable(error)) document.getElementById('list-status').textContent = error.message;
  } finally {
    state.loadingOlder = false;
    button.disabled = false;
  }
  observeEnd();
}

// Infinite scroll: the end of the list coming into view loads the next page ("load older" does the same).
const endObserver = 'IntersectionObserver' in window
  ? new IntersectionObserver(entries => { if (entries.some(e => e.isIntersecting)) loadOlder(); }, { rootMargin: '400px' })
  : null;

function observeEnd() {
  if (!endObserver) return;
  endObserver.disconnect();
  if (state.next) endObserver.observe(document.getElementById('list-end'));
}

function scrolledAway() {
  return window.scrollY > 200;
}

// A live refresh: the newest page, of which only cards not on screen are added (at the top, in order);
// what is on screen keeps its element and its image. Scrolled away, the new cards wait behind a pill.
async function refreshNewest(site) {
  if (site === UNKNOWN_SITE) return;
  const seq = state.listSeq;  // a list loaded meanwhile (other filters) makes this answer stale
  let answer;
  try {
    answer = await getJSON(`${siteApi(site, 'exposures')}?${listQuery()}`);
  } catch (error) {
    markUnreachable(error);
    return;
  }
  if (site !== state.site || seq !== state.listSeq) return;
  if (!state.cards.size && answer.exposures.length) { await loadList(site); return; }
  const top = document.querySelector('#exposures .exposure');
  const topCursor = top ? top.dataset.cursor : null;
  const fresh = answer.exposures.filter(e => !state.cards.has(String(e.image_id))
    && !state.pending.some(p => p.image_id === e.image_id) && (!topCursor || newer(e.cursor, topCursor)));
  state.total = answer.total;
  if (fresh.length) {
    state.pending.push(...fresh);
    if (scrolledAway()) {
      const pill = document.getElementById('new-pill');
      pill.textContent = `${state.pending.length} new ↑`;
      pill.hidden = false;
    } else {
      showPending();
    }
  }
  showCount();
}

function showPending() {
  const grid = document.getElementById('exposures');
  const pending = state.pending.sort((a, b) => (newer(a.cursor, b.cursor) ? -1 : 1));
  state.pending = [];
  document.getElementById('new-pill').hidden = true;
  const nodes = [];
  for (const e of pending) {
    const stack = stackOf(e);
    const earlier = stack && state.stackShown.get(stack.id);
    if (earlier && earlier.number >= stack.number) { state.folded += 1; continue; }
    if (earlier) {  // the stack's new last frame replaces the card of its earlier one
      state.cards.delete(earlier.node.dataset.id);
      earlier.node.remove();
      state.folded += 1;
    }
    const node = card(e);
    remember(e, node);
    nodes.push(node);
  }
  const empty = grid.querySelector('[data-testid=no-exposures]');
  if (empty && nodes.length) empty.remove();
  grid.prepend(...nodes);
  showCount();
}

function tickExpiries() {
  for (const badge of document.querySelectorAll('#exposures .expiry')) {
    const text = expiryText(badge.dataset.expires);
    if (text && badge.textContent !== text) badge.textContent = text;
  }
}

// Arrow keys move between cards: left/right along the list, up/down by a row of the grid.
function moveFocus(event) {
  const cards = [...document.querySelectorAll('#exposures .exposure')];
  const index = cards.indexOf(document.activeElement);
  if (index < 0) return;
  const columns = Math.max(1, cards.filter(c => c.offsetTop === cards[0].offsetTop).length);
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns, Home: -index,
    End: cards.length - 1 - index }[event.key];
  if (step === undefined) return;
  event.preventDefault();
  const target = cards[Math.min(cards.length - 1, Math.max(0, index + step))];
  target.focus();
  if (index + step >= cards.length - 1 && state.next) loadOlder();
}

// --- dev tools -----------------------------------------------------------------------------------

function uploadRow(u) {
  return el('tr', { class: u.failure ? 'failure' : null, dataset: { status: u.status } },
    el('td', { class: 'nowrap', title: `${utc(u.uploaded_iso)} UTC` }, (u.uploaded_iso || '').slice(11, 19)),
    el('td', {}, el('span', { class: `status ${u.status}` }, u.status)),
    el('td', {},
      el('div', { class: 'key', title: u.filename }, (u.filename || '').replace(/^data\//, '')),
      u.reason ? el('div', { class: 'reason' }, u.reason) : null),
    el('td', { class: 'num' }, bytes(u.size_bytes)));
}

function logQuery(extra = {}) {
  const params = new URLSearchParams({ limit: LOG_PAGE });
  if (state.params.get('failures') === 'true') params.set('failures', 'true');
  if (state.params.get('logq')) params.set('q', state.params.get('logq'));
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  return params;
}

async function loadUploads(site, older = false) {
  const tbody = document.querySelector('#uploads tbody');
  const seq = older ? state.logSeq : ++state.logSeq;  // a later filter's answer wins over an earlier one's
  let answer;
  try {
    answer = await getJSON(`${siteApi(site, 'uploads')}?${logQuery(older ? { before: state.logNext } : {})}`);
  } catch (error) {
    if (seq === state.logSeq && !markUnreachable(error)) fill(tbody, [], error.message, 4);
    return;
  }
  if (site !== state.site || seq !== state.logSeq) return;
  const rows = answer.uploads.map(uploadRow);
  if (older) {
    tbody.append(...rows);
  } else {
    fill(tbody, rows, state.params.get('failures') || state.params.get('logq')
      ? 'no log entry matches' : `no uploads logged for this site (the log keeps ${answer.kept_hours} hours)`, 4);
    state.logTotal = answer.total;
  }
  state.logNext = answer.next;
  const shown = tbody.querySelectorAll('tr:not(.empty)').length;
  const failures = tbody.querySelectorAll('tr.failure').length;
  const total = state.logTotal === null || state.logTotal === undefined ? '' : ` of ${state.logTotal}`;
  document.getElementById('upload-count').textContent =
    `(${shown} shown${total}${failures ? `, ${failures} failed or rejected` : ''})`;
  document.getElementById('uploads-older').hidden = !answer.next;
}

async function loadExpiries(site) {
  const tbody = document.querySelector('#expiries tbody');
  let answer;
  try {
    answer = await getJSON(siteApi(site, 'expiries'));
  } catch (error) {
    if (!markUnreachable(error)) fill(tbody, [], error.message, 4);
    return;
  }
  if (site !== state.site) return;
  state.expiries = new Map(answer.expiries.map(x => [x.base_filename, x.cancelled ? null : x.expiration_timestamp_s]));
  fill(tbody, answer.expiries.map(x => el('tr', {},
    el('td', { class: 'key' }, x.base_filename),
    el('td', {}, x.s3_directory),
    el('td', { class: 'nowrap' }, x.cancelled ? 'kept (expiry cancelled)' : utc(x.expires_iso)),
    el('td', { class: 'num' }, x.cancelled ? '' : seconds(x.seconds_left)))), 'nothing scheduled to expire', 4);
  tickExpiries();
}

async function loadQueues() {
  const tbody = document.querySelector('#queues tbody');
  let answer;
  try {
    answer = await getJSON('api/queues');
  } catch (error) {
    if (!markUnreachable(error)) fill(tbody, [], error.message, 3);
    return;
  }
  fill(tbody, answer.queues.map(q => el('tr', { class: q.queue.endsWith('-dlq') && q.waiting ? 'failure' : null },
    el('td', { class: 'key' }, q.queue),
    el('td', { class: 'num' }, q.error ? q.error : q.waiting),
    el('td', { class: 'num' }, q.error ? '' : q.in_flight))), 'no queues', 3);
}

// The dashboard's numbers from the functions' metric lines (GET api/metrics; archive/metrics.py).
const OUTCOMES = ['ingested', 'ignored', 'rejected', 'failed'];

function millis(d) {
  if (!d || !d.count) return 'no samples';
  return `p50 ${Math.round(d.p50)} ms · p95 ${Math.round(d.p95)} ms · max ${Math.round(d.max)} ms (${d.count})`;
}

async function loadMetrics() {
  const tbody = document.querySelector('#metrics-sites tbody');
  const list = document.getElementById('metrics');
  let m;
  try {
    m = await getJSON('api/metrics');
  } catch (error) {
    if (!markUnreachable(error)) fill(tbody, [], error.message, 5);
    return;
  }
  if (!m.available) {
    fill(tbody, [], 'this stack keeps no metrics', 5);
    list.replaceChildren();
    return;
  }
  fill(tbody, Object.entries(m.uploads).map(([site, counts]) => el('tr', { dataset: { site } },
    el('td', { class: 'key' }, site),
    ...OUTCOMES.map(o => el('td', { class: 'num' }, counts[o] || 0)))), 'no uploads yet', 5);
  const ratio = m.render_hit_ratio === null ? '–' : `${Math.round(m.render_hit_ratio * 100)} %`;
  const pairs = obj => Object.entries(obj).map(([k, v]) => `${k} ${v}`).join(' · ') || 'none';
  list.replaceChildren(
    el('dt', {}, 'ingest lag (upload → row)'), el('dd', { dataset: { metric: 'lag' } }, millis(m.ingest_lag_ms)),
    el('dt', {}, 'thumbnail time'), el('dd', {}, millis(m.thumbnail_ms)),
    el('dt', {}, 'render hit ratio'), el('dd', { dataset: { metric: 'hit-ratio' } }, ratio),
    el('dt', {}, 'render time (hit / miss)'), el('dd', {}, `${millis(m.render_ms.hit)} / ${millis(m.render_ms.miss)}`),
    el('dt', {}, 'image API answers'), el('dd', {}, pairs(m.renders)),
    el('dt', {}, 'expiries · datastream'), el('dd', {}, `${pairs(m.expirations)} · ${pairs(m.datastream)}`));
}

// The dev tools' panels refreshed with the rest; a panel added to #devtools registers its loader here.
// The expiry schedule is no panel of these: the cards' countdowns need it, so it loads with the site.
const devPanels = [site => loadUploads(site), () => loadQueues(), () => loadMetrics()];

function devtoolsShown() {
  return !document.getElementById('devtools').hidden;
}

function showDevtools(on) {
  const panel = document.getElementById('devtools');
  panel.hidden = !on;
  document.getElementById('devtools-toggle').setAttribute('aria-pressed', String(on));
  localStorage.setItem(STORE.devtools, on ? 'on' : 'off');
}

// --- auto refresh --------------------------------------------------------------------------------

function schedulePoll(ms) {
  clearTimeout(state.timer);
  state.timer = setTimeout(poll, ms);
}

async function refreshAll(site) {
  const tasks = [loadSites()];
  if (site === UNKNOWN_SITE) tasks.push(loadUploads(site));
  else if (devtoolsShown()) tasks.push(...devPanels.map(load => load(site)));
  if (site !== UNKNOWN_SITE) {
    tasks.push(refreshNewest(site), loadChannels(site), loadAllsky(site), loadExpiries(site));
  }
  await Promise.all(tasks);
}

async function poll() {
  const site = state.site;
  const live = document.getElementById('live');
  if (!site) {  // an empty archive, or the archive was unreachable at load: look again for a first site
    if (await loadSites()) { markReachable(); chooseSite(); } else schedulePoll(RETRY_MS);
    return;
  }
  let activity;
  try {
    activity = await getJSON(`${siteApi(site, 'activity')}`);
  } catch (error) {
    if (!markUnreachable(error)) {
      live.textContent = `refresh failed: ${error.message}`;
      live.className = 'live error';
      schedulePoll(POLL_IDLE_MS);
    }
    return;
  }
  if (site !== state.site) return;
  const before = state.activity;
  state.activity = activity;
  if (markReachable() || (before && (before.latest_upload_id !== activity.latest_upload_id
      || before.ingest_pending !== activity.ingest_pending))) {
    await refreshAll(site);
  }
  tickExpiries();
  const now = new Date().toISOString().slice(11, 19);
  live.textContent = activity.ingest_pending
    ? `ingesting… ${activity.ingest_pending} in the queue · ${now} UTC`
    : activity.uploading ? `new uploads · checked ${now} UTC` : `idle · checked ${now} UTC`;
  live.className = activity.uploading ? 'live busy' : 'live';
  schedulePoll(activity.uploading ? POLL_BUSY_MS : POLL_IDLE_MS);
}

// --- one exposure --------------------------------------------------------------------------------

async function openDetail(base, dir) {
  const dialog = document.getElementById('detail');
  const detail = { base, dir };
  state.detail = detail;
  document.getElementById('detail-title').textContent = base;
  document.getElementById('detail-summary').textContent = 'loading…';
  document.querySelector('#header tbody').replaceChildren();
  document.querySelector('#files tbody').replaceChildren();
  document.getElementById('render-img').removeAttribute('src');
  document.getElementById('render-status').textContent = '';
  document.getElementById('color-figure').hidden = true;
  closeZoom();
  if (!dialog.open) {
    dialog.showModal();
    document.getElementById('detail-title').focus();  // not the close button: a Space's keyup would press it
  }
  let answer;
  try {
    answer = await getJSON(`api/exposures/${encodeURIComponent(base)}?dir=${encodeURIComponent(dir)}`);
  } catch (error) {
    if (state.detail === detail) document.getElementById('detail-summary').textContent = error.message;
    return;
  }
  if (state.detail !== detail) return;
  detail.answer = answer;
  const e = answer.exposure;
  document.getElementById('detail-summary').textContent = [
    dir !== 'data' ? `${dir}/` : null,
    e.data_type, e.filter_used && `filter ${e.filter_used}`,
    e.exposure_time !== undefined && e.exposure_time !== null ? `${e.exposure_time} s` : null,
    e.ra_display && `RA ${e.ra_display}`, e.dec_display && `Dec ${e.dec_display}`,
    e.airmass !== undefined && e.airmass !== null ? `airmass ${Number(e.airmass).toFixed(2)}` : null,
    e.capture_date_iso && utc(e.capture_date_iso) + ' UTC', e.object, e.username && `by ${e.username}`,
    /^\d+$/.test(e.SMARTSTK || '') ? `smart stack ${e.SMARTSTK}, frame ${e.SSTKNUM} of ${e.SSTKLEN}` : null,
  ].filter(Boolean).join(' · ');
  showHeader(answer.header);
  fill(document.querySelector('#files tbody'), answer.files.map(f => el('tr', {},
    el('td', { class: 'key' }, el('a', { href: f.url, download: f.name, title: `download ${f.name}` }, f.name)),
    el('td', {}, f.kind),
    el('td', { class: 'num' }, bytes(f.size_bytes)))), 'no files in the bucket', 3);
  const form = document.getElementById('render-controls');
  form.elements.label.value = '';
  form.hidden = !answer.render.service;
  render();
  renderColor();
}

function closeDetail() {
  const dialog = document.getElementById('detail');
  if (dialog.open) dialog.close();
}

function showHeader(header) {
  const entries = header ? Object.entries(header) : [];
  document.getElementById('header-count').textContent = header ? `(${entries.length} cards)` : '(none yet)';
  fill(document.querySelector('#header tbody'), entries.map(([key, value]) => el('tr', { dataset: { key } },
    el('td', { class: 'key' }, key), el('td', {}, value))), 'no header for this exposure yet', 2);
  filterHeader();
}

function filterHeader() {
  const needle = document.getElementById('header-search').value.trim().toLowerCase();
  for (const row of document.querySelectorAll('#header tbody tr')) {
    if (row.classList.contains('empty')) continue;
    row.hidden = needle !== '' && !row.textContent.toLowerCase().includes(needle);
  }
}

// Only what the user chose is sent: no stretch unless one is picked (a JPG-only exposure has nothing to
// stretch, and the service refuses FITS-only options for it), no source unless one is picked. The size
// asked is capped at the width the picture has on screen.
function renderQuery(extra) {
  const form = document.getElementById('render-controls');
  const room = Math.max(100, Math.floor(document.getElementById('render-figure').clientWidth || 400));
  const asked = form.elements.size.value === 'fit' ? room : Math.min(Number(form.elements.size.value), room);
  const params = new URLSearchParams({ width: asked, height: asked });
  if (form.elements.stretch.value) params.set('stretch', form.elements.stretch.value);
  if (form.elements.source.value) params.set('source', form.elements.source.value);
  if (form.elements.label.value.trim()) params.set('label', form.elements.label.value.trim());
  for (const [k, v] of Object.entries(extra || {})) params.set(k, v);
  return params;
}

// The image service answers JSON {url, width, height, cached} (or {message} with the reason): ask for
// that rather than an <img> on `image=true`, so a refusal is shown as words, not a broken picture.
async function render() {
  const detail = state.detail;
  if (!detail || !detail.answer) return;
  const seq = ++state.renderSeq;
  const img = document.getElementById('render-img');
  const status = document.getElementById('render-status');
  const { render: where } = detail.answer;
  if (!where.service) {  // info-images/ and allsky/: their own medium JPG, as uploaded
    if (where.jpg_url) {
      img.src = where.jpg_url;
      status.textContent = `the medium JPG of ${detail.dir}/`;
      status.className = 'muted';
    } else {
      img.removeAttribute('src');
      status.textContent = `no medium JPG under ${detail.dir}/ to show`;
    }
    return;
  }
  status.textContent = 'rendering…';
  status.className = 'muted';
  try {
    const answer = await getJSON(`${where.service}?${renderQuery()}`);
    if (seq !== state.renderSeq) return;
    img.src = answer.url;
    status.textContent = `${answer.width}×${answer.height}${answer.cached ? ', from the cache' : ', rendered now'} · click to zoom`;
  } catch (error) {
    if (seq !== state.renderSeq) return;
    img.removeAttribute('src');
    status.textContent = `image service: ${error.message}`;
    status.className = 'error';
  }
}

// A colour composite, when the archive has red, green and blue frames of the set (the detail says so).
async function renderColor() {
  const detail = state.detail;
  const figure = document.getElementById('color-figure');
  if (!detail || !detail.answer || !detail.answer.render.color) { figure.hidden = true; return; }
  const status = document.getElementById('color-status');
  try {
    const query = renderQuery({ color: 'true' });
    query.delete('source');
    const answer = await getJSON(`${detail.answer.render.service}?${query}`);
    if (state.detail !== detail) return;
    document.getElementById('color-img').src = answer.url;
    status.textContent = `colour composite of the exposure set, ${answer.width}×${answer.height}`;
    figure.hidden = false;
  } catch (error) {
    if (state.detail !== detail) return;
    figure.hidden = true;
    status.textContent = error.message;
  }
}

// Zoom: the full medium JPG when there is one, else a 1600 px render; scrolls inside the dialog.
async function openZoom() {
  const detail = state.detail;
  if (!detail || !detail.answer) return;
  const zoom = document.getElementById('zoom');
  const img = document.getElementById('zoom-img');
  const where = detail.answer.render;
  if (where.jpg_url) {
    img.src = where.jpg_url;
  } else if (where.service) {
    try {
      img.src = (await getJSON(`${where.service}?${renderQuery({ width: 1600, height: 1600 })}`)).url;
    } catch (error) {
      document.getElementById('render-status').textContent = `zoom: ${error.message}`;
      return;
    }
  } else {
    return;
  }
  zoom.hidden = false;
  document.getElementById('zoom-close').focus();
}

function closeZoom() {
  const zoom = document.getElementById('zoom');
  if (zoom.hidden) return false;
  zoom.hidden = true;
  document.getElementById('zoom-img').removeAttribute('src');
  document.getElementById('render-zoom').focus();
  return true;
}

function stepDetail(step) {
  const detail = state.detail;
  if (!detail || detail.dir !== 'data') return;
  const cards = [...document.querySelectorAll('#exposures .exposure')];
  const index = cards.findIndex(c => c.dataset.base === detail.base);
  const target = cards[index + step];
  if (index < 0 || !target) return;
  navigate({ open: target.dataset.base }, { replace: true });
}

// --- wiring --------------------------------------------------------------------------------------

document.getElementById('devtools-toggle').addEventListener('click', () => {
  const on = document.getElementById('devtools').hidden;
  showDevtools(on);
  if (on && state.site) devPanels.forEach(load => load(state.site));
});
document.getElementById('filters').addEventListener('submit', event => {
  event.preventDefault();
  navigate(filtersFromForm());
});
document.getElementById('filters').addEventListener('change', event => {
  if (event.target.tagName === 'SELECT' || event.target.type === 'date') navigate(filtersFromForm());
});
document.getElementById('filters-clear').addEventListener('click', () => {
  navigate(Object.fromEntries(LIST_KEYS.map(k => [k, null])));
});
function logFiltersChanged(event) {
  if (event.type === 'submit') event.preventDefault();
  const form = document.getElementById('log-filters');
  navigate({ failures: form.elements.failures.checked, logq: form.elements.logq.value.trim() }, { replace: true });
}
document.getElementById('log-filters').addEventListener('change', logFiltersChanged);
document.getElementById('log-filters').addEventListener('submit', logFiltersChanged);
document.getElementById('uploads-older').addEventListener('click', () => loadUploads(state.site, true));
document.getElementById('load-older').addEventListener('click', loadOlder);
document.getElementById('new-pill').addEventListener('click', () => {
  showPending();
  window.scrollTo({ top: 0 });
  const first = document.querySelector('#exposures .exposure');
  if (first) first.focus({ preventScroll: true });
});
window.addEventListener('scroll', () => { if (!scrolledAway() && state.pending.length) showPending(); }, { passive: true });
document.getElementById('exposures').addEventListener('keydown', moveFocus);

const dialog = document.getElementById('detail');
document.getElementById('detail-close').addEventListener('click', closeDetail);
dialog.addEventListener('cancel', event => { if (closeZoom()) event.preventDefault(); });
dialog.addEventListener('close', () => {
  const base = state.detail && state.detail.base;
  state.detail = null;
  closeZoom();
  if (state.params.get('open')) {
    if (history.state && history.state.opened) history.back();
    else navigate({ open: null, dir: null }, { replace: true });
  }
  const from = base && document.querySelector(`#exposures .exposure[data-base="${CSS.escape(base)}"]`);
  if (from) from.focus();
});
dialog.addEventListener('keydown', event => {
  if (['INPUT', 'SELECT', 'TEXTAREA'].includes(event.target.tagName)) return;
  if (event.key === 'ArrowRight') { event.preventDefault(); stepDetail(1); }
  if (event.key === 'ArrowLeft') { event.preventDefault(); stepDetail(-1); }
});
document.getElementById('header-search').addEventListener('input', filterHeader);
document.getElementById('render-controls').addEventListener('change', () => { render(); renderColor(); });
document.getElementById('render-controls').addEventListener('submit', event => { event.preventDefault(); render(); });
document.getElementById('render-zoom').addEventListener('click', openZoom);
document.getElementById('zoom-close').addEventListener('click', closeZoom);
window.addEventListener('popstate', () => apply(paramsFromLocation()));
setInterval(tickExpiries, 30_000);

// Start: the list of the linked (or last) site is asked for at once, beside the sites, not after them.
showDevtools(localStorage.getItem(STORE.devtools) === 'on');
(async () => {
  const params = paramsFromLocation();
  if (location.hash) history.replaceState(history.state, '', `${location.pathname}?${params}`);
  if (params.get('site')) {
    apply(params);
    await loadSites();
    markSites();
  } else if (await loadSites()) {
    state.params = params;
    chooseSite();
  } else {
    schedulePoll(RETRY_MS);
  }
})();

// The archive viewer's page: plain DOM, no framework, nothing from the network but this server.
// Data from the viewer's JSON endpoints (api/...), renders from the image service (/thumbnails/...).
'use strict';

const POLL_BUSY_MS = 2000;   // while the site uploads (see api/sites/{site}/activity)
const POLL_IDLE_MS = 5000;

const state = { site: null, activity: null, timer: null, detail: null, renderSeq: 0 };

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

async function getJSON(url) {
  const response = await fetch(url, { cache: 'no-store' });
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const message = (body && body.message) || `${response.status} ${response.statusText}`;
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
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

function siteFromHash() {
  const match = /site=([^&]+)/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

// --- sites ---------------------------------------------------------------------------------------

async function loadSites(choose = true) {
  const nav = document.getElementById('sites');
  let sites = [];
  try {
    sites = (await getJSON('api/sites')).sites;
  } catch (error) {
    nav.replaceChildren(el('span', { class: 'error' }, `sites: ${error.message}`));
    return;
  }
  nav.replaceChildren(...sites.map(s => el('button', {
    type: 'button', class: s.site === state.site ? 'site selected' : 'site', dataset: { site: s.site },
    title: `${s.exposures} exposures${s.latest ? ', newest ' + utc(s.latest) : ''}`,
    onclick: () => selectSite(s.site),
  }, s.site)));
  if (!sites.length) {
    nav.append(el('span', { class: 'muted' }, 'no sites yet: python -m archive simulate-site --site tst'));
  }
  if (!choose) return;
  const wanted = siteFromHash() || state.site;
  const first = sites.find(s => s.site === wanted) || sites.find(s => s.exposures > 0) || sites[0];
  if (first) selectSite(first.site);
  else schedulePoll(POLL_IDLE_MS);
}

function selectSite(site) {
  state.site = site;
  state.activity = null;
  history.replaceState(null, '', `#site=${encodeURIComponent(site)}`);
  for (const button of document.querySelectorAll('#sites .site')) {
    button.classList.toggle('selected', button.dataset.site === site);
  }
  refreshAll();
  poll();
}

async function refreshAll() {
  const site = state.site;
  if (!site) return;
  await Promise.all([loadChannels(site), loadExposures(site), loadUploads(site), loadExpiries(site), loadQueues(),
    loadMetrics(), loadSites(false)]);
}

// --- info images ---------------------------------------------------------------------------------

async function loadChannels(site) {
  const box = document.getElementById('channels');
  let channels;
  try {
    channels = (await getJSON(`api/sites/${encodeURIComponent(site)}/channels`)).channels;
  } catch (error) {
    box.replaceChildren(el('p', { class: 'error' }, error.message));
    return;
  }
  if (site !== state.site) return;
  box.replaceChildren(...channels.map(c => {
    if (c.empty) {
      return el('div', { class: 'channel empty', dataset: { channel: c.channel } },
        el('div', { class: 'channel-title' }, `channel ${c.channel}`),
        el('div', { class: 'placeholder' }, c.assigned ? `waiting for ${c.assigned}` : 'empty'));
    }
    return el('div', {
      class: 'channel', dataset: { channel: c.channel, base: c.base_filename }, tabindex: 0,
      onclick: () => openDetail(c.base_filename, 'info-images'),
    },
    el('div', { class: 'channel-title' }, `channel ${c.channel}`),
    c.thumbnail_url ? el('img', { src: c.thumbnail_url, alt: c.base_filename, loading: 'lazy' })
      : el('div', { class: 'placeholder' }, 'no JPG yet'),
    el('div', { class: 'name' }, c.base_filename),
    el('div', { class: 'muted' }, [c.object, c.filter, c.data_type].filter(Boolean).join(' · ')));
  }));
}

// --- exposures -----------------------------------------------------------------------------------

function stackBadge(e) {
  if (!/^\d+$/.test(e.SMARTSTK || '') || !/^\d+$/.test(e.SSTKNUM || '')) return null;
  const total = /^\d+$/.test(e.SSTKLEN || '') ? ` of ${e.SSTKLEN}` : '';
  return el('span', { class: 'badge', title: `smart stack ${e.SMARTSTK}` }, `stack ${e.SSTKNUM}${total}`);
}

async function loadExposures(site) {
  const grid = document.getElementById('exposures');
  let answer;
  try {
    answer = await getJSON(`api/sites/${encodeURIComponent(site)}/exposures`);
  } catch (error) {
    grid.replaceChildren(el('p', { class: 'error' }, error.message));
    return;
  }
  if (site !== state.site) return;
  const count = document.getElementById('exposure-count');
  count.textContent = answer.collapsed
    ? `(${answer.exposures.length}; ${answer.collapsed} earlier smart-stack frames folded)` : `(${answer.exposures.length})`;
  if (!answer.exposures.length) {
    grid.replaceChildren(el('p', { class: 'muted', 'data-testid': 'no-exposures' },
      `No exposures with a preview at ${site} yet.`));
    return;
  }
  grid.replaceChildren(...answer.exposures.map(e => el('article', {
    class: 'exposure', tabindex: 0, dataset: { base: e.base_filename, testid: 'exposure' },
    onclick: () => openDetail(e.base_filename, 'data'),
    onkeydown: event => { if (event.key === 'Enter') openDetail(e.base_filename, 'data'); },
  },
  el('div', { class: 'thumb' },
    el('img', { src: e.thumbnail_url, alt: e.base_filename, loading: 'lazy', dataset: { source: e.thumbnail_source } })),
  el('div', { class: 'name' }, e.base_filename, stackBadge(e)),
  el('dl', { class: 'facts' },
    el('dt', {}, 'type'), el('dd', { class: 'data-type' }, e.data_type),
    el('dt', {}, 'filter'), el('dd', { class: 'filter' }, e.filter_used ?? ''),
    el('dt', {}, 'exptime'), el('dd', { class: 'exptime' }, e.exposure_time === null ? '' : `${e.exposure_time} s`),
    el('dt', {}, 'ra'), el('dd', { class: 'ra' }, e.ra_display),
    el('dt', {}, 'dec'), el('dd', { class: 'dec' }, e.dec_display),
    el('dt', {}, 'time'), el('dd', { class: 'time' }, utc(e.capture_date_iso))),
  e.object ? el('div', { class: 'muted object' }, e.object) : null)));
}

// --- dev tools -----------------------------------------------------------------------------------

async function loadUploads(site) {
  const tbody = document.querySelector('#uploads tbody');
  let answer;
  try {
    answer = await getJSON(`api/sites/${encodeURIComponent(site)}/uploads`);
  } catch (error) {
    fill(tbody, [], error.message, 4);
    return;
  }
  if (site !== state.site) return;
  document.getElementById('upload-count').textContent =
    `(${answer.uploads.length}${answer.failures ? `, ${answer.failures} failed or rejected` : ''})`;
  fill(tbody, answer.uploads.map(u => el('tr', { class: u.failure ? 'failure' : null, dataset: { status: u.status } },
    el('td', { class: 'nowrap', title: utc(u.uploaded_iso) }, (u.uploaded_iso || '').slice(11, 19)),
    el('td', {}, el('span', { class: `status ${u.status}` }, u.status)),
    el('td', {},
      el('div', { class: 'key', title: u.filename }, (u.filename || '').replace(/^data\//, '')),
      u.reason ? el('div', { class: 'reason' }, u.reason) : null),
    el('td', { class: 'num' }, bytes(u.size_bytes)))), `no uploads logged for this site (the log keeps ${answer.kept_hours} hours)`, 4);
}

async function loadExpiries(site) {
  const tbody = document.querySelector('#expiries tbody');
  let answer;
  try {
    answer = await getJSON(`api/sites/${encodeURIComponent(site)}/expiries`);
  } catch (error) {
    fill(tbody, [], error.message, 4);
    return;
  }
  if (site !== state.site) return;
  fill(tbody, answer.expiries.map(x => el('tr', {},
    el('td', { class: 'key' }, x.base_filename),
    el('td', {}, x.s3_directory),
    el('td', { class: 'nowrap' }, x.cancelled ? 'kept (expiry cancelled)' : utc(x.expires_iso)),
    el('td', { class: 'num' }, x.cancelled ? '' : seconds(x.seconds_left)))), 'nothing scheduled to expire', 4);
}

async function loadQueues() {
  const tbody = document.querySelector('#queues tbody');
  let answer;
  try {
    answer = await getJSON('api/queues');
  } catch (error) {
    fill(tbody, [], error.message, 3);
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
    fill(tbody, [], error.message, 5);
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

// --- auto refresh --------------------------------------------------------------------------------

function schedulePoll(ms) {
  clearTimeout(state.timer);
  state.timer = setTimeout(poll, ms);
}

async function poll() {
  const site = state.site;
  const live = document.getElementById('live');
  if (!site) { loadSites(); return; }  // an empty archive: look again for a first site
  let activity;
  try {
    activity = await getJSON(`api/sites/${encodeURIComponent(site)}/activity`);
  } catch (error) {
    live.textContent = `refresh failed: ${error.message}`;
    live.className = 'live error';
    schedulePoll(POLL_IDLE_MS);
    return;
  }
  if (site !== state.site) return;
  const before = state.activity;
  state.activity = activity;
  if (before && (before.latest_upload_id !== activity.latest_upload_id
      || before.ingest_pending !== activity.ingest_pending)) {
    await refreshAll();
  }
  const now = new Date().toISOString().slice(11, 19);
  live.textContent = activity.uploading
    ? `uploading… ${activity.ingest_pending} in the ingest queue · ${now} UTC` : `idle · checked ${now} UTC`;
  live.className = activity.uploading ? 'live busy' : 'live';
  schedulePoll(activity.uploading ? POLL_BUSY_MS : POLL_IDLE_MS);
}

// --- one exposure --------------------------------------------------------------------------------

async function openDetail(base, dir) {
  const dialog = document.getElementById('detail');
  state.detail = { base, dir };
  document.getElementById('detail-title').textContent = base;
  document.getElementById('detail-summary').textContent = 'loading…';
  document.querySelector('#header tbody').replaceChildren();
  document.querySelector('#files tbody').replaceChildren();
  document.getElementById('render-img').removeAttribute('src');
  document.getElementById('color-figure').hidden = true;
  if (!dialog.open) dialog.showModal();
  let answer;
  try {
    answer = await getJSON(`api/exposures/${encodeURIComponent(base)}?dir=${encodeURIComponent(dir)}`);
  } catch (error) {
    document.getElementById('detail-summary').textContent = error.message;
    return;
  }
  if (state.detail.base !== base) return;
  state.detail.answer = answer;
  const e = answer.exposure;
  document.getElementById('detail-summary').textContent = [
    dir !== 'data' ? dir : null,
    e.data_type, e.filter_used && `filter ${e.filter_used}`,
    e.exposure_time !== undefined && e.exposure_time !== null ? `${e.exposure_time} s` : null,
    e.ra_display && `RA ${e.ra_display}`, e.dec_display && `Dec ${e.dec_display}`,
    e.capture_date_iso && utc(e.capture_date_iso) + ' UTC', e.object,
    /^\d+$/.test(e.SMARTSTK || '') ? `smart stack ${e.SMARTSTK}, frame ${e.SSTKNUM} of ${e.SSTKLEN}` : null,
  ].filter(Boolean).join(' · ');
  showHeader(answer.header);
  fill(document.querySelector('#files tbody'), answer.files.map(f => el('tr', {},
    el('td', { class: 'key' }, el('a', { href: f.url, target: '_blank', rel: 'noopener' }, f.name)),
    el('td', {}, f.kind),
    el('td', { class: 'num' }, bytes(f.size_bytes)))), 'no files in the bucket', 3);
  const form = document.getElementById('render-controls');
  form.elements.label.value = '';
  render();
  renderColor();
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

function renderQuery(extra) {
  const form = document.getElementById('render-controls');
  const size = form.elements.size.value;
  const params = new URLSearchParams({ width: size, height: size, stretch: form.elements.stretch.value });
  if (form.elements.source.value !== 'auto') params.set('source', form.elements.source.value);
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
  status.textContent = 'rendering…';
  status.className = 'muted';
  try {
    const answer = await getJSON(`${detail.answer.render.service}?${renderQuery()}`);
    if (seq !== state.renderSeq) return;
    img.src = answer.url;
    status.textContent = `${answer.width}×${answer.height}${answer.cached ? ', from the cache' : ', rendered now'}`;
  } catch (error) {
    if (seq !== state.renderSeq) return;
    img.removeAttribute('src');
    status.textContent = `image service: ${error.message}`;
    status.className = 'error';
  }
}

// A colour composite exists when the image service finds red, green and blue frames of the set.
async function renderColor() {
  const detail = state.detail;
  if (!detail || !detail.answer || detail.dir !== 'data') return;
  const figure = document.getElementById('color-figure');
  const status = document.getElementById('color-status');
  try {
    const answer = await getJSON(`${detail.answer.render.service}?${renderQuery({ color: 'true', source: 'auto' })}`);
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

// --- wiring --------------------------------------------------------------------------------------

document.getElementById('devtools-toggle').addEventListener('click', event => {
  const panel = document.getElementById('devtools');
  panel.hidden = !panel.hidden;
  event.currentTarget.setAttribute('aria-pressed', String(!panel.hidden));
});
document.getElementById('detail-close').addEventListener('click', () => document.getElementById('detail').close());
document.getElementById('detail').addEventListener('close', () => { state.detail = null; });
document.getElementById('header-search').addEventListener('input', filterHeader);
document.getElementById('render-controls').addEventListener('change', () => { render(); renderColor(); });
document.getElementById('render-controls').addEventListener('submit', event => { event.preventDefault(); render(); });
window.addEventListener('hashchange', () => {
  const site = siteFromHash();
  if (site && site !== state.site) selectSite(site);
});

loadSites();

"""The viewer in a real browser: Debian's chromium, headless, driven by Playwright, against the local
stack's front after a simulated night at two sites.

Skips, saying why, only where no browser can be had (`make browser` installs Debian's chromium when
run as root; Playwright is pinned in requirements-dev.txt and never downloads a browser of its own).
Screenshots go to img/latest/ (ignored by git); img/viewer.png in the README is a copy of one.

The tests share one stack and one page and run in file order: the night is looked at, an exposure
opened and closed, then a late upload must appear by itself.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from archive import aws
from archive.database import get_engine
from archive.ingest.uploads_log import recent_uploads
from archive.local import viewer
from archive.local.demo import COLOUR_FILTERS, DeliveryLog, expected_keys
from archive.local.metrics_log import local_summary
from archive.local.simulate import SimulationResult, SiteRun, simulate
from archive.local.stack import LocalStack, StackOptions
from archive.settings import get_settings
from archive.statuses import STATUSES
from tests.waiting import wait_until

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed: pip install -r requirements-dev.txt -c constraints.txt"
)
expect = sync_api.expect

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "img" / "latest"
CHROMIUM = os.environ.get("ARCHIVE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)


def at(minutes: float) -> Callable[[], dt.datetime]:
    return lambda: T0 + dt.timedelta(minutes=minutes)



@dataclass
class Night:
    stack: LocalStack
    runs: dict[str, SimulationResult]
    corrupt: str
    log: DeliveryLog


@dataclass
class Browser:
    page: Any
    problems: list[str]  # page errors and console errors
    refused: list[tuple[int, str]]  # answers >= 400: (status, path?query)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no browser at {CHROMIUM}: `make browser` installs Debian's chromium (it needs root)")
    with sync_api.sync_playwright() as api:
        yield api.chromium


def open_browser(chromium: Any, profile: Path) -> tuple[Any, Browser]:
    context = chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1440, "height": 900},
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    browser = Browser(page, [], [])
    page.on("pageerror", lambda exc: browser.problems.append(f"page error: {exc}"))
    # A refused request is reported by its response (below) with its URL; the console's copy has none.
    page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
            and browser.problems.append(f"console: {m.text}"))
    page.on("response", lambda r: r.status >= 400 and browser.refused.append(
        (r.status, urlsplit(r.url).path + "?" + urlsplit(r.url).query)))
    return context, browser


def stack_options(state: Path, **extra: Any) -> StackOptions:
    return StackOptions(port=0, state_dir=state, settings_env={"LOG_LEVEL": "WARNING"}, notice=lambda _: None, **extra)


def test_an_empty_archive_says_so_instead_of_failing(tmp_path, database, chromium):
    context, browser = open_browser(chromium, tmp_path / "profile")
    try:
        with LocalStack(stack_options(tmp_path / ".archive")) as stack:
            browser.page.goto(viewer.page_url(stack.api_url))
            expect(browser.page.locator("#sites")).to_contain_text("no sites yet")
            expect(browser.page.locator("[data-testid=exposure]")).to_have_count(0)
    finally:
        context.close()
    assert browser.problems == [] and browser.refused == []


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Night]:
    """A running stack after a night at `tst` (two smart stacks of 3, singles, an expiring exposure, an info
    image, one corrupt JPG) and at `mrc` two exposures and a colour set (a smart stack through rp, gp, B)."""
    log = DeliveryLog()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", database_url)
        get_settings.cache_clear()
        with get_engine().begin() as conn:
            conn.execute(text("TRUNCATE images RESTART IDENTITY"))
        with LocalStack(stack_options(tmp_path_factory.mktemp("viewer") / ".archive", on_delivery=log.add)) as stack:
            runs = {
                "stacks": simulate(SiteRun(site="tst", exposures=6, smartstack=3, files="hjf", seed=21),
                                   now=at(0), progress=False),
                "singles": simulate(SiteRun(site="tst", exposures=2, files="hjf", seed=22), now=at(10), progress=False),
                "expiring": simulate(SiteRun(site="tst", exposures=1, data_type="EP", files="hj", seed=23),
                                     now=at(15), progress=False),
                "info": simulate(SiteRun(site="tst", exposures=1, s3_directory="info-images", channel=1, seed=24),
                                 now=at(16), progress=False),
                "other": simulate(SiteRun(site="mrc", exposures=2, files="hj", seed=25), now=at(5), progress=False),
                "colour": simulate(SiteRun(site="mrc", exposures=3, smartstack=3, filters=COLOUR_FILTERS, seed=27),
                                   now=at(20), progress=False),
            }
            last_stack = runs["stacks"].exposures[-1]
            corrupt = f"data/{last_stack.base_filename[:-8]}00000099-EX10.jpg"
            aws.client("s3").put_object(Bucket=get_settings().bucket, Key=corrupt, Body=b"not a JPEG at all")
            expected = expected_keys(u for r in runs.values() for u in r.uploads) | {corrupt}
            expected.discard(corrupt[: -len("10.jpg")] + "11.jpg")  # a corrupt JPG gets no thumbnail
            wait_until(lambda: expected <= log.done().keys(), 90, "the night to be processed")
            yield Night(stack, runs, corrupt, log)
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def browser(chromium, night, tmp_path_factory) -> Iterator[Browser]:
    context, browser = open_browser(chromium, tmp_path_factory.mktemp("profile"))
    browser.page.goto(viewer.page_url(night.stack.api_url) + "#site=tst")
    try:
        yield browser
    finally:
        context.close()


def renders(night: Night) -> bool:
    """Whether this front serves the image service's render route (issue 11's /thumbnails)."""
    return any(route.pattern.startswith("/thumbnails") for route in night.stack.options.routes)


def test_the_latest_exposures_are_newest_first_with_thumbnails_and_smart_stacks_folded(night, browser):
    page = browser.page
    stacks, singles = night.runs["stacks"].exposures, night.runs["singles"].exposures
    # Newest first; of each smart stack only its third frame (photonranch-api's folding).
    shown = [night.runs["expiring"].exposures[0], *reversed(singles), stacks[5], stacks[2]]

    cards = page.locator("[data-testid=exposure]")
    expect(cards).to_have_count(len(shown))
    assert [cards.nth(i).get_attribute("data-base") for i in range(len(shown))] == [e.base_filename for e in shown]
    page.wait_for_function(
        "() => [...document.querySelectorAll('#exposures img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    card = page.locator(f'[data-base="{stacks[5].base_filename}"]')
    expect(card.locator(".badge")).to_have_text("stack 3 of 3")
    expect(card.locator(".data-type")).to_have_text("EX")
    expect(card.locator(".filter")).to_have_text(stacks[5].header["FILTER"])
    expect(card.locator(".exptime")).to_have_text(f"{stacks[5].header['EXPTIME']:g} s")
    expect(card.locator(".ra")).to_have_text(viewer.format_ra(stacks[5].header["RAHRS"]))
    expect(card.locator(".dec")).to_have_text(viewer.format_dec(stacks[5].header["DECDEG"]))
    expect(page.locator("#sites .site")).to_have_text(["mrc", "tst"])


def test_the_channels_and_the_dev_tools_show_the_info_image_upload_log_queues_and_expiries(night, browser):
    page = browser.page
    info, expiring = night.runs["info"].exposures[0], night.runs["expiring"].exposures[0]

    channel = page.locator('#channels [data-channel="1"]')
    expect(channel.locator(".name")).to_have_text(info.base_filename)
    page.wait_for_function("() => document.querySelector('#channels [data-channel=\"1\"] img').naturalWidth > 0")
    expect(page.locator('#channels [data-channel="2"] .placeholder')).to_have_text("empty")

    logged = recent_uploads("tst", 500)
    expect(page.locator("#uploads tbody tr")).to_have_count(len(logged))
    expect(page.locator("#uploads tbody tr").first.locator(".key")).to_have_attribute("title", logged[0]["filename"])
    failure = page.locator("#uploads tbody tr.failure")
    expect(failure).to_have_count(1)
    expect(failure.locator(".key")).to_have_attribute("title", night.corrupt)
    assert failure.locator(".reason").inner_text().strip()
    expect(page.locator("#queues tbody tr")).to_have_count(3)
    expect(page.locator("#expiries tbody tr .key")).to_have_text([expiring.base_filename])
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "viewer.png"))


def test_the_dev_tools_show_the_dashboards_numbers_per_site(night, browser):
    """The metrics panel: the upload counts by outcome and the lag the functions' metric lines give."""
    page = browser.page
    summary = local_summary(night.stack.metrics_log_path)
    assert summary is not None
    for site in ("tst", "mrc"):
        counts = summary["uploads"][site]
        expect(page.locator(f'#metrics-sites tbody tr[data-site="{site}"] td')).to_have_text(
            [site, *(str(counts.get(outcome, 0)) for outcome in STATUSES)])
    tst = summary["uploads"]["tst"]
    assert tst.get("failed", 0) + tst.get("rejected", 0) == 1  # the corrupt JPG
    expect(page.locator('#metrics [data-metric="lag"]')).to_contain_text(f"({summary['ingest_lag_ms']['count']})")


def test_an_exposure_opens_with_its_header_searchable_its_files_and_its_render(night, browser):
    page = browser.page
    exposure = night.runs["stacks"].exposures[5]

    page.locator(f'[data-base="{exposure.base_filename}"]').click()
    dialog = page.locator("[data-testid=detail]")
    expect(dialog).to_be_visible()
    expect(page.locator("#detail-title")).to_have_text(exposure.base_filename)
    expect(page.locator('#header tbody tr[data-key="SMARTSTK"] td').nth(1)).to_have_text(exposure.header["SMARTSTK"])
    page.fill("#header-search", "filter")
    visible = page.locator("#header tbody tr:visible")
    expect(visible).to_have_count(1)
    expect(visible.locator("td").nth(1)).to_have_text(exposure.header["FILTER"])
    page.fill("#header-search", "")
    expect(page.locator("#files tbody tr")).to_have_count(4)  # header, medium JPG, its thumbnail, small FITS
    if renders(night):
        page.wait_for_function("() => document.getElementById('render-img').naturalWidth > 0")
        expect(page.locator("#render-status")).to_contain_text("×")
        page.select_option("#render-controls select[name=stretch]", "asinh")
        page.wait_for_function("() => document.getElementById('render-status').textContent.includes('×')")
    else:  # the image service's render route is not on this front (issue 11 not merged): said in words
        expect(page.locator("#render-status")).to_have_text("image service: Not Found")
    page.screenshot(path=str(SHOTS / "viewer-exposure.png"))
    page.click("#detail-close")
    expect(dialog).to_be_hidden()


def test_an_exposure_of_a_colour_set_shows_its_colour_composite(night, browser):
    if not renders(night):
        pytest.skip("the image service's render route is not on this front")
    page = browser.page
    colour = night.runs["colour"].exposures
    assert [e.header["FILTER"] for e in colour] == list(COLOUR_FILTERS)

    page.locator('#sites .site[data-site="mrc"]').click()
    card = page.locator(f'[data-base="{colour[-1].base_filename}"]')  # the stack folds to its last frame
    expect(card.locator(".badge")).to_have_text(f"stack {len(colour)} of {len(colour)}")
    card.click()
    expect(page.locator("[data-testid=detail]")).to_be_visible()

    expect(page.locator("#color-figure")).to_be_visible()
    expect(page.locator("#color-status")).to_contain_text("colour composite of the exposure set")
    page.wait_for_function("() => document.getElementById('color-img').naturalWidth > 0")
    # The picture the page shows, fetched as the page fetched it: in colour, not grey (the simulator gives
    # each star a colour index, so the three filters see it differently).
    with urllib.request.urlopen(page.locator("#color-img").get_attribute("src"), timeout=30) as answer:
        picture = Image.open(io.BytesIO(answer.read()))
    assert picture.mode == "RGB"
    channels = np.asarray(picture, dtype=np.int16)
    spread = channels.max(axis=2) - channels.min(axis=2)
    assert (spread > 24).sum() > 0, f"no pixel of {picture.size} differs between channels by more than 24"
    page.screenshot(path=str(SHOTS / "viewer-colour.png"))
    page.click("#detail-close")
    page.locator('#sites .site[data-site="tst"]').click()
    expect(page.locator("[data-testid=exposure]").first).to_have_attribute(
        "data-base", night.runs["expiring"].exposures[0].base_filename)


def test_a_new_upload_appears_by_itself_and_nothing_went_wrong_in_the_page(night, browser):
    late = simulate(SiteRun(site="tst", exposures=1, files="hj", seed=26), now=at(30), progress=False)
    wait_until(lambda: expected_keys(late.uploads) <= night.log.done().keys(), 60, "the late exposure's processing")

    cards = browser.page.locator("[data-testid=exposure]")
    expect(cards.first).to_have_attribute("data-base", late.exposures[0].base_filename, timeout=30_000)
    assert browser.problems == []
    assert [(status, target) for status, target in browser.refused if not expected_refusal(night, status, target)] == []


def expected_refusal(night: Night, status: int, target: str) -> bool:
    """The page asks the image service for a colour composite of every exposure it opens; a 404 says the
    set has none (tst's simulated stacks are one filter each; mrc's colour set has all three). Without
    the service, every render is a 404."""
    if not target.startswith("/thumbnails/"):
        return False
    return status == 404 and ("color=true" in target or not renders(night))

"""The viewer at size: a site of 5,000 exposures and 6,000 upload-log items, loaded in Chromium.

Targets (issue 20), on this machine: the first list rendered within 1 s of navigation, `/api/sites`
answered within 100 ms, and a live refresh that changes nothing downloading no image at all.

The stack is the local one (`LocalStack`: moto's server, an embedded PostgreSQL, the front), filled
directly — rows through SQLAlchemy, each row's `11.jpg` put in the bucket, the log's items batch-
written — so the load takes seconds, not the hour an ingest of 20,000 files would. The baseline,
measured in the same run: the scan of the upload log that `/api/sites` used to make
(`uploads_log.logged_sites`). The verdicts are printed, never raised: timings depend on the machine.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

import db
from archive import aws
from archive.aws import to_dynamodb
from archive.database import get_engine
from archive.ingest.uploads_log import build_item, logged_sites
from archive.local import viewer
from archive.local.stack import LocalStack, StackOptions
from archive.settings import get_settings

SITE = "big"
EXPOSURES = int(os.environ.get("BENCH_VIEWER_EXPOSURES", "5000"))
LOG_ITEMS = int(os.environ.get("BENCH_VIEWER_LOG_ITEMS", "6000"))
CHROMIUM = os.environ.get("ARCHIVE_CHROMIUM", "/usr/bin/chromium")
LOADS = 5  # cold page loads (a new browser context each: no cache)
SITES_REQUESTS = 21
SCANS = 5  # the baseline takes seconds a time: fewer of them, interleaved with the first requests
THUMBNAILS = 600
FIRST_LIST_TARGET_MS = 1000
SITES_TARGET_MS = 100
FILTERS = ("rp", "gp", "ip", "Ha", "O3", "w")


def thumbnail_bytes() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((171, 128), 40).convert("L").save(out, "JPEG", quality=80)
    return out.getvalue()


def seed(now: dt.datetime) -> None:
    """5,000 rows a minute apart (newest now), each with its 11.jpg; 6,000 log items; one info-less site."""
    rows = []
    for i in range(EXPOSURES):
        when = (now - dt.timedelta(minutes=EXPOSURES - i)).replace(tzinfo=None)
        base = f"{SITE}-kb001ms-{when:%Y%m%d}-{i:08d}"
        header = {"DATE-OBS": when.isoformat(timespec="milliseconds"), "OBJECT": f"M {i % 110}",
                  "FILTER": FILTERS[i % len(FILTERS)], "EXPTIME": "30", "SMARTSTK": "no", "SSTKNUM": "no"}
        rows.append({
            "base_filename": base, "data_type": "EX", "site": SITE, "capture_date": when, "sort_date": when,
            "right_ascension": (i % 240) / 10, "declination": 20 + i % 40, "altitude": 60.0, "azimuth": 180.0,
            "filter_used": header["FILTER"], "airmass": 1.15, "exposure_time": 30.0,
            "username": f"User {i % 7}", "user_id": f"google-oauth2|{100 + i % 7}", "header": json.dumps(header),
            "fits_01_exists": False, "fits_10_exists": True, "jpg_medium_exists": True, "jpg_small_exists": True,
            "capture_date_source": db.DATE_FROM_HEADER_TEXT,
        })
    with get_engine().begin() as conn:
        conn.execute(db.images.insert(), rows)
    # Every row says it has its 11.jpg; the newest THUMBNAILS are put (the pages a browser reaches here),
    # which keeps the load to minutes on a shared machine.
    s3, bucket, body = aws.client("s3"), get_settings().bucket, thumbnail_bytes()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda r: s3.put_object(Bucket=bucket, Key=f"data/{r['base_filename']}-EX11.jpg", Body=body),
                      rows[-THUMBNAILS:]))
    dynamodb, table = aws.client("dynamodb"), get_settings().uploads_log_table
    items = []
    for i in range(LOG_ITEMS):
        row = rows[i % len(rows)]
        moment = (now - dt.timedelta(seconds=LOG_ITEMS - i)).replace(tzinfo=None)
        items.append(build_item(key=f"data/{row['base_filename']}-EX{'11' if i % 2 else '10'}.jpg", site=SITE,
                                size_bytes=2000, status="failed" if i % 97 == 0 else "ingested",
                                reason="thumbnail written" if i % 97 else "not a JPEG", upload_time=moment,
                                processed_at=moment, ttl_hours=48))
    batches = [items[i:i + 25] for i in range(0, len(items), 25)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda batch: dynamodb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": to_dynamodb(item)}} for item in batch]}), batches))


def timed_get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as answer:
        answer.read()
    return (time.perf_counter() - start) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def browser_figures(page_url: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    loads: list[dict[str, float]] = []
    refresh: dict[str, Any] = {}
    with sync_playwright() as api:
        browser = api.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless"])
        try:
            for n in range(LOADS):
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                page = context.new_page()
                page.goto(f"{page_url}?site={SITE}")
                page.wait_for_function("() => performance.getEntriesByName('viewer:list').length > 0 && performance"
                                       ".getEntriesByType('resource').some(r => r.name.endsWith('/api/sites'))",
                                       timeout=60_000)
                figures = page.evaluate("""() => {
                    const list = performance.getEntriesByName('viewer:list')[0].startTime;
                    const sites = performance.getEntriesByType('resource').find(r => r.name.endsWith('/api/sites'));
                    const cards = document.querySelectorAll('[data-testid=exposure]').length;
                    return { list, sites: sites ? sites.duration : NaN, cards };
                }""")
                loads.append(figures)
                if n == LOADS - 1:  # a live refresh that changes nothing: what does it fetch?
                    page.wait_for_function("() => [...document.querySelectorAll('#exposures img')]"
                                           ".filter(i => i.loading !== 'lazy' || i.complete).every(i => i.complete)")
                    page.wait_for_timeout(500)
                    requests: list[tuple[str, str]] = []
                    page.on("request", lambda r, seen=requests: seen.append((r.resource_type, r.url)))
                    start = time.perf_counter()
                    page.evaluate("() => refreshAll(state.site)")
                    refresh = {
                        "ms": (time.perf_counter() - start) * 1000,
                        "images": sum(kind == "image" for kind, _ in requests),
                        "api": sum("/viewer/api/" in url for _, url in requests),
                        "cards": page.evaluate("() => document.querySelectorAll('[data-testid=exposure]').length"),
                    }
                    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
                    page.wait_for_function("() => document.querySelectorAll('[data-testid=exposure]').length > 60")
                    refresh["after_scroll_cards"] = page.evaluate(
                        "() => document.querySelectorAll('[data-testid=exposure]').length")
                context.close()
        finally:
            browser.close()
    return {"loads": loads, "refresh": refresh}


def main() -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        print(f"no browser at {CHROMIUM}: `make browser` installs Debian's chromium (as root); skipped")
        return
    print(f"{EXPOSURES} exposures and {LOG_ITEMS} upload-log items at {SITE}; {os.cpu_count()} CPUs, "
          f"load average {load:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp:
        # No TTL sweep during the run: each sweep scans every table in moto (docs/local-stack.md, reprocess).
        options = StackOptions(port=0, state_dir=Path(tmp) / ".archive", fresh_database=True, notice=lambda _: None,
                               settings_env={"LOG_LEVEL": "WARNING"}, write_env_file=False, sweep_interval=3600)
        saved = os.environ.pop("DATABASE_URL", None)  # the stack's own embedded PostgreSQL, never yours
        try:
            with LocalStack(options) as stack:
                started = time.perf_counter()
                seed(dt.datetime.now(dt.UTC).replace(microsecond=0))
                print(f"loaded in {time.perf_counter() - started:.1f} s", flush=True)
                sites_url = viewer.page_url(stack.api_url) + "api/sites"
                cold_ms = timed_get(sites_url)  # the first: the engine's pool, the clients, the bucket listing
                sites_ms, scan_ms = [], []
                for n in range(SITES_REQUESTS):  # interleaved with the baseline, so load lands on both
                    sites_ms.append(timed_get(sites_url))
                    if n < SCANS:
                        start = time.perf_counter()
                        logged_sites()
                        scan_ms.append((time.perf_counter() - start) * 1000)
                figures = browser_figures(viewer.page_url(stack.api_url))
        finally:
            if saved is not None:
                os.environ["DATABASE_URL"] = saved
            get_settings.cache_clear()
    sites_p50, scan_p50 = statistics.median(sites_ms), statistics.median(scan_ms)
    lists = [f["list"] for f in figures["loads"]]
    in_page_sites = [f["sites"] for f in figures["loads"]]
    refresh = figures["refresh"]
    print(f"/api/sites over HTTP: p50 {sites_p50:.1f} ms, p95 {percentile(sites_ms, 95):.1f} ms "
          f"({SITES_REQUESTS} requests)")
    print(f"  the first request (nothing kept yet: bucket listing, log probes): {cold_ms:.1f} ms")
    print(f"  baseline, the scan of the upload log it used to make: p50 {scan_p50:.1f} ms "
          f"-> {scan_p50 / sites_p50:.1f}x the time of the whole answer now")
    print(f"first list rendered (navigation start to the first page of cards, {LOADS} cold loads): "
          f"p50 {statistics.median(lists):.0f} ms, max {max(lists):.0f} ms; {figures['loads'][0]['cards']} cards")
    print(f"/api/sites as the page saw it: p50 {statistics.median(in_page_sites):.0f} ms")
    print(f"live refresh that changes nothing: {refresh['images']} image downloads, {refresh['api']} API requests, "
          f"{refresh['ms']:.0f} ms; cards {refresh['cards']} before and after; scrolling to the end loaded "
          f"{refresh['after_scroll_cards']} cards")
    verdicts = [
        (f"first list rendered ≤ {FIRST_LIST_TARGET_MS} ms (p50)", statistics.median(lists) <= FIRST_LIST_TARGET_MS),
        (f"/api/sites ≤ {SITES_TARGET_MS} ms (p50)", sites_p50 <= SITES_TARGET_MS),
        ("live refresh that changes nothing: 0 image downloads", refresh["images"] == 0),
    ]
    for text, ok in verdicts:
        print(f"{'met' if ok else 'MISSED'}: {text}")

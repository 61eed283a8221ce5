"""`python -m archive demo`: the whole pipeline on this machine, checked, measured and pictured.

In one process: start the local stack (a fresh embedded database unless DATABASE_URL is set, moto on
a free port, the image API's HTTP front beside it), then act as the sites: one `EP` exposure at `tst`
that expires after a few seconds (uploaded first, so its expiry runs while the rest is processed), two
sites × N exposures with header, medium JPG and small and large FITS, a smart stack of three exposures
through rp, gp and B (a colour set), one info image on channel 1 and one all-sky image. Wait until the
ingest worker has processed every upload and every thumbnail the archive wrote, then check the outcome
from the outside (the database, the upload log, the info channel, the bucket, the datastream queue,
the image API rendering one exposure from its FITS and the colour set as one picture),
print a summary with throughput and upload-to-row latency, and save a contact sheet of the thumbnails.
Exit status 1 when any check fails, 2 when processing did not finish within the timeout.

Latency of an upload = when the ingest handler returned for its message (the row and the upload-log
item are written by then) minus when S3 answered the site's POST (the object exists from then on).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import select
from tqdm import tqdm

import db
from archive import database
from archive.aws import client, from_dynamodb
from archive.formats.filenames import FilenameError, FileRole, file_role, parse_key, thumbnail_name
from archive.ingest.uploads_log import newest_attempts, scan_items
from archive.local import viewer
from archive.local.contact_sheet import contact_sheet
from archive.local.image_checks import check_render
from archive.local.simulate import Exposure, SimulationResult, SiteRun, UploadRecord, simulate
from archive.local.stack import LocalStack, StackOptions
from archive.local.worker import Delivery
from archive.settings import get_settings
from archive.statuses import INGESTED

DEMO_SITES = ("tst", "mrc")
COLOUR_FILTERS = ("rp", "gp", "B")
EXPIRING_SITE = "tst"
EXPIRY_SECONDS = 5


# ---------------------------------------------------------------------------------------------------
# Pure pieces: bookkeeping, statistics, checks and the summary.


class DeliveryLog:
    """What the worker processed, when; filled from the worker thread, read by the demo."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[str, float] = {}  # key -> first successful delivery time
        self.failures = 0
        self.handler_seconds = 0.0  # time spent inside the handler, all batches
        self.objects = 0  # objects the handler was given, retries included

    def add(self, deliveries: list[Delivery]) -> None:
        """Called by the worker once per batch."""
        with self._lock:
            if deliveries:
                self.handler_seconds += deliveries[0].finished_at - deliveries[0].started_at
                self.objects += sum(len(d.keys) for d in deliveries)
            for delivery in deliveries:
                if not delivery.ok:
                    self.failures += 1
                    continue
                for key in delivery.keys:
                    self._done.setdefault(key, delivery.finished_at)

    def done(self) -> dict[str, float]:
        with self._lock:
            return dict(self._done)


def thumbnail_key(key: str) -> str | None:
    """The thumbnail the archive writes beside a medium JPG, else None."""
    try:
        parsed = parse_key(key)
    except FilenameError:
        return None
    if file_role(parsed.name) is not FileRole.JPG_MEDIUM:
        return None
    return f"{parsed.s3_directory}/{thumbnail_name(parsed.name).filename}"


def tile_label(key: str) -> str:
    """`site counter directory` under a contact-sheet tile, e.g. `tst 00000012 data`."""

    parsed = parse_key(key)
    return f"{parsed.name.site} {parsed.name.counter} {parsed.s3_directory}"


def expected_keys(uploads: Iterable[UploadRecord]) -> set[str]:
    """Every object the worker must process: the uploads and the thumbnails they cause."""
    keys = {u.key for u in uploads}
    return keys | {t for t in map(thumbnail_key, list(keys)) if t is not None}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of a non-empty sequence."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def latencies(uploads: Iterable[UploadRecord], done: Mapping[str, float]) -> list[float]:
    """Seconds from each upload's completion to its processing (uploads not processed are left out)."""
    return [max(0.0, done[u.key] - u.finished_at) for u in uploads if u.key in done]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def check_rows(exposures: Sequence[Exposure], rows: Mapping[str, Mapping[str, Any]]) -> Check:
    """Each exposure has one row, dated by its header's DATE-OBS, with every file flag set."""
    problems = []
    for exposure in exposures:
        row = rows.get(exposure.base_filename)
        if row is None:
            problems.append(f"{exposure.base_filename}: no row")
            continue
        missing = [flag for flag in db.FLAGS if not row[flag]]
        date_obs = dt.datetime.fromisoformat(exposure.header["DATE-OBS"])
        if missing:
            problems.append(f"{exposure.base_filename}: {', '.join(missing)} false")
        elif row["capture_date"] != date_obs:
            problems.append(f"{exposure.base_filename}: capture_date {row['capture_date']} != DATE-OBS {date_obs}")
        elif row["right_ascension"] is None or row["filter_used"] != exposure.header["FILTER"]:
            problems.append(f"{exposure.base_filename}: header columns not filled")
        elif not json.loads(row["header"]).get("SSTKNUM"):
            problems.append(f"{exposure.base_filename}: header JSON lacks SSTKNUM")
    return Check("rows and file flags", not problems, _summary(len(exposures), problems, "rows complete"))


def check_log(keys: Iterable[str], newest: Mapping[str, str]) -> Check:
    """Each key's newest upload-log item (its latest attempt) has status `ingested`."""
    keys = sorted(keys)
    problems = [f"{k}: newest item {newest[k]!r}" if k in newest else f"{k}: no item"
                for k in keys if newest.get(k) != INGESTED]
    return Check("upload log statuses", not problems, _summary(len(keys), problems, f"newest items {INGESTED!r}"))


def check_datastream(expected: Iterable[tuple[str, str, int | None]], bodies: Iterable[str]) -> Check:
    """A datastream message for every exposure (directory, base filename, channel for info images)."""
    seen = set()
    for body in bodies:
        message = json.loads(body)
        data = message.get("data", {})
        seen.add((data.get("s3_directory"), data.get("base_filename"), message.get("channel")))
    expected = sorted(expected, key=str)
    problems = [f"{d}/{b} channel {c}: no message" for d, b, c in expected if (d, b, c) not in seen]
    return Check("datastream messages", not problems, _summary(len(expected), problems, "exposures announced"))


def _summary(total: int, problems: list[str], what: str) -> str:
    if not problems:
        return f"{total}/{total} {what}"
    shown = "; ".join(problems[:3]) + (f"; … {len(problems) - 3} more" if len(problems) > 3 else "")
    return f"{total - len(problems)}/{total} {what}; {shown}"


@dataclass
class DemoReport:
    checks: list[Check] = field(default_factory=list)
    uploads: int = 0
    upload_bytes: int = 0
    processed: int = 0
    exposures: int = 0
    seconds_total: float = 0.0
    seconds_processing: float = 0.0  # first upload started -> last object processed
    latencies: list[float] = field(default_factory=list)
    retries: int = 0
    handler_ms_per_object: float = 0.0
    contact_sheet: Path | None = None
    image_api: str = ""
    database: str = ""
    viewer_url: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def format(self) -> str:
        rate = self.processed / self.seconds_processing if self.seconds_processing else 0.0
        lines = [
            "",
            "Demo summary",
            f"  database            {self.database}",
            f"  exposures           {self.exposures}",
            f"  files uploaded      {self.uploads} ({self.upload_bytes / 1e6:.1f} MB), presigned POSTs",
            f"  objects processed   {self.processed} (uploads + thumbnails), {self.retries} failed deliveries",
            f"  throughput          {rate:.1f} files/s ({self.seconds_processing:.1f} s from first upload to last)",
        ]
        lines.append(f"  handler time        {self.handler_ms_per_object:.0f} ms per object (one worker, batches ≤ 10)")
        if self.latencies:
            p50, p95 = percentile(self.latencies, 50) * 1000, percentile(self.latencies, 95) * 1000
            lines.append(
                f"  latency upload→row  p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max(self.latencies) * 1000:.0f} ms"
                f" ({len(self.latencies)} uploads)"
            )
        lines.append(f"  wall time           {self.seconds_total:.1f} s")
        if self.contact_sheet:
            lines.append(f"  contact sheet       {self.contact_sheet}")
        if self.image_api:
            lines.append(f"  image API           {self.image_api}/thumbnails/{{base_filename}} (renders saved beside"
                         " the contact sheet)")
        if self.viewer_url:
            lines.append(f"  viewer              {self.viewer_url}")
        lines.append("")
        lines.append("Checks")
        lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.name:<26} {c.detail}" for c in self.checks]
        lines.append("")
        lines.append("all checks passed" if self.ok else "SOME CHECKS FAILED")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Reading the outcome back (the edges).


def fetch_rows(base_filenames: Iterable[str]) -> dict[str, dict[str, Any]]:
    names = list(base_filenames)
    with database.get_engine().connect() as conn:
        result = conn.execute(select(db.images).where(db.images.c.base_filename.in_(names))).mappings()
        return {row["base_filename"]: dict(row) for row in result}


def fetch_newest_statuses() -> dict[str, str]:
    """filename -> status of its newest upload-log item (the latest attempt)."""
    return {key: str(item["status"]) for key, item in newest_attempts(scan_items()).items()}


def drain_queue(queue_url: str) -> list[str]:
    """Every message body in a queue (received and deleted: nobody else reads it locally)."""

    sqs = client("sqs")
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return bodies
        bodies += [m["Body"] for m in messages]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def get_object(key: str) -> bytes | None:
    s3 = client("s3")
    try:
        return s3.get_object(Bucket=get_settings().bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def check_thumbnails(medium_keys: Sequence[str], height: int) -> tuple[Check, dict[str, bytes | None]]:
    found: dict[str, bytes | None] = {}
    problems = []
    for medium in medium_keys:
        key = thumbnail_key(medium)
        data = get_object(key) if key else None
        found[medium] = data
        if data is None:
            problems.append(f"{key}: missing")
            continue
        picture = Image.open(io.BytesIO(data))
        if picture.format != "JPEG" or picture.height != height:
            problems.append(f"{key}: {picture.format} {picture.width}×{picture.height}")
    check = Check("thumbnails", not problems, _summary(len(medium_keys), problems, f"JPEG, {height} px tall"))
    return check, found


def check_info_channel(site: str, channel: int, exposure: Exposure) -> Check:
    pk = f"{site}#{channel}"
    raw = client("dynamodb").get_item(TableName=get_settings().info_images_table, Key={"pk": {"S": pk}})
    item = from_dynamodb(raw.get("Item", {}))
    wanted = {"base_filename": exposure.base_filename, "jpg_medium_exists": True, "jpg_small_exists": True,
              "fits_10_exists": True}
    wrong = [f"{k}={item.get(k)!r}" for k, v in wanted.items() if item.get(k) != v]
    if not isinstance(item.get("header"), dict) or item["header"].get("FILTER") != exposure.header["FILTER"]:
        wrong.append("header map missing")
    detail = f"{pk}: {', '.join(wrong)}" if wrong else f"{pk} holds {exposure.base_filename}"
    return Check("info-image channel", not wrong, detail)


def exposure_gone(exposure: Exposure) -> tuple[bool, str]:
    prefix = f"{exposure.s3_directory}/{exposure.base_filename}-"
    left = client("s3").list_objects_v2(Bucket=get_settings().bucket, Prefix=prefix).get("KeyCount", 0)
    row = fetch_rows([exposure.base_filename]).get(exposure.base_filename)
    if left or row:
        return False, f"{exposure.base_filename}: {left} objects, {'a row' if row else 'no row'} left"
    return True, f"{exposure.base_filename} ({exposure.data_type}, {EXPIRY_SECONDS} s) deleted: objects and row"


# ---------------------------------------------------------------------------------------------------
# The run.


def wait_for(done_log: DeliveryLog, expected: set[str], deadline: float, progress: bool) -> set[str]:
    """Block until every expected key is processed or the deadline passes; returns what is missing."""

    with tqdm(total=len(expected), unit="file", desc="processing", disable=not progress) as bar:
        while True:
            missing = expected - done_log.done().keys()
            bar.update(len(expected) - len(missing) - bar.n)
            if not missing or time.time() > deadline:
                return missing
            time.sleep(0.1)


def wait_until_expired(expiring: Exposure, deadline: float) -> Check:
    gone, detail = exposure_gone(expiring)
    while not gone and time.time() < deadline:
        time.sleep(0.5)
        gone, detail = exposure_gone(expiring)
    return Check("expired exposure gone", gone, detail)


def expected_announcements(
    results: Iterable[SimulationResult], info: Exposure
) -> list[tuple[str, str, int | None]]:
    """The datastream messages the demo's uploads must cause: one per exposure, the channel for info."""
    announced: list[tuple[str, str, int | None]] = [
        (e.s3_directory, e.base_filename, None) for r in results for e in r.exposures if e.s3_directory != "info-images"
    ]
    announced.append((info.s3_directory, info.base_filename, 1))
    return announced


def demo_runs(exposures: int) -> list[tuple[str, SiteRun]]:
    """What the simulated sites upload, in order (the expiring exposure first)."""
    return [
        ("expiring", SiteRun(site=EXPIRING_SITE, exposures=1, data_type="EP", seed=1)),
        *[(site, SiteRun(site=site, exposures=exposures, seed=10 + i)) for i, site in enumerate(DEMO_SITES)],
        ("colour", SiteRun(site=DEMO_SITES[1], exposures=len(COLOUR_FILTERS), smartstack=len(COLOUR_FILTERS),
                           filters=COLOUR_FILTERS, seed=5)),
        ("info", SiteRun(site=EXPIRING_SITE, exposures=1, s3_directory="info-images", channel=1, seed=3)),
        ("allsky", SiteRun(site=DEMO_SITES[1], exposures=1, s3_directory="allsky", seed=4)),
    ]


def image_api_checks(api_url: str, results: Mapping[str, SimulationResult], state_dir: Path) -> list[Check]:
    """One exposure rendered from its large FITS, and the colour set as one picture."""
    single = results[DEMO_SITES[0]].exposures[0]
    label = f"{single.header['OBJECT']} {single.header['FILTER']} {single.header['EXPTIME']:g} s"
    fits_ok, fits_detail = check_render(api_url, single.base_filename,
                                        {"source": "large", "width": "256", "height": "256", "label": label},
                                        state_dir / "render-fits.jpg")
    colour = results["colour"].exposures[0]
    colour_ok, colour_detail = check_render(api_url, colour.base_filename, {"color": "true", "width": "256"},
                                            state_dir / "render-colour.jpg")
    return [Check("image API: FITS render", fits_ok, fits_detail),
            Check("image API: colour composite", colour_ok, colour_detail)]


def announce_stack(stack: LocalStack, report: DemoReport) -> None:
    """Where everything is: moto, the database, the image API and the viewer (also kept in the report)."""
    report.database = stack.database.description if stack.database else ""
    report.viewer_url = viewer.page_url(stack.api_url)
    report.image_api = stack.api_url
    print(f"local stack on {stack.endpoint_url}; database: {report.database}", flush=True)
    print(f"image API on {stack.api_url} (e.g. {stack.api_url}/health/ready)", flush=True)
    print(f"viewer on {report.viewer_url}", flush=True)


def run_demo(args: argparse.Namespace, hold: Callable[[LocalStack, DemoReport], None] | None = None) -> DemoReport:
    """Run the demo; `hold(stack, report)`, when given, is called once the checks are done, with the
    stack still up (`make demo KEEP=1` waits there until Ctrl-C)."""
    started, log, report = time.time(), DeliveryLog(), DemoReport()
    options = StackOptions(
        port=args.port,
        state_dir=args.state_dir,
        database_name="archive_demo",
        fresh_database=True,
        settings_env={
            "SITE_EXPIRY_SECONDS": f"{EXPIRING_SITE}={EXPIRY_SECONDS}",
            "LOG_LEVEL": "WARNING",
        },
        on_delivery=log.add,
        write_env_file=hold is not None,  # a kept stack is there for `status`, `simulate-site`…
    )
    progress = not args.no_progress
    with LocalStack(options) as stack:
        announce_stack(stack, report)
        first_upload = time.time()
        results = {label: simulate(run, progress=progress) for label, run in demo_runs(args.exposures)}
        uploads = [u for r in results.values() for u in r.uploads]
        report.uploads = len(uploads)
        report.upload_bytes = sum(u.size_bytes for u in uploads)
        report.exposures = sum(len(r.exposures) for r in results.values())
        expected = expected_keys(uploads)
        missing = wait_for(log, expected, time.time() + args.timeout, progress)
        done = log.done()
        report.processed = len(expected & done.keys())
        report.retries = log.failures
        report.handler_ms_per_object = 1000 * log.handler_seconds / max(1, log.objects)
        finished = [done[k] for k in expected if k in done]
        report.seconds_processing = (max(finished) if finished else time.time()) - first_upload
        report.latencies = latencies(uploads, done)
        if missing:
            report.checks.append(Check("processing", False, _summary(len(expected), sorted(missing), "processed")))
        else:
            report.checks.append(Check("processing", True, f"{len(expected)}/{len(expected)} objects processed"))

        data_exposures = [e for label in DEMO_SITES for e in results[label].exposures]
        report.checks.append(check_rows(data_exposures, fetch_rows(e.base_filename for e in data_exposures)))
        report.checks.append(check_log(expected, fetch_newest_statuses()))
        medium = sorted(k for k in (u.key for u in uploads) if thumbnail_key(k))
        expiring = results["expiring"].exposures[0]
        expired_prefix = f"{expiring.s3_directory}/{expiring.base_filename}-"
        kept_medium = [k for k in medium if not k.startswith(expired_prefix)]
        thumbs, found = check_thumbnails(kept_medium, get_settings().thumbnail_height_px)
        report.checks.append(thumbs)
        info = results["info"].exposures[0]
        report.checks.append(check_info_channel(EXPIRING_SITE, 1, info))

        report.checks.append(wait_until_expired(expiring, time.time() + EXPIRY_SECONDS + 30))
        announced = expected_announcements(results.values(), info)
        report.checks.append(check_datastream(announced, drain_queue(stack.provisioned.datastream_queue_url)))
        report.checks += image_api_checks(report.image_api, results, Path(args.state_dir))

        tiles = [(tile_label(k), found[k]) for k in kept_medium]
        sheet = Path(args.state_dir) / "contact-sheet.png"
        sheet.write_bytes(
            contact_sheet(tiles, columns=args.columns, title=f"{len(tiles)} thumbnails made by the archive")
        )
        report.contact_sheet = sheet
        if hold is not None:
            hold(stack, replace(report, seconds_total=time.time() - started))
        print("stopping the local stack…", flush=True)
    report.seconds_total = time.time() - started
    return report

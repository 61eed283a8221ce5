"""The archive viewer: one page on the local stack's HTTP front that shows the archive as the web app would.

Route handlers only — an API Gateway HTTP API v2 event in, a v2 response out — served by the stack's
front (archive.local.api) beside the image service, so there is one server and one port family.

The JSON endpoints read what photonranch-api reads and nothing else: the `images` table (db), the
`recent-uploads-log`, `info-images` and `data-expiration-tracker` tables and the bucket, each through
the module that writes it (archive.ingest.uploads_log, archive.ingest.info_images, archive.ingest.expirations), so no
contract is copied here. They shape it as photonranch-api and the frontend do: exposures with a medium
JPG, newest first, smart stacks collapsed to their last frame, RA in sexagesimal hours. The queue depths
are the ones `python -m archive status` prints.

The page (archive/local/viewer/: index.html, app.js, style.css) is static — no build step, nothing loaded
from the network — and asks the image service (`/thumbnails/{base_filename}`) for every render.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import db
from archive import database
from archive.aws import client
from archive.formats.filenames import (
    MEDIUM_JPG_REDUCTIONS,
    S3_DIRECTORIES,
    THUMBNAIL_REDUCTION,
    UNKNOWN_SITE,
    FilenameError,
    FileRole,
    is_site,
    parse_base_filename,
    role_of,
)
from archive.ingest.expirations import list_exposure_objects, scheduled_expiries
from archive.ingest.info_images import site_channels as read_channels
from archive.ingest.uploads_log import ITEM_FIELDS, attempt_order, logged_sites, recent_uploads, uploaded_seconds
from archive.local.api import Route
from archive.local.metrics_log import local_summary
from archive.ops.queues import queue_depths
from archive.settings import get_settings
from archive.statuses import PROBLEMS
from handlers.responses import NO_STORE, json_response

logger = logging.getLogger(__name__)

PREFIX = "/viewer"
STATIC_DIR = Path(__file__).with_name("viewer")
STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
THUMBNAIL_SERVICE = "/thumbnails"  # the image service's route on the same front (archive/local/api.py)
DEFAULT_LIMIT = 60
MAX_LIMIT = 500
URL_SECONDS = 3600  # presigned links the page loads at once; a refresh signs new ones
UPLOADING_SECONDS = 30  # a site whose last upload is this recent counts as uploading (the page polls faster)

Event = Mapping[str, Any]
Response = dict[str, Any]
Handler = Callable[[Event], Response]


class BadRequest(ValueError):
    """A parameter the viewer cannot use; answered 400 with `{"message", "param"}`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


class NotFound(LookupError):
    """Nothing in the archive under that name; answered 404 with `{"message"}`."""


# ---------------------------------------------------------------------------------------------------
# Pure shaping: how the frontend formats coordinates, how photonranch-api collapses smart stacks.


def format_ra(hours: float | None) -> str:
    """Decimal hours as `HH:MM:SS.ss`, truncated (not rounded) as the frontend's RaDisplay does."""
    if hours is None or not math.isfinite(hours):
        return ""
    hundredths = math.floor(round((hours % 24) * 360_000, 6))
    h, rest = divmod(hundredths, 360_000)
    m, rest = divmod(rest, 6_000)
    return f"{h:02d}:{m:02d}:{rest // 100:02d}.{rest % 100:02d}"


def format_dec(degrees: float | None) -> str:
    """Decimal degrees as `±DD:MM:SS.s`, truncated like the frontend's DecDisplay."""
    if degrees is None or not math.isfinite(degrees):
        return ""
    sign = "-" if degrees < 0 else "+"
    tenths = math.floor(round(abs(degrees) * 36_000, 6))
    d, rest = divmod(tenths, 36_000)
    m, rest = divmod(rest, 600)
    return f"{sign}{d:02d}:{m:02d}:{rest // 10:02d}.{rest % 10}"


def _stack_position(package: Mapping[str, Any]) -> tuple[str, int] | None:
    """(stack id, frame number) when both are digits, the only stacks photonranch-api collapses."""
    stack, number = str(package.get("SMARTSTK") or ""), str(package.get("SSTKNUM") or "")
    if stack.isdigit() and number.isdigit():
        return stack, int(number)
    return None


def final_smart_stack_frames(packages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Keep single frames and the last frame of each smart stack, as photonranch-api filters its lists.

    A stack counts when SMARTSTK and SSTKNUM are digit strings (`no`, a missing header or any other id
    leaves the frame alone); of its frames in the list, those with the highest SSTKNUM stay. Order kept.
    """
    last: dict[str, int] = {}
    for package in packages:
        position = _stack_position(package)
        if position:
            last[position[0]] = max(last.get(position[0], position[1]), position[1])
    kept = []
    for package in packages:
        position = _stack_position(package)
        if position is None or position[1] >= last[position[0]]:
            kept.append(package)
    return kept


def plain(value: Any) -> Any:
    """DynamoDB's numbers (Decimal) as the int or float they were written as, through maps and lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    return value


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _epoch_ms(moment: dt.datetime | None) -> int | None:
    return int(moment.replace(tzinfo=dt.UTC).timestamp() * 1000) if moment else None


def thumbnail_service_url(base_filename: str, **params: object) -> str:
    """A link to the image service on the same front; booleans as `true`, empty values left out."""
    clean = {k: ("true" if v is True else v) for k, v in params.items() if v not in (None, "", False)}
    query = f"?{urlencode(clean)}" if clean else ""
    return f"{THUMBNAIL_SERVICE}/{quote(base_filename)}{query}"


def header_of(row: Mapping[str, Any]) -> dict[str, str] | None:
    """The row's header JSON as a dict (photonranch-api `json.loads` it), None when absent or unreadable."""
    raw = row.get("header")
    if not raw:
        return None
    try:
        header = json.loads(raw)
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def exposure_package(row: Mapping[str, Any], sign: Callable[[str], str], thumbnail_height: int) -> dict[str, Any]:
    """One exposure as the page lists it: photonranch-api's image package plus the display strings.

    `sign(key)` makes a link to an object. The thumbnail is the small JPG when the row says it exists,
    else the image service's render at the thumbnail height.
    """
    header = header_of(row) or {}
    base, data_type = row["base_filename"], row["data_type"]
    prefix = f"data/{base}-{data_type}"
    if row.get(FileRole.JPG_SMALL.flag):
        thumbnail, source = sign(f"{prefix}{THUMBNAIL_REDUCTION}.jpg"), "jpg"
    else:
        thumbnail, source = thumbnail_service_url(base, height=thumbnail_height, image=True), "service"
    return {
        "image_id": row.get("image_id"),
        "base_filename": base,
        "site": row.get("site"),
        "data_type": data_type,
        "s3_directory": "data",
        "capture_date": _epoch_ms(row.get("capture_date")),
        "capture_date_iso": _iso(row.get("capture_date")),
        "sort_date": _epoch_ms(row.get("sort_date")),
        "exposure_time": row.get("exposure_time"),
        "filter_used": row.get("filter_used"),
        "right_ascension": row.get("right_ascension"),
        "declination": row.get("declination"),
        "ra_display": format_ra(row.get("right_ascension")),
        "dec_display": format_dec(row.get("declination")),
        "altitude": row.get("altitude"),
        "azimuth": row.get("azimuth"),
        "airmass": row.get("airmass"),
        "username": row.get("username"),
        "user_id": row.get("user_id"),
        "object": header.get("OBJECT", ""),
        "SMARTSTK": header.get("SMARTSTK", ""),
        "SSTKNUM": header.get("SSTKNUM", ""),
        "SSTKLEN": header.get("SSTKLEN", ""),
        **{flag: bool(row.get(flag)) for flag in db.FLAGS},
        "jpg_url": sign(f"{prefix}{MEDIUM_JPG_REDUCTIONS[0]}.jpg") if row.get(FileRole.JPG_MEDIUM.flag) else "",
        "thumbnail_url": thumbnail,
        "thumbnail_source": source,
    }


def channel_package(channel: int, item: Mapping[str, Any] | None, sign: Callable[[str], str]) -> dict[str, Any]:
    """An info-image channel as photonranch-api's info image package, with links; `empty` when unset."""
    if not item or not item.get("base_filename"):
        return {"channel": channel, "empty": True}
    raw_header = item.get("header")
    header: Mapping[str, Any] = raw_header if isinstance(raw_header, Mapping) else {}
    small, medium = item.get(FileRole.JPG_SMALL.path_field), item.get(FileRole.JPG_MEDIUM.path_field)
    if item.get(FileRole.JPG_SMALL.flag) and small:
        thumbnail = sign(small)
    elif item.get(FileRole.JPG_MEDIUM.flag) and medium:
        thumbnail = sign(medium)
    else:
        thumbnail = ""
    return {
        "channel": channel,
        "empty": False,
        "base_filename": item["base_filename"],
        "data_type": item.get("data_type"),
        "file_date": item.get("file_date"),
        "s3_directory": "info-images",
        "object": header.get("OBJECT", ""),
        "filter": header.get("FILTER", ""),
        "date_obs": header.get("DATE-OBS", ""),
        **{role.flag: bool(item.get(role.flag)) for role in FileRole},
        "jpg_url": sign(medium) if item.get(FileRole.JPG_MEDIUM.flag) and medium else "",
        "thumbnail_url": thumbnail,
        "expiration_timestamp": item.get("expiration_timestamp"),
    }


def upload_row(item: Mapping[str, Any]) -> dict[str, Any]:
    """An upload-log item for the dev-tools table: the contract's fields, and whether it is a failure."""
    row = {name: item.get(name) for name in ITEM_FIELDS}
    uploaded = uploaded_seconds(item)
    return {
        **row,
        "status": str(row["status"] or ""),
        "reason": row["reason"] or "",
        "uploaded_iso": _iso(dt.datetime.fromtimestamp(uploaded, dt.UTC)) if uploaded is not None else None,
        "failure": row["status"] in PROBLEMS,
    }


def expiry_row(item: Mapping[str, Any], now: float) -> dict[str, Any]:
    expires = item.get("expiration_timestamp_s")
    return {
        "base_filename": item.get("pk"),
        "s3_directory": item.get("s3_directory"),
        "expiration_timestamp_s": expires,
        "expires_iso": _iso(dt.datetime.fromtimestamp(expires, dt.UTC)) if isinstance(expires, int) else None,
        "seconds_left": max(0, int(expires - now)) if isinstance(expires, int) else None,
        "cancelled": expires is None,
    }


def file_kind(filename: str) -> str:
    """What a file of an exposure is: its role's name (docs/contracts.md §1), else what its extension says."""
    stem, _, ext = filename.rsplit("/", 1)[-1].partition(".")
    if ext == "txt":
        return "header text"
    role = role_of(stem[-2:], ext)
    if role is not None:
        return role.label
    return "FITS" if ext.startswith("fits") else "other"


# ---------------------------------------------------------------------------------------------------
# Parameters and answers.


def _query(event: Event) -> Mapping[str, str]:
    return event.get("queryStringParameters") or {}


def _path(event: Event, name: str) -> str:
    return (event.get("pathParameters") or {}).get(name, "")


def site_param(event: Event, allow_unknown: bool = False) -> str:
    site = _path(event, "site")
    if is_site(site) or (allow_unknown and site == UNKNOWN_SITE):
        return site
    raise BadRequest("site", f"site {site!r} is not a site code (3-6 letters or digits)")


def strict_int(raw: str, low: int, high: int) -> int | None:
    """`raw` as an integer from `low` to `high`: ASCII digits only (no `²`, no sign), at most 9 of them;
    else None. `str.isdigit` accepts `²` and `int` refuses 4,301 digits, so neither is asked."""
    text = raw.strip()
    if not (0 < len(text) <= 9 and text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if low <= value <= high else None


def limit_param(event: Event, default: int = DEFAULT_LIMIT) -> int:
    raw = _query(event).get("limit")
    if raw is None or raw == "":
        return default
    value = strict_int(raw, 1, MAX_LIMIT)
    if value is None:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise BadRequest("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}, got {shown!r}")
    return value


def bool_param(event: Event, name: str, default: bool) -> bool:
    raw = _query(event).get(name)
    if raw is None or raw == "":
        return default
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(raw.lower())
    if value is None:
        raise BadRequest(name, f"{name} must be true/false/1/0/yes/no, got {raw!r}")
    return value


def answering(handler: Callable[[Event], Any]) -> Handler:
    """Turn a function returning JSON-able data into a route handler; 400/404 for our two refusals."""

    def handle(event: Event) -> Response:
        try:
            return json_response(200, handler(event), NO_STORE)
        except BadRequest as exc:
            return json_response(400, {"message": exc.message, "param": exc.param}, NO_STORE)
        except NotFound as exc:
            return json_response(404, {"message": str(exc)}, NO_STORE)
        except Exception as exc:
            if not (database.is_database_error(exc) or isinstance(exc, database.DatabaseConfigError)):
                raise
            logger.warning("viewer: database unavailable", exc_info=exc)  # the details name hosts and ports
            return json_response(503, {"message": "database unavailable"}, {**NO_STORE, "retry-after": "5"})

    handle.__name__ = handler.__name__
    handle.__doc__ = handler.__doc__
    return handle


# ---------------------------------------------------------------------------------------------------
# The edges: reading the archive.


def presigner() -> Callable[[str], str]:
    """`sign(key)`: a presigned GET of the bucket's object (computed locally, no request)."""

    s3, bucket = client("s3"), get_settings().bucket

    def sign(key: str) -> str:
        return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=URL_SECONDS)

    return sign


def _thumbnail_height() -> int:

    return get_settings().thumbnail_height_px


@answering
def list_sites(event: Event) -> dict[str, Any]:
    """Every site with rows in `images` or items in the upload log, with its row count and newest date."""

    with database.get_engine().connect() as conn:
        summaries = {s["site"]: s for s in db.site_summaries(conn) if s["site"]}
    sites = sorted(set(summaries) | logged_sites())
    return {
        "sites": [
            {
                "site": site,
                "exposures": summaries[site]["exposures"] if site in summaries else 0,
                "latest": _iso(summaries[site]["latest"]) if site in summaries else None,
            }
            for site in sites
        ]
    }


@answering
def site_exposures(event: Event) -> dict[str, Any]:
    """The site's latest exposures, newest first, final smart-stack frames only."""

    site = site_param(event)
    limit = limit_param(event)
    with_preview = not bool_param(event, "all", False)
    with database.get_engine().connect() as conn:
        rows = db.latest_exposures(conn, site, limit, with_preview=with_preview)
    sign, height = presigner(), _thumbnail_height()
    packages = [exposure_package(row, sign, height) for row in rows]
    kept = final_smart_stack_frames(packages)
    return {"site": site, "exposures": kept, "rows_read": len(rows), "collapsed": len(rows) - len(kept)}


@answering
def site_channels(event: Event) -> dict[str, Any]:
    """The site's three info-image channels."""

    site = site_param(event)
    found = plain(read_channels(site))
    sign = presigner()
    metadata = found["metadata"] or {}
    return {
        "site": site,
        "channels": [
            {**channel_package(n, item, sign), "assigned": metadata.get(f"channel{n}")}
            for n, item in found["channels"].items()
        ],
    }


@answering
def site_uploads(event: Event) -> dict[str, Any]:
    """The site's upload log, newest attempt first."""

    site = site_param(event, allow_unknown=True)
    items = [upload_row(plain(item)) for item in recent_uploads(site, limit_param(event, default=100))]
    return {"site": site, "uploads": items, "failures": sum(item["failure"] for item in items),
            "kept_hours": get_settings().uploads_log_ttl_hours}


@answering
def site_expiries(event: Event) -> dict[str, Any]:
    """The site's scheduled expiries, soonest first."""

    site = site_param(event)
    now = time.time()
    return {"site": site, "expiries": [expiry_row(plain(item), now) for item in scheduled_expiries(site)]}


def _queue_depths() -> list[dict[str, Any]]:
    """`python -m archive status`'s queues: ingest, its dead-letter queue, datastream (in that order)."""

    def count(text: str) -> int | None:
        return int(text) if text.isdigit() else None

    return [
        {"queue": name, "waiting": count(waiting), "in_flight": count(in_flight), "error": error}
        for name, waiting, in_flight, error in queue_depths()
    ]


@answering
def queues(event: Event) -> dict[str, Any]:
    """Ingest queue, its dead-letter queue and the datastream queue: waiting and in flight."""
    return {"queues": _queue_depths()}


@answering
def metrics_summary(event: Event) -> dict[str, Any]:
    """The dashboard's numbers, from the functions' metric lines (archive/local/metrics_log.py): uploads
    per site and outcome, ingest lag and thumbnail percentiles, image API statuses, hit ratio and times.
    `available` is false when the stack keeps no metrics log."""
    summary = local_summary(get_settings().metrics_log)
    return {"available": summary is not None, **(summary or {})}


@answering
def site_activity(event: Event) -> dict[str, Any]:
    """What the page polls: the site's newest upload-log item and the ingest queue; cheap to ask often.

    The page reloads its lists when this changes, and polls faster while `uploading` (an upload in the
    last UPLOADING_SECONDS, or messages waiting or in flight in the ingest queue). The datastream queue
    is left alone: locally nothing else reads it, and a poll that received its messages would take
    them from whoever does.
    """

    site = site_param(event, allow_unknown=True)
    newest = plain(recent_uploads(site, 1))
    ingest = _queue_depths()[0]  # the ingest queue comes first
    pending = (ingest["waiting"] or 0) + (ingest["in_flight"] or 0)
    last = uploaded_seconds(newest[0]) if newest else None
    recent = isinstance(last, int) and time.time() - last < UPLOADING_SECONDS
    return {
        "site": site,
        "latest_upload_id": attempt_order(newest[0]) if newest else None,
        "latest_upload_s": last,
        "ingest_pending": pending,
        "uploading": bool(recent or pending),
    }


def _exposure_files(s3_directory: str, base: str, sign: Callable[[str], str]) -> list[dict[str, Any]]:

    objects = list_exposure_objects(get_settings().bucket, f"{s3_directory}/{base}-")
    return [
        {
            "key": obj["Key"],
            "name": obj["Key"].rsplit("/", 1)[-1],
            "kind": file_kind(obj["Key"]),
            "size_bytes": obj.get("Size"),
            "last_modified": _iso(obj["LastModified"].astimezone(dt.UTC).replace(tzinfo=None))
            if obj.get("LastModified")
            else None,
            "url": sign(obj["Key"]),
        }
        for obj in sorted(objects, key=lambda o: o["Key"])
    ]


def _info_header(site: str, base: str) -> dict[str, str] | None:

    for item in plain(read_channels(site))["channels"].values():
        if item and item.get("base_filename") == base and isinstance(item.get("header"), dict):
            return item["header"]
    return None


@answering
def exposure_detail(event: Event) -> dict[str, Any]:
    """One exposure: its row (for `data/`), the whole header, its files, and where to render it."""

    raw = _path(event, "base_filename")
    try:
        name = parse_base_filename(raw)
    except FilenameError as exc:
        raise BadRequest("base_filename", exc.reason) from None
    base = name.base_filename
    s3_directory = _query(event).get("dir") or "data"
    if s3_directory not in S3_DIRECTORIES:
        raise BadRequest("dir", f"dir must be one of {', '.join(S3_DIRECTORIES)}, got {s3_directory!r}")
    sign = presigner()
    row = None
    if s3_directory == "data":
        with database.get_engine().connect() as conn:
            row = db.get_row(conn, base)
    files = _exposure_files(s3_directory, base, sign)
    if row is None and not files:
        raise NotFound(f"no exposure {base} under {s3_directory}/ (no row, no files)")
    if row is not None:
        summary = exposure_package(row, sign, _thumbnail_height())
        header = header_of(row)
    else:
        summary = {"base_filename": base, "site": name.site, "s3_directory": s3_directory}
        header = _info_header(name.site, base) if s3_directory == "info-images" else None
    summary["s3_directory"] = s3_directory
    return {
        "exposure": summary,
        "header": header,
        "files": files,
        "render": {
            "service": thumbnail_service_url(base),
            "from_fits": any(f["kind"].endswith("FITS") for f in files),
            "has_jpg": any(f["kind"] == "medium JPG" for f in files),
        },
    }


# ---------------------------------------------------------------------------------------------------
# The page itself.


def static_file(event: Event) -> Response:
    """index.html, app.js or style.css from archive/local/viewer/ (only those: no path walks the disk)."""
    name = _path(event, "asset") or "index.html"
    if name not in STATIC_TYPES:
        return json_response(404, {"message": f"no such file {name!r}"}, NO_STORE)
    return {
        "statusCode": 200,
        "headers": {"content-type": STATIC_TYPES[name], "cache-control": "no-cache"},
        "body": (STATIC_DIR / name).read_text(encoding="utf-8"),
        "isBase64Encoded": False,
    }


def to_index(event: Event) -> Response:
    """`/viewer` → `/viewer/`, so the page's relative links resolve."""
    return {"statusCode": 302, "headers": {"location": f"{PREFIX}/"}, "body": "", "isBase64Encoded": False}


_SITE = r"(?P<site>[^/]+)"


def page_url(api_url: str) -> str:
    """Where the page is on a front running at `api_url` (the stack's ARCHIVE_API_URL)."""
    return f"{api_url}{PREFIX}/"


def routes() -> list[Route]:
    """The viewer's routes, appended to the image API's on the stack's front (archive.local.stack)."""
    return [
        Route("GET", PREFIX, to_index),
        Route("GET", f"{PREFIX}/", static_file),
        Route("GET", rf"{PREFIX}/(?P<asset>[\w.-]+)", static_file),
        Route("GET", f"{PREFIX}/api/sites", list_sites),
        Route("GET", f"{PREFIX}/api/sites/{_SITE}/exposures", site_exposures),
        Route("GET", f"{PREFIX}/api/sites/{_SITE}/channels", site_channels),
        Route("GET", f"{PREFIX}/api/sites/{_SITE}/uploads", site_uploads),
        Route("GET", f"{PREFIX}/api/sites/{_SITE}/expiries", site_expiries),
        Route("GET", f"{PREFIX}/api/sites/{_SITE}/activity", site_activity),
        Route("GET", f"{PREFIX}/api/queues", queues),
        Route("GET", f"{PREFIX}/api/metrics", metrics_summary),
        Route("GET", f"{PREFIX}/api/exposures/(?P<base_filename>[^/]+)", exposure_detail),
    ]

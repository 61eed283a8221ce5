"""The archive viewer's HTTP side: one page on the local stack's front that shows the archive as the web app would.

Route handlers only — an API Gateway HTTP API v2 event in, a v2 response out — served by the stack's
front (archive.local.api) beside the image service, so there is one server and one port family. This
module parses and checks parameters and turns answers into responses; what is read and how it is
shaped is archive.local.viewer_data's.

Lists come a page at a time: exposures by a cursor on (sort_date, image_id) (`before=`, the `next` of
the previous page), the upload log by its range key (`before=`, an upload_id). Every page is an indexed
read, so the oldest exposure of a site costs what the newest does.

The page (archive/local/viewer/: index.html, app.js, style.css, favicon.svg) is static — no build
step, nothing loaded from the network — and asks the image service (`/thumbnails/{base_filename}`) for
every render.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import db
from archive import database
from archive.formats.filenames import S3_DIRECTORIES, UNKNOWN_SITE, FilenameError, is_site, parse_base_filename
from archive.ingest.expirations import scheduled_expiries
from archive.ingest.info_images import site_channels as read_channels
from archive.ingest.uploads_log import attempt_order, count_uploads, recent_uploads, uploaded_seconds, uploads_page
from archive.local import viewer_data as data
from archive.local.api import Route
from archive.local.metrics_log import local_summary
from archive.ops.queues import queue_depth, queue_names
from archive.render.params import RenderError
from archive.render.sources import matched_frames
from archive.settings import get_settings
from handlers.responses import NO_STORE, json_response

logger = logging.getLogger(__name__)

PREFIX = "/viewer"
STATIC_DIR = Path(__file__).with_name("viewer")
STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
DEFAULT_LIMIT = 60
MAX_LIMIT = 500
UPLOADING_SECONDS = 30  # a site whose last upload is this recent counts as uploading (the page polls faster)
MAX_TEXT = 100  # a search text longer than this is refused (it would match nothing anyway)
NIGHT_ENDS_UTC = dt.timedelta(days=1, hours=12)  # night D's list starts before D+1 12:00 UTC


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
# Parameters.


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
        raise BadRequest(name, f"{name} must be true/false/1/0/yes/no, got {raw[:40]!r}")
    return value


def text_param(event: Event, name: str) -> str:
    raw = (_query(event).get(name) or "").strip()
    if len(raw) > MAX_TEXT:
        raise BadRequest(name, f"{name} must be at most {MAX_TEXT} characters, got {len(raw)}")
    return raw


def number_param(event: Event, name: str) -> float | None:
    raw = (_query(event).get(name) or "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"[0-9]{1,7}(\.[0-9]{1,6})?", raw):
        raise BadRequest(name, f"{name} must be a number of seconds such as 30 or 2.5, got {raw[:40]!r}")
    return float(raw)


def date_param(event: Event, name: str) -> dt.datetime | None:
    raw = (_query(event).get(name) or "").strip()
    if not raw:
        return None
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
            raise ValueError
        return dt.datetime.strptime(raw, "%Y-%m-%d")
    except ValueError:
        raise BadRequest(name, f"{name} must be a date YYYY-MM-DD, got {raw[:40]!r}") from None


def cursor_param(event: Event) -> data.Cursor | None:
    """`before={epoch ms}_{image_id}`: the `next` of the previous page."""
    raw = _query(event).get("before") or ""
    if not raw:
        return None
    found = re.fullmatch(r"(-?[0-9]{1,15})_([0-9]{1,12})", raw)
    if not found:
        raise BadRequest("before", f"before must be a page cursor such as 1772334000000_42, got {raw[:40]!r}")
    return data.cursor_date(int(found.group(1))), int(found.group(2))


def exposure_filters(event: Event) -> tuple[dict[str, Any], data.Cursor | None]:
    """The list's filters (photonranch-api's filtered search, for one site) and where the page starts.

    user (a user id: "only mine"), filter, type, exptime_min/exptime_max (seconds), from/to (dates,
    both days included), q (base filename or OBJECT contains), night (the list starts at the end of
    that night: before the next day's 12:00 UTC), before (a page cursor; wins over night).
    """
    start, end = date_param(event, "from"), date_param(event, "to")
    filters: dict[str, Any] = {
        "user_id": text_param(event, "user"),
        "filter_used": text_param(event, "filter"),
        "data_type": text_param(event, "type"),
        "exposure_time_min": number_param(event, "exptime_min"),
        "exposure_time_max": number_param(event, "exptime_max"),
        "captured_from": start,
        "captured_before": end + dt.timedelta(days=1) if end else None,
        "text": text_param(event, "q"),
    }
    before = cursor_param(event)
    night = date_param(event, "night")
    if before is None and night is not None:
        before = (night + NIGHT_ENDS_UTC, 0)
    return filters, before


# ---------------------------------------------------------------------------------------------------
# Answers.


def answering(handler: Callable[[Event], Any]) -> Handler:
    """Turn a function returning JSON-able data into a route handler: 400/404 for our two refusals, 503
    when the database cannot be reached (the page then says the archive is unreachable and retries)."""

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


@answering
def list_sites(event: Event) -> dict[str, Any]:
    """Every site with rows in `images` or items in the upload log, with its row count and newest date."""
    return {"sites": data.site_list()}


@answering
def site_exposures(event: Event) -> dict[str, Any]:
    """A page of the site's exposures, newest first, final smart-stack frames only, filtered."""
    site = site_param(event)
    limit = limit_param(event)
    with_preview = not bool_param(event, "all", False)
    filters, before = exposure_filters(event)
    return data.exposures_page(site, limit, filters, before, with_preview)


@answering
def site_facets(event: Event) -> dict[str, Any]:
    """What the filters offer at the site: its users, filters and data types."""
    return data.site_facets(site_param(event))


@answering
def site_channels(event: Event) -> dict[str, Any]:
    """The site's three info-image channels."""
    site = site_param(event)
    found = data.plain(read_channels(site))
    sign = data.presigner()
    metadata = found["metadata"] or {}
    return {
        "site": site,
        "channels": [
            {**data.channel_package(n, item, sign), "assigned": metadata.get(f"channel{n}")}
            for n, item in found["channels"].items()
        ],
    }


@answering
def site_allsky(event: Event) -> dict[str, Any]:
    """The site's newest all-sky images."""
    site = site_param(event)
    return {"site": site, "images": data.allsky_images(site, data.presigner())}


@answering
def site_uploads(event: Event) -> dict[str, Any]:
    """A page of the site's upload log, newest attempt first; `failures=true` and `q=` filter it."""
    site = site_param(event, allow_unknown=True)
    limit = limit_param(event, default=100)
    failures_only = bool_param(event, "failures", False)
    search = text_param(event, "q")
    before = _query(event).get("before") or None
    if before is not None and not re.fullmatch(r"[0-9]{13}#[0-9A-Za-z-]{1,64}", before):
        raise BadRequest("before", f"before must be an upload_id from the previous page, got {before[:40]!r}")
    items, following = uploads_page(site, limit, before=before, failures_only=failures_only, text=search)
    rows = [data.upload_row(data.plain(item)) for item in items]
    total = None if before else count_uploads(site, failures_only=failures_only) if not search else None
    return {"site": site, "uploads": rows, "failures": sum(row["failure"] for row in rows), "total": total,
            "kept_hours": get_settings().uploads_log_ttl_hours,
            "next": following}


@answering
def site_expiries(event: Event) -> dict[str, Any]:
    """The site's scheduled expiries, soonest first."""
    site = site_param(event)
    now = time.time()
    return {"site": site, "expiries": [data.expiry_row(data.plain(item), now) for item in scheduled_expiries(site)]}


def _queue_depths() -> list[dict[str, Any]]:
    """`python -m archive status`'s queues: ingest, its dead-letter queue, datastream (in that order)."""
    return [{"queue": name, **_depth(name)} for name in queue_names()]


def _depth(name: str) -> dict[str, Any]:
    waiting, in_flight, error = queue_depth(name)
    return {"waiting": waiting, "in_flight": in_flight, "error": error}


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
    newest = data.plain(recent_uploads(site, 1))
    ingest = _depth(get_settings().ingest_queue_name)
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


def has_colour_set(base: str) -> bool:
    """Whether the image service would find red, green and blue frames for this exposure (so the page
    asks for a composite only then, instead of collecting a 404 for every exposure it opens)."""
    try:
        matched_frames(base)
    except RenderError:
        return False
    return True


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
        raise BadRequest("dir", f"dir must be one of {', '.join(S3_DIRECTORIES)}, got {s3_directory[:40]!r}")
    sign = data.presigner()
    row = None
    if s3_directory == "data":
        with database.get_engine().connect() as conn:
            row = db.get_row(conn, base)
    files = data.exposure_files(s3_directory, base, sign)
    if row is None and not files:
        raise NotFound(f"no exposure {base} under {s3_directory}/ (no row, no files)")
    if row is not None:
        summary = data.exposure_package(row, sign, data.thumbnail_height())
        header = data.header_of(row)
    else:
        summary = {"base_filename": base, "site": name.site, "s3_directory": s3_directory}
        header = data.info_header(name.site, base) if s3_directory == "info-images" else None
    summary["s3_directory"] = s3_directory
    medium = data.first_present(files, "medium JPG")
    from_fits = any(f["kind"].endswith("FITS") for f in files)
    return {
        "exposure": summary,
        "header": header,
        "files": files,
        "render": {
            # The image service reads data/ only: an info image or all-sky image is shown from its own
            # directory's medium JPG instead of a render of the data/ exposure that shares its name.
            "service": data.thumbnail_service_url(base) if s3_directory == "data" else None,
            "from_fits": from_fits,
            "has_jpg": medium is not None,
            "jpg_url": medium["view_url"] if medium else None,
            "color": s3_directory == "data" and from_fits and has_colour_set(base),
        },
    }


# ---------------------------------------------------------------------------------------------------
# The page itself.


def static_file(event: Event) -> Response:
    """index.html, app.js, style.css or favicon.svg from archive/local/viewer/ (only those: no path walks
    the disk)."""
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


def favicon(event: Event) -> Response:
    """`/favicon.ico`, which browsers ask the origin for whatever the page links: the viewer's icon."""
    return static_file({"pathParameters": {"asset": "favicon.svg"}})


_SITE = r"(?P<site>[^/]+)"


def page_url(api_url: str) -> str:
    """Where the page is on a front running at `api_url` (the stack's ARCHIVE_API_URL)."""
    return f"{api_url}{PREFIX}/"


def routes() -> list[Route]:
    """The viewer's routes, appended to the image API's on the stack's front (archive.local.stack)."""
    return [
        Route("GET", "/favicon.ico", favicon),
        Route("GET", PREFIX, to_index),
        Route("GET", f"{PREFIX}/", static_file),
        Route("GET", rf"{PREFIX}/(?P<asset>[\w.-]+)", static_file),
        Route("GET", f"{PREFIX}/api/sites", list_sites),
        Route("GET", f"{PREFIX}/api/sites/{_SITE}/exposures", site_exposures),
        Route("GET", f"{PREFIX}/api/sites/{_SITE}/facets", site_facets),
        Route("GET", f"{PREFIX}/api/sites/{_SITE}/channels", site_channels),
        Route("GET", f"{PREFIX}/api/sites/{_SITE}/allsky", site_allsky),
        Route("GET", f"{PREFIX}/api/sites/{_SITE}/uploads", site_uploads),
        Route("GET", f"{PREFIX}/api/sites/{_SITE}/expiries", site_expiries),
        Route("GET", f"{PREFIX}/api/sites/{_SITE}/activity", site_activity),
        Route("GET", f"{PREFIX}/api/queues", queues),
        Route("GET", f"{PREFIX}/api/metrics", metrics_summary),
        Route("GET", f"{PREFIX}/api/exposures/(?P<base_filename>[^/]+)", exposure_detail),
    ]

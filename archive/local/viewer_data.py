"""The viewer's data: what it reads from the archive and how it shapes it for the page.

The reads are what photonranch-api reads and nothing else: the `images` table (db), the
`recent-uploads-log`, `info-images` and `data-expiration-tracker` tables and the bucket, each through
the module that writes it (archive.ingest.uploads_log, archive.ingest.info_images,
archive.ingest.expirations), so no contract is copied here. Every list is an indexed read: the site's
rows through the (site, jpg_medium_exists, sort_date) index, a page at a time by a cursor; the upload
log by its hash key (a query, never a scan); the bucket by prefix. The shaping is photonranch-api's and
the frontend's: exposures with a medium JPG, newest first, smart stacks collapsed to their last frame,
RA in sexagesimal hours.

HTTP (parameters, answers, routes) is archive.local.viewer's; this module knows nothing of events.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
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
    file_role,
    is_site,
    parse_filename,
    role_of,
    thumbnail_name,
)
from archive.ingest.expirations import list_exposure_objects
from archive.ingest.info_images import site_channels as read_channels
from archive.ingest.uploads_log import ITEM_FIELDS, has_uploads, uploaded_seconds
from archive.settings import get_settings
from archive.statuses import PROBLEMS

THUMBNAIL_SERVICE = "/thumbnails"  # the image service's route on the same front (archive/local/api.py)
URL_SECONDS = 3600  # presigned links the page loads at once; the page keeps those it shows
ALLSKY_SHOWN = 12  # the newest all-sky images a site's strip shows
BUCKET_SITES_SECONDS = 10.0  # how long the bucket's list of sites is reused

Cursor = tuple[dt.datetime, int]  # (sort_date, image_id) of the last row of a page


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


def format_cursor(row: Mapping[str, Any]) -> str | None:
    """A row's place in the newest-first order as the page carries it: `{sort_date epoch ms}_{image_id}`."""
    if row.get("sort_date") is None or row.get("image_id") is None:
        return None
    return f"{_epoch_ms(row['sort_date'])}_{row['image_id']}"


def cursor_date(epoch_ms: int) -> dt.datetime:
    """The naive UTC datetime of a cursor's milliseconds (the table's sort_date is naive UTC)."""
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=epoch_ms)


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
        "cursor": format_cursor(row),
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
# Reading the archive.


def presigner() -> Callable[..., str]:
    """`sign(key, download=None)`: a presigned GET of the bucket's object (computed locally, no request);
    with `download`, the answer carries `Content-Disposition: attachment` under that file name, so a link
    on another origin (the bucket's) still saves as the file it is."""

    s3, bucket = client("s3"), get_settings().bucket

    def sign(key: str, download: str | None = None) -> str:
        params = {"Bucket": bucket, "Key": key}
        if download:
            params["ResponseContentDisposition"] = f'attachment; filename="{download}"'
        return s3.generate_presigned_url("get_object", Params=params, ExpiresIn=URL_SECONDS)

    return sign


def thumbnail_height() -> int:
    return get_settings().thumbnail_height_px


def _directory_sites(directory: str) -> set[str]:
    s3, bucket = client("s3"), get_settings().bucket
    sites: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{directory}/", Delimiter="-"):
        for prefix in page.get("CommonPrefixes", []):
            site = prefix["Prefix"][len(directory) + 1:-1]
            if is_site(site):
                sites.add(site)
    return sites


_BUCKET_SITES: dict[tuple[str, int], tuple[float, set[str]]] = {}
_BUCKET_SITES_LOCK = threading.Lock()


def bucket_sites(pool: ThreadPoolExecutor | None = None) -> set[str]:
    """Every site with an object in the bucket under a notified directory: S3 lists the prefixes before
    the first `-` (`data/tst-`), one entry per site, so this reads no object of any site. Kept for
    BUCKET_SITES_SECONDS (a new site's first upload shows within that), per bucket and client."""
    key = (get_settings().bucket, id(client("s3")))
    with _BUCKET_SITES_LOCK:
        cached = _BUCKET_SITES.get(key)
    if cached is not None and time.monotonic() - cached[0] < BUCKET_SITES_SECONDS:
        return set(cached[1])
    if pool is None:
        found = [_directory_sites(d) for d in S3_DIRECTORIES]
    else:
        found = list(pool.map(_directory_sites, S3_DIRECTORIES))
    sites = set().union(*found)
    with _BUCKET_SITES_LOCK:
        _BUCKET_SITES[key] = (time.monotonic(), sites)
    return set(sites)


_PROBES: dict[tuple[str, int, str], tuple[float, bool]] = {}


def in_log(site: str) -> bool:
    """Whether the upload log holds items of the site (a one-key query), the answer kept as long as the
    bucket's sites are: a site with nothing but log items appears within BUCKET_SITES_SECONDS."""
    key = (get_settings().uploads_log_table, id(client("dynamodb")), site)
    with _BUCKET_SITES_LOCK:
        cached = _PROBES.get(key)
    if cached is not None and time.monotonic() - cached[0] < BUCKET_SITES_SECONDS:
        return cached[1]
    found = has_uploads(site)
    with _BUCKET_SITES_LOCK:
        _PROBES[key] = (time.monotonic(), found)
    return found


def forget_bucket_sites() -> None:
    """Drop the kept list of the bucket's sites and the log probes (a test that changes buckets under one
    client)."""
    with _BUCKET_SITES_LOCK:
        _BUCKET_SITES.clear()
        _PROBES.clear()


def _summaries() -> dict[str, dict[str, Any]]:
    with database.get_engine().connect() as conn:
        return {s["site"]: s for s in db.site_summaries(conn) if s["site"]}


def site_list() -> list[dict[str, Any]]:
    """Every site with rows in `images` or items in the upload log, with its row count and newest date.

    Without a scan of the upload log: the sites come from the table's summary (one GROUP BY over the
    site index) and the bucket's site prefixes (an upload is an object first), and a site the table does
    not know is kept when a one-key query finds it in the log; `unknown_site` likewise. The reads run
    side by side; the bucket's sites and the log probes are kept BUCKET_SITES_SECONDS, so an answer in
    that time is the table's summary alone.
    """
    with ThreadPoolExecutor(max_workers=8) as pool:
        summaries_future = pool.submit(_summaries)
        unknown_future = pool.submit(in_log, UNKNOWN_SITE)
        in_bucket = bucket_sites(pool)
        summaries = summaries_future.result()
        candidates = sorted(in_bucket - set(summaries) - {UNKNOWN_SITE})
        found = dict(zip(candidates, pool.map(in_log, candidates), strict=True))
        found[UNKNOWN_SITE] = unknown_future.result()
    logged = {site for site, present in found.items() if present}
    sites = sorted(set(summaries) | logged)
    return [
        {
            "site": site,
            "exposures": summaries[site]["exposures"] if site in summaries else 0,
            "latest": _iso(summaries[site]["latest"]) if site in summaries else None,
            "log_only": site not in summaries,
        }
        for site in sites
    ]


def exposures_page(site: str, limit: int, filters: Mapping[str, Any], before: Cursor | None,
                   with_preview: bool) -> dict[str, Any]:
    """A page of the site's filtered exposures after `before`, with the cursor of the next page and (on the
    first page) the total the filters match. Smart stacks fold within the page; the page folds them
    across pages (a stack's later frames come first, newest first)."""
    with database.get_engine().connect() as conn:
        rows = db.exposure_page(conn, site, limit + 1, filters=filters, before=before, with_preview=with_preview)
        total = None if before else db.count_exposures(conn, site, filters=filters, with_preview=with_preview)
    more, rows = len(rows) > limit, rows[:limit]
    sign, height = presigner(), thumbnail_height()
    packages = [exposure_package(row, sign, height) for row in rows]
    kept = final_smart_stack_frames(packages)
    return {
        "site": site,
        "exposures": kept,
        "rows_read": len(rows),
        "collapsed": len(rows) - len(kept),
        "total": total,
        "next": format_cursor(rows[-1]) if more and rows else None,
    }


def site_facets(site: str) -> dict[str, Any]:
    with database.get_engine().connect() as conn:
        return {"site": site, **db.exposure_facets(conn, site)}


def _thumbnail_of(key: str) -> str | None:
    """The key of the thumbnail the archive writes beside a medium JPG, None for any other file."""
    directory, _, filename = key.rpartition("/")
    try:
        name = parse_filename(filename)
    except FilenameError:
        return None
    return f"{directory}/{thumbnail_name(name).filename}" if file_role(name) is FileRole.JPG_MEDIUM else None


def allsky_images(site: str, sign: Callable[..., str]) -> list[dict[str, Any]]:
    """The site's newest all-sky images (their medium JPGs under allsky/, thumbnails where written)."""
    objects = list_exposure_objects(get_settings().bucket, f"allsky/{site}-")
    keys = {obj["Key"] for obj in objects}
    medium = sorted((obj for obj in objects if _thumbnail_of(obj["Key"]) is not None),
                    key=lambda o: (o.get("LastModified") or dt.datetime.min.replace(tzinfo=dt.UTC), o["Key"]),
                    reverse=True)[:ALLSKY_SHOWN]
    shown = []
    for obj in medium:
        key = obj["Key"]
        small = _thumbnail_of(key) or key
        name = key.rsplit("/", 1)[-1]
        shown.append({
            "key": key,
            "name": name,
            "base_filename": name.rsplit("-", 1)[0],
            "last_modified": _iso(obj["LastModified"].astimezone(dt.UTC).replace(tzinfo=None))
            if obj.get("LastModified") else None,
            "jpg_url": sign(key),
            "thumbnail_url": sign(small if small in keys else key),
        })
    return shown


def exposure_files(s3_directory: str, base: str, sign: Callable[..., str]) -> list[dict[str, Any]]:
    """The exposure's objects under its directory, each with a link that downloads it under its name."""
    objects = list_exposure_objects(get_settings().bucket, f"{s3_directory}/{base}-")
    files = []
    for obj in sorted(objects, key=lambda o: o["Key"]):
        name = obj["Key"].rsplit("/", 1)[-1]
        files.append({
            "key": obj["Key"],
            "name": name,
            "kind": file_kind(obj["Key"]),
            "size_bytes": obj.get("Size"),
            "last_modified": _iso(obj["LastModified"].astimezone(dt.UTC).replace(tzinfo=None))
            if obj.get("LastModified") else None,
            "url": sign(obj["Key"], download=name),
            "view_url": sign(obj["Key"]) if name.endswith(".jpg") else None,
        })
    return files


def info_header(site: str, base: str) -> dict[str, str] | None:
    for item in plain(read_channels(site))["channels"].values():
        if item and item.get("base_filename") == base and isinstance(item.get("header"), dict):
            return item["header"]
    return None


def first_present(items: Iterable[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    return next((f for f in items if f["kind"] == kind), None)

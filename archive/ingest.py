"""What happens when one file lands in the bucket: the core of the ingest pipeline.

`ingest_upload(upload)` takes one object-created notification, already decoded from whatever event
shape carried it, and does everything the file calls for (DESIGN.md 2.1): the `images` row, the
thumbnail, the info-image channel, the expiry schedule, and the upload-log item. It returns an
`Outcome` saying what was done and why; the handler turns outcomes into the datastream messages
and the batch's failures.

Two kinds of failure, kept apart on purpose:
- permanent (a bad name, an unreadable header, a corrupt JPEG, a deleted object): the outcome says
  `rejected`/`failed` with the reason, and the message is *not* retried: retrying cannot fix it.
- transient (database unreachable, AWS throttling, anything unexpected): `RetryableError` is raised
  so SQS delivers the message again; every step is idempotent, so a redelivery completes it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from archive.aws import is_missing_object
from archive.datastream import Notification
from archive.filenames import FilenameError, ParsedKey, ParsedName, parse_key, site_of
from archive.headers import HeaderError
from archive.info_images import NoChannel
from archive.thumbnails import ThumbnailError
from archive.uploads_log import FAILED, IGNORED, INGESTED, REJECTED  # light: Pillow loads only when a JPEG is handled

logger = logging.getLogger(__name__)


FITS_FLAGS = {"00": "fits_01_exists", "01": "fits_01_exists", "10": "fits_10_exists", "13": "fits_10_exists"}
MEDIUM_JPG = ("10", "13")
SMALL_JPG = "11"


@dataclass(frozen=True, slots=True)
class Upload:
    """One object that was created: what every event shape carries, decoded."""

    bucket: str
    key: str  # decoded (no URL encoding)
    size_bytes: int
    event_time: dt.datetime  # naive UTC


@dataclass(slots=True)
class Outcome:
    upload: Upload
    status: str
    reason: str
    site: str
    notification: Notification | None = None


class RetryableError(Exception):
    """A failure a later delivery can fix; the message must come back."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PermanentError:
    """What a failure no retry can fix stands for: the upload-log status and the reason."""

    status: str
    reason: str


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --------------------------------------------------------------------------------------------------
# Classification of exceptions raised by the steps below.


def _is_transient(exc: BaseException) -> bool:
    from archive.aws import is_throttling

    if is_throttling(exc):
        return True
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _permanent_from(exc: BaseException) -> PermanentError | None:
    """Map a known domain error to the permanent failure it stands for, or None."""
    if isinstance(exc, FilenameError):
        return PermanentError(REJECTED, exc.reason)
    if isinstance(exc, HeaderError):
        return PermanentError(FAILED, f"header: {exc.reason}")
    if is_missing_object(exc):
        return PermanentError(FAILED, "object no longer exists (deleted before it could be read)")
    if isinstance(exc, ThumbnailError):
        return PermanentError(exc.status, f"thumbnail: {exc.reason}")
    if isinstance(exc, NoChannel):
        return PermanentError(REJECTED, exc.reason)
    return None


# --------------------------------------------------------------------------------------------------
# Reading a header, from a .txt or out of a FITS file.


def fetch_text_header(bucket: str, key: str) -> Mapping[str, str]:
    """Fetch and parse a header text file, refusing one too large to be a header."""
    from botocore.exceptions import ClientError

    from archive.aws import client
    from archive.headers import parse_header
    from archive.settings import get_settings

    limit = get_settings().fits_header_max_bytes
    try:
        body = client("s3").get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{limit}")["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # S3's answer for an empty object
            raise HeaderError("header file is empty") from None
        raise
    if len(body) > limit:
        raise HeaderError(f"header file is larger than {limit} bytes; not a FITS header")
    return parse_header(body)


def store_header(
    conn: object,
    name: ParsedName,
    header: Mapping[str, str],
    upload: Upload,
    *,
    only_if_missing: bool,
) -> bool:
    """Upsert a parsed header into the exposure's row (typed columns, JSON, capture date)."""
    import db
    from archive.headers import capture_date, header_columns

    return db.upsert_header(
        conn,
        base_filename=name.base_filename,
        site=name.site,
        data_type=name.data_type,
        header=header,
        columns=header_columns(header),
        capture_date=capture_date(header),
        upload_time=upload.event_time,
        only_if_missing=only_if_missing,
    )


# --------------------------------------------------------------------------------------------------
# What each file does.


def _thumbnail_key(parsed: ParsedKey) -> str:
    return ParsedKey(parsed.s3_directory, parsed.name.sibling(SMALL_JPG, "jpg")).key


def _make_thumbnail(upload: Upload, parsed: ParsedKey) -> str:
    from archive.thumbnails import write_thumbnail

    thumbnail_key = _thumbnail_key(parsed)
    write_thumbnail(upload.bucket, upload.key, thumbnail_key)
    return thumbnail_key


def _ensure_exists(upload: Upload) -> None:
    """HEAD the object: a missing one raises the 404 that ingest_upload reports as gone."""
    from archive.aws import client

    client("s3").head_object(Bucket=upload.bucket, Key=upload.key)


def ingest_data_file(upload: Upload, parsed: ParsedKey) -> Outcome:
    """A file under `data/`: update the exposure's row (2.1/2.2)."""
    import db

    name = parsed.name
    base = name.base_filename
    notification = Notification(parsed.s3_directory, base, name.site)

    def mark(conn: object, *flags: str) -> None:
        for flag in flags:
            db.mark_file(
                conn,
                base_filename=base,
                site=name.site,
                data_type=name.data_type,
                flag=flag,
                upload_time=upload.event_time,
            )

    if name.ext == "txt":
        header = fetch_text_header(upload.bucket, upload.key)  # a HeaderError leaves the row untouched
        with db.transaction() as conn:
            store_header(conn, name, header, upload, only_if_missing=False)
        return Outcome(upload, INGESTED, f"header with {len(header)} keywords", name.site, notification)

    # Every flag below is set only once the object is known to exist (read, or HEAD), so a late
    # redelivery for an object deleted since (an expired exposure) cannot bring its row back.
    if name.is_fits and name.reduction in FITS_FLAGS:
        flag = FITS_FLAGS[name.reduction]
        with db.transaction() as conn:
            needs_header = not db.has_header(conn, base)
        header, problem = None, ""
        if needs_header:
            from archive.fits_header import ObjectMissing, read_fits_header

            try:
                header = read_fits_header(upload.bucket, upload.key)
            except ObjectMissing:
                raise
            except HeaderError as exc:  # the file exists but its header cannot be read: flag it anyway
                problem = exc.reason
        else:
            _ensure_exists(upload)
        with db.transaction() as conn:
            mark(conn, flag)
            wrote = header is not None and store_header(conn, name, header, upload, only_if_missing=True)
        if problem:
            return Outcome(upload, FAILED, f"{flag} set; header: {problem}", name.site, notification)
        reason = f"{flag}; header read from the FITS file" if wrote else flag
        return Outcome(upload, INGESTED, reason, name.site, notification)

    if name.ext == "jpg" and name.reduction in MEDIUM_JPG:
        # Thumbnail first: a medium that is gone or cannot be decoded sets no flag (and cannot
        # bring back the row of an exposure that expired before a late redelivery).
        _make_thumbnail(upload, parsed)
        with db.transaction() as conn:
            mark(conn, "jpg_medium_exists", "jpg_small_exists")
        return Outcome(upload, INGESTED, "jpg_medium_exists; thumbnail written", name.site, notification)

    if name.ext == "jpg" and name.reduction == SMALL_JPG:
        _ensure_exists(upload)
        with db.transaction() as conn:
            mark(conn, "jpg_small_exists")
        return Outcome(upload, INGESTED, "jpg_small_exists", name.site, notification)

    return Outcome(
        upload, IGNORED, f"no effect for a .{name.ext} file with reduction {name.reduction}", name.site
    )


def ingest_info_file(upload: Upload, parsed: ParsedKey) -> Outcome:
    """A file under `info-images/`: update its site's channel item (2.4); never the `images` table."""
    from archive.info_images import apply_info_file, file_fields, find_channel

    name = parsed.name
    channel = find_channel(name.site, name.base_filename)  # NoChannel: rejected before any download
    if name.ext != "txt" and not file_fields(name, upload.key, None):
        return Outcome(upload, IGNORED, f"channel {channel} has no field for reduction {name.reduction}", name.site)
    header = fetch_text_header(upload.bucket, upload.key) if name.ext == "txt" else None
    apply_info_file(name, upload.key, header, upload.event_time, channel)
    reason = f"channel {channel}"
    if name.ext == "jpg" and name.reduction in MEDIUM_JPG:
        thumbnail_key = _make_thumbnail(upload, parsed)
        apply_info_file(name.sibling(SMALL_JPG, "jpg"), thumbnail_key, None, upload.event_time, channel)
        reason += "; thumbnail written"
    notification = Notification(parsed.s3_directory, name.base_filename, name.site, channel)
    return Outcome(upload, INGESTED, reason, name.site, notification)


def ingest_allsky_file(upload: Upload, parsed: ParsedKey) -> Outcome:
    """A file under `allsky/`: thumbnail and notify; no `images` row."""
    name = parsed.name
    notification = Notification(parsed.s3_directory, name.base_filename, name.site)
    if name.ext == "jpg" and name.reduction in MEDIUM_JPG:
        _make_thumbnail(upload, parsed)
        return Outcome(upload, INGESTED, "all-sky image; thumbnail written", name.site, notification)
    return Outcome(upload, INGESTED, "all-sky file", name.site, notification)


ROUTES: dict[str, Callable[[Upload, ParsedKey], Outcome]] = {
    "data": ingest_data_file,
    "info-images": ingest_info_file,
    "allsky": ingest_allsky_file,
}


def _schedule_expiry(upload: Upload, parsed: ParsedKey) -> None:
    from archive.expirations import schedule_expiry
    from archive.settings import get_settings

    name = parsed.name
    if parsed.s3_directory == "data" and get_settings().expiry_seconds(name.site, name.data_type) is not None:
        schedule_expiry(parsed.s3_directory, name, upload.event_time)


def _process(upload: Upload) -> Outcome:
    try:
        parsed = parse_key(upload.key)
    except FilenameError as exc:
        directory = upload.key.partition("/")[0]
        if "/" in upload.key and directory not in ROUTES:
            return Outcome(upload, IGNORED, f"not an archive directory: {exc.reason}", "unknown_site")
        return Outcome(upload, REJECTED, exc.reason, site_of(upload.key))
    outcome = ROUTES[parsed.s3_directory](upload, parsed)
    # After the file was handled (so it exists), whatever its own outcome; a file that is gone,
    # e.g. a late redelivery after the exposure expired, schedules nothing.
    _schedule_expiry(upload, parsed)
    return outcome


def ingest_upload(upload: Upload) -> Outcome:
    """Ingest one uploaded object and log it; raise RetryableError when a redelivery can fix it.

    The upload-log item is written for every outcome, including rejections and failures that will
    be retried, so the web UI shows each attempt and its reason.
    """
    try:
        outcome = _process(upload)
    except Exception as exc:  # noqa: BLE001 - every failure is classified, logged and reported
        permanent = _permanent_from(exc)
        if permanent is not None:
            outcome = Outcome(upload, permanent.status, permanent.reason, site_of(upload.key))
        else:
            transient = _is_transient(exc)
            reason = f"{'temporary' if transient else 'unexpected'} error, will retry: {type(exc).__name__}: {exc}"
            logger.error(
                "ingest failed; will retry", extra={"key": upload.key, "reason": reason}, exc_info=not transient
            )
            _log_upload(Outcome(upload, FAILED, reason[:1000], site_of(upload.key)), best_effort=True)
            raise RetryableError(reason) from exc
    log = logger.info if outcome.status in (INGESTED, IGNORED) else logger.warning
    log("ingest %s", outcome.status, extra={"key": upload.key, "status": outcome.status, "reason": outcome.reason})
    _log_upload(outcome, best_effort=False)
    return outcome


def _log_upload(outcome: Outcome, *, best_effort: bool) -> None:
    from archive.uploads_log import record_upload

    try:
        record_upload(
            key=outcome.upload.key,
            site=outcome.site,
            size_bytes=outcome.upload.size_bytes,
            status=outcome.status,
            reason=outcome.reason,
            upload_time=outcome.upload.event_time,
        )
    except Exception as exc:
        if best_effort:
            logger.error("could not write the upload log item", extra={"key": outcome.upload.key}, exc_info=True)
            return
        raise RetryableError(f"upload log not written: {type(exc).__name__}: {exc}") from exc

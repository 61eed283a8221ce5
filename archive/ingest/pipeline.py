"""What happens when one file lands in the bucket: the core of the ingest pipeline.

`ingest_upload(upload)` takes one object-created notification, already decoded from whatever event
shape carried it, and does everything the file calls for (docs/contracts.md §1): the `images` row, the
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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from botocore.exceptions import ClientError
from sqlalchemy.engine import Connection

import db
from archive import database
from archive.aws import client
from archive.errors import RetryableError, TemporaryError
from archive.failures import classify
from archive.formats.filenames import (
    UNKNOWN_SITE,
    FilenameError,
    FileRole,
    ParsedKey,
    ParsedName,
    file_role,
    parse_key,
    site_of,
    thumbnail_name,
)
from archive.formats.fits_header import read_fits_header
from archive.formats.headers import HeaderError, capture_date, header_columns, parse_header
from archive.ingest.datastream import Notification
from archive.ingest.expirations import schedule_expiry
from archive.ingest.info_images import apply_info_file, file_fields, find_channel, fit_header
from archive.ingest.thumbnails import check_thumbnail, write_thumbnail
from archive.ingest.uploads_log import record_upload
from archive.settings import get_settings
from archive.statuses import FAILED, IGNORED, INGESTED

logger = logging.getLogger(__name__)


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
    thumbnail_ms: float | None = None  # how long writing the thumbnail took, when one was written


def fetch_text_header(bucket: str, key: str) -> Mapping[str, str]:
    """Fetch and parse a header text file, refusing one too large to be a header.

    Raises:
        HeaderError: empty, too large or unparseable (permanent).
        botocore errors: translated by the caller (`archive.failures.classify`).
    """
    limit = get_settings().fits_header_max_bytes
    try:
        stream = client("s3").get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{limit}")["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # S3's answer for an empty object
            raise HeaderError("header file is empty") from None
        raise
    try:
        body = stream.read(limit + 1)  # never more, whatever the server sends (a 200 ignoring the range)
    finally:
        stream.close()
    if len(body) > limit:
        raise HeaderError(f"header file is larger than {limit} bytes; not a FITS header")
    return parse_header(body)


def store_header(
    conn: Connection,
    name: ParsedName,
    header: Mapping[str, str],
    upload: Upload,
    *,
    from_fits: bool,
) -> bool:
    """Upsert a parsed header into the exposure's row (typed columns, JSON, capture date).

    A header read out of a FITS file never replaces one already there, and its DATE-OBS ranks below
    the header text's (db.py's capture_date rule).
    """
    return db.upsert_header(
        conn,
        base_filename=name.base_filename,
        site=name.site,
        data_type=name.data_type,
        header=header,
        columns=header_columns(header),
        capture_date=capture_date(header),
        upload_time=upload.event_time,
        date_source=db.DATE_FROM_FITS_HEADER if from_fits else db.DATE_FROM_HEADER_TEXT,
        only_if_missing=from_fits,
    )


# --------------------------------------------------------------------------------------------------
# What each file does.


def _make_thumbnail(upload: Upload, parsed: ParsedKey) -> tuple[str, float]:
    """Write the thumbnail; (its key, the milliseconds it took: read, decode, resize, encode, write)."""
    thumbnail_key = ParsedKey(parsed.s3_directory, thumbnail_name(parsed.name)).key
    started = time.perf_counter()
    write_thumbnail(upload.bucket, upload.key, thumbnail_key)
    return thumbnail_key, (time.perf_counter() - started) * 1000


def _ensure_exists(upload: Upload) -> None:
    """HEAD the object: a missing one raises the 404 that ingest_upload reports as gone."""
    client("s3").head_object(Bucket=upload.bucket, Key=upload.key)


def _mark(
    conn: Connection, name: ParsedName, upload: Upload, *roles: FileRole, fits_date: dt.datetime | None = None
) -> None:
    """Set the roles' flags; `fits_date`, the DATE-OBS of the file's own FITS header, is offered too."""
    for role in roles:
        db.mark_file(
            conn,
            base_filename=name.base_filename,
            site=name.site,
            data_type=name.data_type,
            flag=role.flag,
            upload_time=upload.event_time,
            capture_date=fits_date,
            date_source=db.DATE_FROM_FITS_HEADER,
        )


def _ingest_header_text(upload: Upload, name: ParsedName, notification: Notification) -> Outcome:
    header = fetch_text_header(upload.bucket, upload.key)  # a HeaderError leaves the row untouched
    with database.transaction() as conn:
        store_header(conn, name, header, upload, from_fits=False)
    return Outcome(upload, INGESTED, f"header with {len(header)} keywords", name.site, notification)


def _ingest_fits(upload: Upload, name: ParsedName, role: FileRole, notification: Notification) -> Outcome:
    """Flag the FITS file; read its header while the row lacks one or is dated only by an upload time
    (its DATE-OBS outranks that, whichever file came first)."""
    with database.transaction() as conn:
        needs_header = db.needs_fits_header(conn, name.base_filename)
    header, problem = None, ""
    if needs_header:
        try:
            header = read_fits_header(upload.bucket, upload.key)
        except HeaderError as exc:  # the file exists but its header cannot be read: flag it anyway
            problem = exc.reason
    else:
        _ensure_exists(upload)
    with database.transaction() as conn:
        _mark(conn, name, upload, role, fits_date=capture_date(header) if header is not None else None)
        wrote = header is not None and store_header(conn, name, header, upload, from_fits=True)
    if problem:
        return Outcome(upload, FAILED, f"{role.flag} set; header: {problem}", name.site, notification)
    reason = f"{role.flag}; header read from the FITS file" if wrote else role.flag
    return Outcome(upload, INGESTED, reason, name.site, notification)


def ingest_data_file(upload: Upload, parsed: ParsedKey) -> Outcome:
    """A file under `data/`: update the exposure's row (2.1/2.2).

    Every flag is set only once the object is known to exist (read, or HEAD), so a late redelivery
    for an object deleted since (an expired exposure) cannot bring its row back.
    """
    name = parsed.name
    notification = Notification(parsed.s3_directory, name.base_filename, name.site)
    if name.ext == "txt":
        return _ingest_header_text(upload, name, notification)
    role = file_role(name)
    if role in (FileRole.FITS_RAW, FileRole.FITS_REDUCED):
        return _ingest_fits(upload, name, role, notification)
    if role is FileRole.JPG_MEDIUM:
        # Thumbnail first: a medium that is gone or cannot be decoded sets no flag.
        _, thumbnail_ms = _make_thumbnail(upload, parsed)
        with database.transaction() as conn:
            _mark(conn, name, upload, FileRole.JPG_MEDIUM, FileRole.JPG_SMALL)
        return Outcome(upload, INGESTED, "jpg_medium_exists; thumbnail written", name.site, notification,
                       thumbnail_ms)
    if role is FileRole.JPG_SMALL:
        check_thumbnail(upload.bucket, upload.key)  # an empty or non-JPEG thumbnail sets no flag
        with database.transaction() as conn:
            _mark(conn, name, upload, FileRole.JPG_SMALL)
        return Outcome(upload, INGESTED, "jpg_small_exists", name.site, notification)
    return Outcome(
        upload, IGNORED, f"no effect for a .{name.ext} file with reduction {name.reduction}", name.site
    )


def ingest_info_file(upload: Upload, parsed: ParsedKey) -> Outcome:
    """A file under `info-images/`: update its site's channel item (2.4); never the `images` table."""
    name = parsed.name
    channel = find_channel(name.site, name.base_filename)  # NoChannel: rejected before any download
    if name.ext != "txt" and not file_fields(name, upload.key, None):
        return Outcome(upload, IGNORED, f"channel {channel} has no field for reduction {name.reduction}", name.site)
    # Images are checked before the channel changes: a medium that cannot be thumbnailed, or a
    # thumbnail that is not a JPEG, must not show on the channel.
    role = file_role(name)
    thumbnail_key, thumbnail_ms = _make_thumbnail(upload, parsed) if role is FileRole.JPG_MEDIUM else (None, None)
    if role is FileRole.JPG_SMALL:
        check_thumbnail(upload.bucket, upload.key)
    header: Mapping[str, str] | None = None
    left_out: list[str] = []
    if name.ext == "txt":
        header, left_out = fit_header(fetch_text_header(upload.bucket, upload.key))
    apply_info_file(name, upload.key, header, upload.event_time, channel)
    reason = f"channel {channel}"
    if left_out:
        shown = ", ".join(left_out[:5]) + (", …" if len(left_out) > 5 else "")
        reason += f"; header stored without {len(left_out)} keywords ({shown}): over DynamoDB's 400 KB item limit"
    if thumbnail_key is not None:
        apply_info_file(thumbnail_name(name), thumbnail_key, None, upload.event_time, channel)
        reason += "; thumbnail written"
    notification = Notification(parsed.s3_directory, name.base_filename, name.site, channel)
    return Outcome(upload, INGESTED, reason, name.site, notification, thumbnail_ms)


def ingest_allsky_file(upload: Upload, parsed: ParsedKey) -> Outcome:
    """A file under `allsky/`: thumbnail and notify; no `images` row."""
    name = parsed.name
    notification = Notification(parsed.s3_directory, name.base_filename, name.site)
    if file_role(name) is FileRole.JPG_MEDIUM:
        _, thumbnail_ms = _make_thumbnail(upload, parsed)
        return Outcome(upload, INGESTED, "all-sky image; thumbnail written", name.site, notification, thumbnail_ms)
    return Outcome(upload, INGESTED, "all-sky file", name.site, notification)


ROUTES: dict[str, Callable[[Upload, ParsedKey], Outcome]] = {
    "data": ingest_data_file,
    "info-images": ingest_info_file,
    "allsky": ingest_allsky_file,
}


def _process(upload: Upload) -> Outcome:
    try:
        parsed = parse_key(upload.key)
    except FilenameError as exc:
        directory = upload.key.partition("/")[0]
        if "/" in upload.key and directory not in ROUTES:
            return Outcome(upload, IGNORED, f"not an archive directory: {exc.reason}", UNKNOWN_SITE)
        raise
    outcome = ROUTES[parsed.s3_directory](upload, parsed)
    # After the file was handled (so it exists), whatever its own outcome; a file that is gone,
    # e.g. a late redelivery after the exposure expired, schedules nothing. schedule_expiry knows which
    # data types expire.
    if parsed.s3_directory == "data":
        schedule_expiry(parsed.s3_directory, parsed.name, upload.event_time)
    return outcome


def ingest_upload(upload: Upload) -> Outcome:
    """Ingest one uploaded object and log it.

    The upload-log item is written for every outcome, including rejections and failures that will
    be retried, so the web UI shows each attempt and its reason.

    Raises:
        RetryableError: a redelivery can fix it (database or AWS unavailable, anything unexpected);
            the SQS message must come back. Permanent failures never raise: they are the outcome.
    """
    detail: dict[str, str] = {}  # what the reason leaves out (a database's host and port, the SQL), for the log
    try:
        outcome = _process(upload)
    except Exception as exc:  # noqa: BLE001 - every failure is classified, logged and reported
        error = classify(exc)
        if error is not exc:
            detail["detail"] = f"{type(exc).__name__}: {exc}"[:2000]
        if error.retry:
            logger.error("ingest failed; will retry", extra={"key": upload.key, "reason": error.reason, **detail},
                         exc_info=not isinstance(error, TemporaryError))
            _log_upload(Outcome(upload, FAILED, error.log_reason, site_of(upload.key)), best_effort=True)
            if error is exc:
                raise
            raise error from exc
        outcome = Outcome(upload, error.status, error.log_reason, site_of(upload.key))
    log = logger.info if outcome.status in (INGESTED, IGNORED) else logger.warning
    log("ingest %s", outcome.status,
        extra={"key": upload.key, "status": outcome.status, "reason": outcome.reason, **detail})
    _log_upload(outcome, best_effort=False)
    return outcome


def _log_upload(outcome: Outcome, *, best_effort: bool) -> None:
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

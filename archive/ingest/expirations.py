"""Expiring exposures (docs/contracts.md §5): schedule once, delete everything when the TTL fires.

Scheduling is a conditional put, so the first file of an exposure fixes its expiry and later files
(or redeliveries) never move it. DynamoDB's TTL removes the tracker item; the stream's REMOVE reaches
`handlers.expire`, which calls `expire_exposure`.

Deleting is by prefix `{s3_directory}/{base_filename}-`: the trailing dash keeps a neighbouring
exposure whose counter merely starts with the same digits out of it. All keys are listed first and
deleted afterwards, so deleting never shifts a listing page under the paginator. Only `data/`
exposures have an `images` row; an expiring info image or all-sky file that happens to share a base
filename with a data exposure must not take that exposure's row with it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import db
from archive import database
from archive.aws import batched, client, from_dynamodb, to_dynamodb
from archive.clock import epoch_seconds
from archive.errors import RetryableError
from archive.formats.filenames import S3_DIRECTORIES, FilenameError, ParsedName, parse_base_filename
from archive.settings import Settings, get_settings

logger = logging.getLogger(__name__)

DELETE_BATCH = 1_000  # DeleteObjects' limit
# How a stream record says DynamoDB's TTL made the REMOVE (a person's delete carries their identity).
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


@dataclass(frozen=True)
class ExpiryResult:
    objects_deleted: int
    rows_deleted: int


class ExpiryError(RetryableError):
    """S3 refused to delete some keys; raised so the stream delivers the record again."""

    topic = "expiry"


def lifespan(site: str, data_type: str, settings: Settings | None = None) -> int | None:
    """Seconds an exposure of this site and data type is kept, or None when its data type does not expire.
    A site's own lifespan (`tst`: 5 minutes) shortens only the types that expire anyway."""
    settings = settings or get_settings()
    if data_type not in settings.expiring_data_types:
        return None
    return settings.site_expiry_seconds.get(site, settings.expiring_data_types[data_type])


def schedule_expiry(s3_directory: str, name: ParsedName, now: dt.datetime) -> bool:
    """Schedule the exposure's deletion if its data type expires; True only when newly scheduled.

    Raises:
        botocore errors from DynamoDB, for `archive.failures.classify` (the ingest retries them).
    """
    settings = get_settings()
    kept = lifespan(name.site, name.data_type, settings)
    if kept is None:
        return False
    ddb = client("dynamodb")
    try:
        ddb.put_item(
            TableName=settings.expiration_table,
            Item=to_dynamodb({
                "pk": name.base_filename,
                "s3_directory": s3_directory,
                "expiration_timestamp_s": int(epoch_seconds(now)) + kept,
            }),
            ConditionExpression="attribute_not_exists(pk)",
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
    return True


def _validate(s3_directory: str, base_filename: str) -> str:
    if s3_directory not in S3_DIRECTORIES:
        raise FilenameError(f"s3_directory {s3_directory!r} is not one of {', '.join(S3_DIRECTORIES)}")
    return parse_base_filename(base_filename).base_filename


def list_exposure_objects(bucket: str, prefix: str) -> list[dict]:
    """Every object under the prefix (S3's listing entries: Key, Size, LastModified…), across all pages."""
    paginator = client("s3").get_paginator("list_objects_v2")
    return [obj for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for obj in page.get("Contents", [])]


def list_exposure_keys(bucket: str, prefix: str) -> list[str]:
    """Every key under the prefix, across all listing pages."""
    return [obj["Key"] for obj in list_exposure_objects(bucket, prefix)]


def delete_keys(bucket: str, keys: Sequence[str]) -> int:
    """Delete keys in DeleteObjects batches; raise ExpiryError if S3 reports any key it could not delete."""
    s3 = client("s3")
    deleted = 0
    for batch in batched(keys, DELETE_BATCH):
        response = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
        )
        errors = response.get("Errors", [])
        if errors:
            sample = "; ".join(f"{e.get('Key')}: {e.get('Code')} {e.get('Message', '')}".strip() for e in errors[:5])
            raise ExpiryError(f"S3 could not delete {len(errors)} of {len(batch)} keys ({sample})")
        deleted += len(batch)
    return deleted


def expire_exposure(s3_directory: str, base_filename: str) -> ExpiryResult:
    """Delete every object of the exposure and, for `data/`, its `images` row. Idempotent.

    Raises:
        FilenameError: an unknown directory or an invalid base filename, deleting nothing (permanent):
            a malformed tracker item must never turn into a broad prefix delete.
        ExpiryError: S3 refused some deletes (retry: the stream delivers the record again).
        botocore/SQLAlchemy errors: S3 or the database unavailable (retry).
    """
    base = _validate(s3_directory, base_filename)
    settings = get_settings()
    prefix = f"{s3_directory}/{base}-"
    rows = 0
    if s3_directory == "data":  # the row first: the web UI stops listing it before its images vanish

        with database.get_engine().begin() as conn:
            rows = db.delete_exposure(conn, base)
    objects = delete_keys(settings.bucket, list_exposure_keys(settings.bucket, prefix))
    logger.info(
        "exposure expired", extra={"prefix": prefix, "objects_deleted": objects, "rows_deleted": rows}
    )
    return ExpiryResult(objects, rows)


def cancel_expiry(base_filename: str, now: dt.datetime) -> bool:
    """Keep an exposure for good: its tracker item loses its TTL and stays as a marker.

    Deleting the tracker item by hand also stops the deletion (the expire function acts only on
    removals made by TTL), but the next file or redelivery of the exposure would schedule it again.
    The marker makes `schedule_expiry`'s conditional put refuse. True when an expiry was pending.
    """
    parse_base_filename(base_filename)
    ddb = client("dynamodb")
    response = ddb.update_item(
        TableName=get_settings().expiration_table,
        Key={"pk": {"S": base_filename}},
        UpdateExpression="REMOVE expiration_timestamp_s SET cancelled_at_s = :now",
        ExpressionAttributeValues={":now": {"N": str(int(epoch_seconds(now)))}},
        ReturnValues="ALL_OLD",
    )
    was_pending = "expiration_timestamp_s" in response.get("Attributes", {})
    logger.info("expiry cancelled", extra={"base_filename": base_filename, "was_pending": was_pending})
    return was_pending


def scheduled_expiries(site: str | None = None) -> list[dict]:
    """The tracker's items (for one site when given), soonest first; cancelled ones (no TTL) last.

    Items as `from_dynamodb` gives them: `pk` (the base filename), `s3_directory`, `expiration_timestamp_s`
    or `cancelled_at_s`. A scan: the table holds only what is waiting to expire, days of EP/EF exposures.
    """
    scan: dict = {"TableName": get_settings().expiration_table}
    if site is not None:
        scan["FilterExpression"] = "begins_with(pk, :prefix)"
        scan["ExpressionAttributeValues"] = {":prefix": {"S": f"{site}-"}}
    items = [
        from_dynamodb(item)
        for page in client("dynamodb").get_paginator("scan").paginate(**scan)
        for item in page.get("Items", [])
    ]
    never = float("inf")
    return sorted(items, key=lambda i: (i.get("expiration_timestamp_s", never), i["pk"]))

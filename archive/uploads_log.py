"""One `recent-uploads-log` item per upload (DESIGN.md 2.3), read by photonranch-api's dev-tools tab.

The table's hash key is `site`; the range key `upload_id` exists only to keep items apart. It is the
upload time in epoch milliseconds, zero-padded to 13 digits so that string order is time order, then
`#` and a random UUID: two uploads in the same second (or millisecond) of one site never share a key,
so neither overwrites the other, and a query by site still comes back sorted oldest first.

Every attempt writes its own item (a redelivered message that finally succeeds shows both the failure
and the success), which is what an operator looking at the dev-tools tab wants to see.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from archive.aws import client, from_dynamodb, to_dynamodb
from archive.settings import get_settings

INGESTED, IGNORED, REJECTED, FAILED = "ingested", "ignored", "rejected", "failed"
STATUSES = (INGESTED, IGNORED, REJECTED, FAILED)  # DESIGN.md 2.3
UNKNOWN_SITE = "unknown_site"
REASON_MAX_CHARS = 2_000  # a reason is for people; an exception text must not approach the 400 KB item limit


def epoch_seconds(moment: dt.datetime) -> float:
    """Seconds since the epoch; a naive datetime is taken as UTC (the pipeline's convention)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def make_upload_id(upload_time: dt.datetime, unique: str | None = None) -> str:
    """`{epoch ms, 13 digits}#{unique}`: sorts by time, never collides between two uploads."""
    millis = int(epoch_seconds(upload_time) * 1000)
    return f"{millis:013d}#{unique or uuid.uuid4().hex}"


def build_item(
    *, key: str, site: str, size_bytes: int, status: str, reason: str, upload_time: dt.datetime, ttl_hours: int
) -> dict[str, Any]:
    """The item as plain Python values; pure, so the contract can be checked without AWS."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    uploaded = int(epoch_seconds(upload_time))
    return {
        "site": site or UNKNOWN_SITE,
        "upload_id": make_upload_id(upload_time),
        "upload_timestamp_s": uploaded,
        "expire_timestamp_s": uploaded + ttl_hours * 3600,
        "filename": key,
        "size_bytes": int(size_bytes),
        "status": status,
        "reason": reason[:REASON_MAX_CHARS],
    }


def recent_uploads(site: str, limit: int = 100) -> list[dict[str, Any]]:
    """The site's newest `limit` items, newest attempt first (numbers as DynamoDB gives them, Decimal).

    The query photonranch-api's dev-tools tab makes (by the hash key `site`), read backwards along
    `upload_id` so the newest attempts come first without reading the rest of the 48 hours.
    """
    response = client("dynamodb").query(
        TableName=get_settings().uploads_log_table,
        KeyConditionExpression="#site = :site",
        ExpressionAttributeNames={"#site": "site"},
        ExpressionAttributeValues={":site": {"S": site}},
        ScanIndexForward=False,
        Limit=limit,
    )
    return [from_dynamodb(item) for item in response.get("Items", [])]


def logged_sites() -> set[str]:
    """Every site with an item in the log (a scan of the hash key only; the table keeps 48 hours)."""
    sites: set[str] = set()
    paginator = client("dynamodb").get_paginator("scan")
    pages = paginator.paginate(
        TableName=get_settings().uploads_log_table,
        ProjectionExpression="#site",
        ExpressionAttributeNames={"#site": "site"},
    )
    for page in pages:
        sites.update(item["site"]["S"] for item in page.get("Items", []))
    return sites


def record_upload(
    *, key: str, site: str, size_bytes: int, status: str, reason: str, upload_time: dt.datetime
) -> dict[str, Any]:
    """Write one log item for an upload and return it. `upload_time` is naive UTC.

    Raises:
        botocore errors from DynamoDB: the ingest reports the upload for a retry (the log must not lose it).
    """
    settings = get_settings()
    item = build_item(
        key=key,
        site=site,
        size_bytes=size_bytes,
        status=status,
        reason=reason,
        upload_time=upload_time,
        ttl_hours=settings.uploads_log_ttl_hours,
    )
    client("dynamodb").put_item(TableName=settings.uploads_log_table, Item=to_dynamodb(item))
    return item

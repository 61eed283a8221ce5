"""One `recent-uploads-log` item per attempt at an upload (docs/contracts.md §3), read by photonranch-api's
dev-tools tab.

The table's hash key is `site`; the range key `upload_id` orders a site's items by when the attempt
*ran*: the processing time in epoch milliseconds, zero-padded to 13 digits so that string order is
time order, then `#` and a random UUID, so two attempts in the same millisecond never share a key and
neither overwrites the other. Every attempt (first delivery, SQS retry, DLQ redrive, `reprocess`) writes
its own item, so a query by site comes back oldest attempt first and the newest item for a key is the
latest attempt's truth, whatever the upload time. Ordering by the upload (S3 event) time would not do:
every redelivery of a message carries the same event time, and `reprocess` replays an older one.

The upload time stays an attribute (`upload_timestamp_s`), beside `processed_timestamp_s`. The TTL
counts from when the item is written, so a late retry, a redrive or a backfill of old files stays
visible for the full TTL instead of expiring on arrival.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from archive.aws import client, from_dynamodb, to_dynamodb
from archive.clock import epoch_seconds, utc_now
from archive.formats.filenames import UNKNOWN_SITE
from archive.settings import get_settings
from archive.statuses import PROBLEMS, STATUSES

# An item's attributes, as `build_item` writes them (docs/contracts.md §3; `upload_id` and
# `processed_timestamp_s` are ours). Readers (the viewer) take the names from here.
ITEM_FIELDS = (
    "site",
    "upload_id",
    "upload_timestamp_s",
    "processed_timestamp_s",
    "expire_timestamp_s",
    "filename",
    "size_bytes",
    "status",
    "reason",
)
REASON_MAX_CHARS = 2_000  # a reason is for people; an exception text must not approach the 400 KB item limit


def make_upload_id(processed_at: dt.datetime, unique: str | None = None) -> str:
    """`{epoch ms of the attempt, 13 digits}#{unique}`: sorts by attempt, never collides."""
    millis = int(epoch_seconds(processed_at) * 1000)
    return f"{millis:013d}#{unique or uuid.uuid4().hex}"


def build_item(
    *,
    key: str,
    site: str,
    size_bytes: int,
    status: str,
    reason: str,
    upload_time: dt.datetime,
    processed_at: dt.datetime,
    ttl_hours: int,
) -> dict[str, Any]:
    """The item as plain Python values; pure, so the contract can be checked without AWS."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    processed = int(epoch_seconds(processed_at))
    return {
        "site": site or UNKNOWN_SITE,
        "upload_id": make_upload_id(processed_at),
        "upload_timestamp_s": int(epoch_seconds(upload_time)),
        "processed_timestamp_s": processed,
        "expire_timestamp_s": processed + ttl_hours * 3600,
        "filename": key,
        "size_bytes": int(size_bytes),
        "status": status,
        "reason": reason[:REASON_MAX_CHARS],
    }


def _site_query(site: str, *, failures_only: bool = False, text: str = "") -> dict[str, Any]:
    """The query of one site's items by the hash key, with the filters the dev tools offer:
    `failures_only` keeps the attempts a person should look at (statuses.PROBLEMS), `text` those whose
    filename or reason contains it (case-sensitive, as DynamoDB's `contains`)."""
    names = {"#site": "site"}
    values: dict[str, Any] = {":site": {"S": site}}
    conditions = []
    if failures_only:
        names["#status"] = "status"
        marks = [f":status{i}" for i in range(len(PROBLEMS))]
        values.update({mark: {"S": status} for mark, status in zip(marks, PROBLEMS, strict=True)})
        conditions.append(f"#status IN ({', '.join(marks)})")
    if text:
        names.update({"#filename": "filename", "#reason": "reason"})
        values[":text"] = {"S": text}
        conditions.append("(contains(#filename, :text) OR contains(#reason, :text))")
    request: dict[str, Any] = {
        "TableName": get_settings().uploads_log_table,
        "KeyConditionExpression": "#site = :site",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    if conditions:
        request["FilterExpression"] = " AND ".join(conditions)
    return request


def recent_uploads(site: str, limit: int = 100) -> list[dict[str, Any]]:
    """The site's newest `limit` items, newest attempt first (numbers as DynamoDB gives them, Decimal).

    The query photonranch-api's dev-tools tab makes (by the hash key `site`), read backwards along
    `upload_id`, which orders attempts by when they ran, so the latest attempts come first without
    reading the rest of the 48 hours.
    """
    response = client("dynamodb").query(**_site_query(site), ScanIndexForward=False, Limit=limit)
    return [from_dynamodb(item) for item in response.get("Items", [])]


def uploads_page(
    site: str,
    limit: int,
    *,
    before: str | None = None,
    failures_only: bool = False,
    text: str = "",
    read_budget: int = 5_000,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the site's log, newest attempt first, after the range key `before`; and the cursor of
    the next page (None at the oldest item).

    A query by the hash key read backwards from `before`, so no page costs more than its own items plus
    those a filter passes over: `failures_only` keeps failed and rejected attempts, `text` those whose
    filename or reason contains it (case-sensitive, as DynamoDB's `contains`). A filter applies after
    DynamoDB's Limit, so the query goes on until `limit` items pass or `read_budget` items were read;
    the cursor then says where to go on.
    """
    request = _site_query(site, failures_only=failures_only, text=text)
    filtered = "FilterExpression" in request
    items: list[dict[str, Any]] = []
    start = {"site": {"S": site}, "upload_id": {"S": before}} if before else None
    read = 0
    while True:
        page_limit = limit - len(items) if not filtered else max(limit, 200)
        response = client("dynamodb").query(**request, ScanIndexForward=False, Limit=page_limit,
                                            **({"ExclusiveStartKey": start} if start else {}))
        read += int(response.get("ScannedCount", 0))
        for item in response.get("Items", []):
            items.append(from_dynamodb(item))
            if len(items) == limit:
                last = response.get("LastEvaluatedKey")
                more = last is not None or item is not response["Items"][-1]
                return items, (items[-1]["upload_id"] if more else None)
        start = response.get("LastEvaluatedKey")
        if start is None:
            return items, None
        if read >= read_budget:
            return items, start["upload_id"]["S"]


def count_uploads(site: str, *, failures_only: bool = False) -> int:
    """How many items the site's log holds (Select COUNT over its partition: nothing else is read)."""
    request = {**_site_query(site, failures_only=failures_only), "Select": "COUNT"}
    total = 0
    for page in client("dynamodb").get_paginator("query").paginate(**request):
        total += int(page.get("Count", 0))
    return total


def has_uploads(site: str) -> bool:
    """Whether the log holds any item of the site: one key read (Limit 1), not a scan."""
    response = client("dynamodb").query(**_site_query(site), ProjectionExpression="upload_id", Limit=1)
    return bool(response.get("Items"))


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
    *,
    key: str,
    site: str,
    size_bytes: int,
    status: str,
    reason: str,
    upload_time: dt.datetime,
    processed_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Write one log item for an attempt at an upload and return it.

    `upload_time` is when the object was uploaded (the S3 event time), `processed_at` when this attempt
    ran (default: now); both naive UTC.

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
        processed_at=processed_at or utc_now(),
        ttl_hours=settings.uploads_log_ttl_hours,
    )
    client("dynamodb").put_item(TableName=settings.uploads_log_table, Item=to_dynamodb(item))
    return item


def attempt_order(item: Mapping[str, Any]) -> str:
    """Sort key of an item among its site's: the range key, which orders attempts by when they ran."""
    return str(item.get("upload_id", ""))


def uploaded_seconds(item: Mapping[str, Any]) -> int | None:
    """When the object was uploaded (the S3 event time), in epoch seconds, if the item says."""
    value = item.get("upload_timestamp_s")
    return int(value) if isinstance(value, (int, Decimal)) else None


def processed_seconds(item: Mapping[str, Any]) -> int:
    """When the attempt ran, in epoch seconds (from the range key for items written before the attribute)."""
    if "processed_timestamp_s" in item:
        return int(item["processed_timestamp_s"])
    prefix = attempt_order(item).partition("#")[0]
    return int(prefix) // 1000 if prefix.isdigit() else int(item.get("upload_timestamp_s", 0))


def newest_attempts(items: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """filename -> the item of the latest attempt at it: what the log says about each file now."""
    newest: dict[str, Mapping[str, Any]] = {}
    for item in items:
        key = str(item.get("filename", ""))
        if key not in newest or attempt_order(item) > attempt_order(newest[key]):
            newest[key] = item
    return newest


def scan_items() -> list[dict[str, Any]]:
    """Every item of the table as plain values (operator tools and the local stack's checks; not the Lambda)."""
    items: list[dict[str, Any]] = []
    for page in client("dynamodb").get_paginator("scan").paginate(TableName=get_settings().uploads_log_table):
        items += [from_dynamodb(item) for item in page.get("Items", [])]
    return items

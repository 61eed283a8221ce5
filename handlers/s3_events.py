"""Decode every event shape that can carry an S3 object-created notification into `Upload`s.

Shapes: a direct S3 event, SQS messages whose body is an S3 event (or an SNS envelope of one, or
`s3:TestEvent`, which carries nothing), SNS records, and EventBridge "Object Created" events.
Every record of an event is returned, not only the first.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from archive.filenames import decode_event_key
from archive.ingest import Upload, utc_now


class EventError(ValueError):
    """An event (or message body) that is not any shape we know; never fixed by a retry."""


def _parse_time(value: Any) -> dt.datetime:
    if not isinstance(value, str) or not value:
        return utc_now()
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return utc_now()
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _from_s3_record(record: dict[str, Any]) -> Upload | None:
    if not str(record.get("eventName", "")).startswith("ObjectCreated"):
        return None
    try:
        s3 = record["s3"]
        bucket = s3["bucket"]["name"]
        raw_key = s3["object"]["key"]
        size = _size(s3["object"].get("size"))
    except (KeyError, TypeError, AttributeError) as exc:
        raise EventError(f"S3 record without bucket/key: missing {exc}") from None
    if not isinstance(bucket, str) or not isinstance(raw_key, str) or not raw_key:
        raise EventError("S3 record whose bucket or key is not a string")
    return Upload(bucket, decode_event_key(raw_key), size, _parse_time(record.get("eventTime")))


def _size(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise EventError(f"object size {value!r} is not a number") from None


def _from_eventbridge(event: dict[str, Any]) -> Upload:
    try:
        detail = event["detail"]
        bucket = detail["bucket"]["name"]
        key = detail["object"]["key"]
        size = _size(detail["object"].get("size"))
    except (KeyError, TypeError, AttributeError) as exc:
        raise EventError(f"EventBridge Object Created event without bucket/key: missing {exc}") from None
    if not isinstance(bucket, str) or not isinstance(key, str) or not key:
        raise EventError("EventBridge event whose bucket or key is not a string")
    # EventBridge carries the key as stored, not URL-encoded.
    return Upload(bucket, key, size, _parse_time(event.get("time")))


def uploads_in(payload: Any) -> list[Upload]:
    """All object-created uploads in an event or message body (a dict or its JSON text)."""
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise EventError(f"message body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise EventError(f"event is a {type(payload).__name__}, not an object")
    if payload.get("Event") == "s3:TestEvent":
        return []
    if payload.get("source") == "aws.s3":
        return [_from_eventbridge(payload)] if payload.get("detail-type") == "Object Created" else []
    if payload.get("Type") == "Notification" and "Message" in payload:  # SNS envelope inside SQS
        return uploads_in(payload["Message"])
    records = payload.get("Records")
    if not isinstance(records, list):
        raise EventError("event has no Records and is not an EventBridge or test event")
    uploads: list[Upload] = []
    for record in records:
        if not isinstance(record, dict):
            raise EventError("a record is not an object")
        source = record.get("eventSource") or record.get("EventSource")
        if source == "aws:s3":
            upload = _from_s3_record(record)
            if upload is not None:
                uploads.append(upload)
        elif source == "aws:sns":
            sns = record.get("Sns")
            uploads.extend(uploads_in(sns.get("Message", "") if isinstance(sns, dict) else ""))
        elif source == "aws:sqs":
            uploads.extend(uploads_in(record.get("body", "")))
        else:
            raise EventError(f"record from an unknown source {source!r}")
    return uploads


def is_sqs_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)

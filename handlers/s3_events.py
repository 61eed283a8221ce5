"""Decode every event shape that can carry an S3 object-created notification into `Upload`s.

Shapes: a direct S3 event, SQS messages whose body is an S3 event (or an SNS envelope of one, or
`s3:TestEvent`, which carries nothing), SNS records, and EventBridge "Object Created" events.
Every record of an event is returned, not only the first.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from archive.clock import utc_now
from archive.errors import PermanentError
from archive.formats.filenames import decode_event_key
from archive.ingest.pipeline import Upload


class EventError(PermanentError, ValueError):
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


def _upload(part: Any, event_time: Any, *, url_encoded: bool, shape: str) -> Upload:
    """Both shapes nest `bucket.name` and `object.key`/`object.size` alike: S3 records under `s3`,
    EventBridge under `detail`. S3 URL-encodes the key; EventBridge carries it as stored."""
    try:
        bucket = part["bucket"]["name"]
        key = part["object"]["key"]
        raw_size = part["object"].get("size")
    except (KeyError, TypeError, AttributeError) as exc:
        raise EventError(f"{shape} without bucket/key: missing {exc}") from None
    if not isinstance(bucket, str) or not isinstance(key, str) or not key:
        raise EventError(f"{shape} whose bucket or key is not a string")
    try:
        size = int(raw_size or 0)
    except (TypeError, ValueError):
        raise EventError(f"object size {raw_size!r} is not a number") from None
    return Upload(bucket, decode_event_key(key) if url_encoded else key, size, _parse_time(event_time))


def _as_object(payload: Any) -> dict[str, Any]:
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise EventError(f"message body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise EventError(f"event is a {type(payload).__name__}, not an object")
    return payload


def _record_uploads(record: Any) -> list[Upload]:
    """The uploads one record of a `Records` list carries (S3, SNS or SQS)."""
    if not isinstance(record, dict):
        raise EventError("a record is not an object")
    source = record.get("eventSource") or record.get("EventSource")
    if source == "aws:s3":
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            return []
        return [_upload(record.get("s3"), record.get("eventTime"), url_encoded=True, shape="S3 record")]
    if source == "aws:sns":
        sns = record.get("Sns")
        return uploads_in(sns.get("Message", "") if isinstance(sns, dict) else "")
    if source == "aws:sqs":
        return uploads_in(record.get("body", ""))
    raise EventError(f"record from an unknown source {source!r}")


def uploads_in(payload: Any) -> list[Upload]:
    """All object-created uploads in an event or message body (a dict or its JSON text).

    Raises:
        EventError: not a shape we know (permanent: logged and dropped, never retried).
    """
    event = _as_object(payload)
    if event.get("Event") == "s3:TestEvent":
        return []
    if event.get("source") == "aws.s3":
        if event.get("detail-type") != "Object Created":
            return []
        return [_upload(event.get("detail"), event.get("time"), url_encoded=False, shape="EventBridge event")]
    if event.get("Type") == "Notification" and "Message" in event:  # SNS envelope inside SQS
        return uploads_in(event["Message"])
    records = event.get("Records")
    if not isinstance(records, list):
        raise EventError("event has no Records and is not an EventBridge or test event")
    return [upload for record in records for upload in _record_uploads(record)]


def is_sqs_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        return False
    return all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)

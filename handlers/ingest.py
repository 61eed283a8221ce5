"""Lambda entry point for ingestion: decode the event, ingest each upload, report what to retry.

Every event shape that can carry an S3 object-created notification is decoded here into `Upload`s: a
direct S3 event, SQS messages whose body is an S3 event (or an SNS envelope of one, or `s3:TestEvent`,
which carries nothing), SNS records, and EventBridge "Object Created" events. Every record of an event
is returned, not only the first (`uploads_in`; the local worker decodes its messages with it too).

From SQS (the production path) the response lists only the messages a redelivery can fix
(`batchItemFailures`); permanent failures were logged with their reason and are not retried. Any
other shape (direct S3, SNS, EventBridge) raises when something must be retried, so Lambda's own
retry of asynchronous invocations applies. Datastream messages go out once per batch, after the
database work, for the uploads that succeeded.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from archive import database, snapstart
from archive.clock import utc_now
from archive.errors import PermanentError, RetryableError
from archive.formats.filenames import decode_event_key
from archive.ingest import datastream
from archive.ingest.pipeline import Outcome, Upload, ingest_upload
from archive.ingest.thumbnails import rehearse
from handlers.metrics import Measured, record_datastream, record_retried_upload, record_uploads
from handlers.observability import logger, start_invocation


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


# With SnapStart: Pillow imported and a thumbnail made before the snapshot; clients, engines and random
# seeds renewed after each restore (archive/snapstart.py). Without it, nothing happens at init.
snapstart.install(rehearse)


def _ingest(upload: Upload) -> Measured:
    """One upload, with its lag: from its S3 event time to `ingest_upload`'s return (row committed, upload
    logged). One that raises (to be retried) is counted as failed and re-raised."""
    try:
        outcome = ingest_upload(upload)
    except Exception:
        record_retried_upload(upload)
        raise
    return Measured(outcome, max(0.0, (utc_now() - upload.event_time).total_seconds() * 1000))


def _record_handler(record: SQSRecord) -> list[Measured]:
    try:
        uploads = uploads_in(record.body)
    except EventError as exc:
        # Unreadable forever: say so loudly, with the body, and do not retry it.
        logger.error("unreadable message dropped", extra={"message_id": record.message_id, "reason": str(exc),
                                                          "body": record.body[:2000]})
        return []
    return [_ingest(upload) for upload in uploads]


def _finish(measured: list[Measured]) -> list[Outcome]:
    """After the batch's database work: its datastream messages (first: the live view waits for them;
    the metrics do not), then its metrics. The outcomes, for the caller's summary."""
    outcomes = [m.outcome for m in measured]
    notifications = [o.notification for o in outcomes if o.notification is not None]
    if notifications:
        record_datastream(datastream.notify(notifications))
    record_uploads(measured)
    return outcomes


def handle_sqs(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # A processor per invocation: it holds the batch's state, and the local stack's worker threads
    # may invoke the handler concurrently in one process.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    with database.batch_scope(), processor(records=event["Records"], handler=_record_handler, lambda_context=context):
        results = processor.process()
    measured = [m for status, result, _ in results if status == "success" for m in (result or [])]
    outcomes = _finish(measured)
    response = processor.response()
    logger.info("batch done", extra={"messages": len(results), "uploads": len(outcomes),
                                     "retry": len(response["batchItemFailures"])})
    return dict(response)


def handle_direct(event: dict[str, Any]) -> dict[str, Any]:
    try:
        uploads = uploads_in(event)
    except EventError as exc:
        logger.error("unreadable event dropped", extra={"reason": str(exc), "event": str(event)[:2000]})
        return {"uploads": 0, "error": str(exc)}
    measured: list[Measured] = []
    retry: list[str] = []
    with database.batch_scope():
        for upload in uploads:
            try:
                measured.append(_ingest(upload))
            except RetryableError as exc:
                retry.append(f"{upload.key}: {exc.reason}")
    outcomes = _finish(measured)
    if retry:
        raise RuntimeError(f"{len(retry)} of {len(uploads)} uploads need a retry: " + "; ".join(retry))
    return {"uploads": len(uploads), "statuses": dict(Counter(o.status for o in outcomes))}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Not powertools' inject_lambda_context: the local stack and tests invoke without a Lambda context.
    start_invocation("ingest", context)
    if is_sqs_batch(event):
        return handle_sqs(event, context)
    return handle_direct(event)

"""Lambda entry point for ingestion: decode the event, ingest each upload, report what to retry.

From SQS (the production path) the response lists only the messages a redelivery can fix
(`batchItemFailures`); permanent failures were logged with their reason and are not retried. Any
other shape (direct S3, SNS, EventBridge) raises when something must be retried, so Lambda's own
retry of asynchronous invocations applies. Datastream messages go out once per batch, after the
database work, for the uploads that succeeded.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from archive import database, snapstart
from archive.clock import utc_now
from archive.errors import RetryableError
from archive.ingest import datastream
from archive.ingest.pipeline import Outcome, Upload, ingest_upload
from archive.ingest.thumbnails import rehearse
from handlers.metrics import Measured, record_datastream, record_retried_upload, record_uploads
from handlers.observability import logger, start_invocation
from handlers.s3_events import EventError, is_sqs_batch, uploads_in

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


def _notify(outcomes: list[Outcome]) -> None:
    notifications = [o.notification for o in outcomes if o.notification is not None]
    if notifications:
        record_datastream(datastream.notify(notifications))


def handle_sqs(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # A processor per invocation: it holds the batch's state, and the local stack's worker threads
    # may invoke the handler concurrently in one process.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    with database.batch_scope(), processor(records=event["Records"], handler=_record_handler, lambda_context=context):
        results = processor.process()
    measured = [m for status, result, _ in results if status == "success" for m in (result or [])]
    outcomes = [m.outcome for m in measured]
    _notify(outcomes)  # first: the live view waits for it; the metrics do not
    record_uploads(measured)
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
    outcomes = [m.outcome for m in measured]
    _notify(outcomes)
    record_uploads(measured)
    if retry:
        raise RuntimeError(f"{len(retry)} of {len(uploads)} uploads need a retry: " + "; ".join(retry))
    return {"uploads": len(uploads), "statuses": dict(Counter(o.status for o in outcomes))}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Not powertools' inject_lambda_context: the local stack and tests invoke without a Lambda context.
    start_invocation("ingest", context)
    if is_sqs_batch(event):
        return handle_sqs(event, context)
    return handle_direct(event)

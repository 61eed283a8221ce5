"""Lambda entry point for expirations: the `data-expiration-tracker` stream (DESIGN.md 2.5).

Only a REMOVE made by DynamoDB's TTL expires an exposure; AWS marks those records with
`userIdentity = {type: Service, principalId: dynamodb.amazonaws.com}`. A REMOVE made by a person
(the console, a script) cancels the expiry and deletes nothing. INSERT/MODIFY records are ignored.

Failures: a record naming an invalid base filename or directory is logged and skipped (a retry cannot
fix it, and the stream must not stall behind it). Anything else (S3, the database) is reported in
`batchItemFailures` (for `functionResponseTypes: ReportBatchItemFailures`), by powertools' batch
processor as for the ingest queue: Lambda retries the stream from the first failed record; expiring an
exposure twice deletes nothing more, so the later records it repeats are harmless.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from archive.aws import from_dynamodb
from archive.formats.filenames import FilenameError
from archive.ingest.expirations import TTL_IDENTITY, expire_exposure
from handlers.metrics import record_expirations
from handlers.observability import logger, start_invocation


def is_ttl_removal(record: dict[str, Any]) -> bool:
    identity = record.get("userIdentity") or {}
    return record.get("eventName") == "REMOVE" and all(identity.get(k) == v for k, v in TTL_IDENTITY.items())


def old_image(record: dict[str, Any]) -> dict[str, Any]:
    """The removed item as plain Python values (it arrives in DynamoDB JSON)."""
    image = (record.get("dynamodb") or {}).get("OldImage") or {}
    return from_dynamodb(image)


def _expire(record: dict[str, Any]) -> str:
    item = old_image(record)
    pk, directory = item.get("pk"), item.get("s3_directory")
    if not isinstance(pk, str) or not isinstance(directory, str):
        logger.error(
            "expiry record without pk/s3_directory in its OldImage; nothing deleted",
            extra={"event_id": record.get("eventID"), "keys": sorted(item)},
        )
        return "invalid"
    try:
        expire_exposure(directory, pk)  # logs what it deleted
    except FilenameError as exc:
        logger.error(
            "invalid expiry record; nothing deleted",
            extra={"base_filename": pk, "s3_directory": directory, "reason": exc.reason},
        )
        return "invalid"
    return "expired"


def _record_handler(record: DynamoDBRecord) -> str:
    """What became of the record (the `Expirations` metric's outcome); raises when it must be retried."""
    raw = record.raw_event
    if raw.get("eventName") != "REMOVE":
        return "ignored"
    if not is_ttl_removal(raw):
        logger.info("expiry cancelled (manual REMOVE); nothing deleted",
                    extra={"base_filename": old_image(raw).get("pk"), "user_identity": raw.get("userIdentity")})
        return "cancelled"
    return _expire(raw)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    start_invocation("expire", context)
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    with processor(records=event.get("Records") or [], handler=_record_handler, lambda_context=context):
        results = processor.process()
    record_expirations(str(result) if status == "success" else "failed" for status, result, _ in results)
    return dict(processor.response())

"""Lambda entry point for expirations: the `data-expiration-tracker` stream (DESIGN.md 2.5).

Only a REMOVE made by DynamoDB's TTL expires an exposure; AWS marks those records with
`userIdentity = {type: Service, principalId: dynamodb.amazonaws.com}`. A REMOVE made by a person
(the console, a script) cancels the expiry and deletes nothing. INSERT/MODIFY records are ignored.

Failures: a record naming an invalid base filename or directory is logged and skipped (a retry cannot
fix it, and the stream must not stall behind it). Anything else (S3, the database) is reported as the
batch's first failure (`batchItemFailures`, for `functionResponseTypes: ReportBatchItemFailures`) and
processing stops there: Lambda retries from that record, and every later record is retried with it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from boto3.dynamodb.types import TypeDeserializer

from archive.expirations import TTL_IDENTITY, expire_exposure
from archive.filenames import FilenameError
from archive.settings import get_settings

logger = Logger(service="photonranch-archive-expire", level=get_settings().log_level)
copy_config_to_registered_loggers(source_logger=logger, include={"archive"})

_deserializer = TypeDeserializer()


def is_ttl_removal(record: dict[str, Any]) -> bool:
    identity = record.get("userIdentity") or {}
    return record.get("eventName") == "REMOVE" and all(identity.get(k) == v for k, v in TTL_IDENTITY.items())


def old_image(record: dict[str, Any]) -> dict[str, Any]:
    """The removed item as plain Python values (it arrives in DynamoDB JSON)."""
    image = (record.get("dynamodb") or {}).get("OldImage") or {}
    return {name: _deserializer.deserialize(value) for name, value in image.items()}


def _expire(record: dict[str, Any]) -> None:
    item = old_image(record)
    pk, directory = item.get("pk"), item.get("s3_directory")
    if not isinstance(pk, str) or not isinstance(directory, str):
        logger.error(
            "expiry record without pk/s3_directory in its OldImage; nothing deleted",
            extra={"event_id": record.get("eventID"), "keys": sorted(item)},
        )
        return
    try:
        expire_exposure(directory, pk)  # logs what it deleted
    except FilenameError as exc:
        logger.error(
            "invalid expiry record; nothing deleted",
            extra={"base_filename": pk, "s3_directory": directory, "reason": exc.reason},
        )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.clear_state()
    logger.set_correlation_id(getattr(context, "aws_request_id", None))
    records = event.get("Records") or []
    for record in records:
        if record.get("eventName") != "REMOVE":
            continue
        if not is_ttl_removal(record):
            pk = old_image(record).get("pk")
            logger.info("expiry cancelled (manual REMOVE); nothing deleted",
                        extra={"base_filename": pk, "user_identity": record.get("userIdentity")})
            continue
        try:
            _expire(record)
        except Exception:
            sequence = (record.get("dynamodb") or {}).get("SequenceNumber")
            logger.exception("expiry failed; the stream will retry", extra={"sequence_number": sequence})
            return {"batchItemFailures": [{"itemIdentifier": sequence}]}
    return {"batchItemFailures": []}

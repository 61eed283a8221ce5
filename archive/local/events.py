"""The event shapes AWS hands to our Lambdas, built from what the local stack sees.

Pure functions, no I/O: the worker turns received SQS messages into the `{"Records": [...]}` event
Lambda's SQS poller sends; the TTL sweeper turns a deleted DynamoDB item into the stream REMOVE record
that DynamoDB's TTL process emits; `reprocess` turns a listed object into an S3 object-created event.
Keeping the shapes here, next to each other, makes it easy to check them against AWS's documentation
and lets the tests assert on them without starting anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from archive.ingest.expirations import TTL_IDENTITY

# What DynamoDB puts in `userIdentity` of a stream record for a deletion made by TTL.


def _iso(moment: dt.datetime) -> str:
    """AWS's event time format: UTC with milliseconds and a `Z`."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def queue_arn(region: str, account: str, queue_name: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{queue_name}"


def sqs_event(messages: Iterable[Mapping[str, Any]], source_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS poller sends for a batch of messages returned by ReceiveMessage.

    `messages` are ReceiveMessage's `Messages` entries (received with all system attributes), so
    `ApproximateReceiveCount` is the queue's own count and a handler that looks at it sees the truth.
    """
    records = []
    for message in messages:
        body = message["Body"]
        attributes = {key: str(value) for key, value in (message.get("Attributes") or {}).items()}
        attributes.setdefault("ApproximateReceiveCount", "1")
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": body,
                "attributes": attributes,
                "messageAttributes": dict(message.get("MessageAttributes") or {}),
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": source_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def failed_message_ids(response: Any) -> set[str]:
    """The message ids a handler reported in `batchItemFailures` (partial batch response).

    A response that is not a dict, or has no `batchItemFailures`, reports none: with
    ReportBatchItemFailures on, Lambda treats such a successful return as "all succeeded".
    """
    if not isinstance(response, Mapping):
        return set()
    failures = response.get("batchItemFailures") or []
    return {str(item["itemIdentifier"]) for item in failures if isinstance(item, Mapping) and "itemIdentifier" in item}


def s3_object_created_event(
    bucket: str, key: str, size_bytes: int, event_time: dt.datetime, region: str, etag: str = ""
) -> dict[str, Any]:
    """An S3 `ObjectCreated:Put` notification for one object, key URL-encoded as S3 sends it."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": _iso(event_time),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:archive-reprocess"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "archive-reprocess",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": int(size_bytes), "eTag": etag.strip('"')},
                },
            }
        ]
    }


@dataclass
class StreamSequence:
    """Increasing stream sequence numbers, as DynamoDB gives each record of a shard."""

    next_value: int = 100_000_000_000_000_000_000
    step: int = 1

    def take(self) -> str:
        value = self.next_value
        self.next_value += self.step
        return str(value)


def key_of(item: Mapping[str, Any], key_names: Iterable[str]) -> dict[str, Any]:
    """The key attributes of an item in DynamoDB JSON."""
    return {name: item[name] for name in key_names}


def ttl_remove_record(
    old_image: Mapping[str, Any],
    key_names: Iterable[str],
    stream_arn: str,
    region: str,
    sequence_number: str,
    removed_at: dt.datetime,
) -> dict[str, Any]:
    """The stream record DynamoDB emits when TTL deletes an item (view NEW_AND_OLD_IMAGES).

    `old_image` is in DynamoDB JSON (`{"pk": {"S": "..."}}`), exactly as the low-level client
    returns it; a TTL deletion has no NewImage and carries the service identity.
    """
    image = dict(old_image)
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": {
            "ApproximateCreationDateTime": int(removed_at.timestamp()),
            "Keys": key_of(image, key_names),
            "OldImage": image,
            "SequenceNumber": sequence_number,
            "SizeBytes": len(json.dumps(image)),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "userIdentity": dict(TTL_IDENTITY),
        "eventSourceARN": stream_arn,
    }


def ttl_value(item: Mapping[str, Any], attribute: str) -> int | None:
    """An item's TTL attribute as epoch seconds, or None when absent or not a number.

    DynamoDB ignores (never expires) items whose TTL attribute is missing or not a Number, so the
    sweeper does the same.
    """
    value = item.get(attribute)
    if not isinstance(value, Mapping) or "N" not in value:
        return None
    try:
        return int(float(value["N"]))
    except ValueError:
        return None


@dataclass(frozen=True)
class LambdaContext:
    """The parts of Lambda's context object that our handlers and powertools read."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""
    timeout_ms: int = 900_000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms

"""DynamoDB's TTL process, for the local stack: moto stores TTL settings but never expires items.

Every `interval` seconds the sweeper scans each table for items whose TTL attribute (a Number, epoch
seconds) is in the past and deletes them, conditionally on the attribute still holding the value it
saw, so an item whose expiry was pushed back in the meantime survives. For a table whose stream
triggers a Lambda in AWS (the expiration tracker → `handlers.expire`), it hands the handler the REMOVE
records DynamoDB's TTL emits: OldImage in DynamoDB JSON, the service `userIdentity`, increasing
sequence numbers, the stream ARN.

A handler that raises, or reports records in `batchItemFailures`, gets those records again at the
next sweeps (a stream blocks and retries), up to `max_attempts`; then they are logged and dropped, as
an event source mapping with MaximumRetryAttempts would do. Unlike AWS, which may take up to a few
days, expired items go within one interval: that is what makes a 5-second expiry testable.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archive.local.events import LambdaContext, StreamSequence, ttl_remove_record, ttl_value
from archive.local.loop import BackgroundLoop

logger = logging.getLogger(__name__)

FIVE_YEARS_S = 5 * 365 * 86_400  # DynamoDB never expires items whose TTL is older than this

StreamHandler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class TtlTable:
    name: str
    ttl_attribute: str
    key_names: tuple[str, ...]
    stream_arn: str | None


@dataclass
class _Pending:
    record: dict[str, Any]
    attempts: int = 0


@dataclass
class SweepResult:
    deleted: dict[str, int] = field(default_factory=dict)  # table -> items deleted this sweep
    delivered: int = 0  # stream records the handler accepted
    dropped: int = 0  # stream records given up after max_attempts


def describe_ttl_tables(ddb: Any, names: list[str]) -> list[TtlTable]:
    """Each table's key, TTL attribute and stream, as the table itself reports them."""
    tables = []
    for name in names:
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            continue
        table = ddb.describe_table(TableName=name)["Table"]
        stream_on = (table.get("StreamSpecification") or {}).get("StreamEnabled", False)
        tables.append(
            TtlTable(
                name=name,
                ttl_attribute=ttl["AttributeName"],
                key_names=tuple(k["AttributeName"] for k in table["KeySchema"]),
                stream_arn=table.get("LatestStreamArn") if stream_on else None,
            )
        )
    return tables


def is_expired(ttl: int | None, now: int) -> bool:
    """DynamoDB's rule: a Number of epoch seconds in the past, but not more than five years past."""
    return ttl is not None and now - FIVE_YEARS_S <= ttl < now


def _failed_sequence_numbers(response: Any) -> set[str] | None:
    """Sequence numbers a stream handler reported as failed; None when it reported nothing."""
    if not isinstance(response, dict) or "batchItemFailures" not in response:
        return None
    return {str(f.get("itemIdentifier")) for f in response["batchItemFailures"] or [] if isinstance(f, dict)}


class TtlSweeper(BackgroundLoop):
    thread_name = "ttl-sweeper"

    def __init__(
        self,
        ddb: Any,
        tables: list[TtlTable],
        stream_handlers: dict[str, StreamHandler],
        *,
        region: str,
        interval: float = 1.0,
        max_attempts: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(interval=interval)  # a failed sweep is simply tried at the next interval
        self.ddb = ddb
        self.tables = tables
        self.stream_handlers = stream_handlers
        self.region = region
        self.max_attempts = max_attempts
        self.clock = clock
        self._sequence = StreamSequence()
        self._pending: dict[str, list[_Pending]] = {}
        self.lock = threading.Lock()  # one sweep at a time (the thread, or a test calling sweep_once)

    def _expired(self, table: TtlTable, now: int) -> list[dict[str, Any]]:
        paginator = self.ddb.get_paginator("scan")
        items: list[dict[str, Any]] = []
        for page in paginator.paginate(
            TableName=table.name,
            # The type test first: DynamoDB ignores TTL attributes that are not Numbers (and moto
            # raises comparing a String with a Number).
            FilterExpression="attribute_type(#ttl, :number) AND #ttl < :now",
            ExpressionAttributeNames={"#ttl": table.ttl_attribute},
            ExpressionAttributeValues={":now": {"N": str(now)}, ":number": {"S": "N"}},
        ):
            items.extend(page.get("Items", []))
        return [item for item in items if is_expired(ttl_value(item, table.ttl_attribute), now)]

    def _delete(self, table: TtlTable, item: dict[str, Any]) -> dict[str, Any] | None:
        """Delete if the TTL attribute is unchanged; the deleted image, or None when it moved on."""
        try:
            result = self.ddb.delete_item(
                TableName=table.name,
                Key={name: item[name] for name in table.key_names},
                ConditionExpression="#ttl = :seen",
                ExpressionAttributeNames={"#ttl": table.ttl_attribute},
                ExpressionAttributeValues={":seen": item[table.ttl_attribute]},
                ReturnValues="ALL_OLD",
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return None
        return result.get("Attributes")

    def sweep_once(self) -> SweepResult:
        with self.lock:
            result = SweepResult()
            now = int(self.clock())
            for table in self.tables:
                deleted = 0
                handler = self.stream_handlers.get(table.name)
                for item in self._expired(table, now):
                    old_image = self._delete(table, item)
                    if old_image is None:
                        continue
                    deleted += 1
                    if handler is not None and table.stream_arn:
                        record = ttl_remove_record(
                            old_image,
                            table.key_names,
                            table.stream_arn,
                            self.region,
                            self._sequence.take(),
                            dt.datetime.fromtimestamp(self.clock(), dt.UTC),
                        )
                        self._pending.setdefault(table.name, []).append(_Pending(record))
                result.deleted[table.name] = deleted
                if handler is not None:
                    delivered, dropped = self._deliver(table, handler)
                    result.delivered += delivered
                    result.dropped += dropped
            return result

    def _deliver(self, table: TtlTable, handler: StreamHandler) -> tuple[int, int]:
        pending = self._pending.get(table.name, [])
        if not pending:
            return 0, 0
        event = {"Records": [p.record for p in pending]}
        try:
            failed = _failed_sequence_numbers(handler(event, LambdaContext(function_name="expire-local")))
        except Exception:  # noqa: BLE001 - as a stream does, keep the records and retry them
            logger.exception("expire handler raised; %d stream records will be retried", len(pending))
            failed = {p.record["dynamodb"]["SequenceNumber"] for p in pending}
        keep, delivered, dropped = [], 0, 0
        for p in pending:
            if p.record["dynamodb"]["SequenceNumber"] not in (failed or set()):
                delivered += 1
                continue
            p.attempts += 1
            if p.attempts >= self.max_attempts:
                dropped += 1
                logger.error("giving up on a stream record after %d attempts: %s", p.attempts, p.record["dynamodb"])
            else:
                keep.append(p)
        self._pending[table.name] = keep
        return delivered, dropped

    def step(self) -> SweepResult:
        return self.sweep_once()

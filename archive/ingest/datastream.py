"""Tell the datastreamer that an exposure arrived (DESIGN.md 2.6).

The datastreamer feeds browsers' websockets; a missed message only delays a live view, while failing
ingestion over it would retry work that already succeeded. So `notify` never raises: an outage or
throttling is logged, counted in `COUNTS` (readable by tests and the CLI) and emitted as a CloudWatch
metric (`PhotonRanchArchive/DatastreamFailures`, embedded-metric-format log line: no API call).

Messages go out in SendMessageBatch calls of up to 10, once per exposure per batch.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from archive.aws import batched, client
from archive.settings import get_settings

logger = logging.getLogger(__name__)

SQS_BATCH = 10  # SendMessageBatch's limit
METRIC_NAME = "DatastreamFailures"

COUNTS: Counter[str] = Counter()  # "sent" / "failed", for the life of the process
_COUNTS_LOCK = threading.Lock()  # the local stack's workers call notify from several threads


@dataclass(frozen=True)
class Notification:
    s3_directory: str
    base_filename: str
    site: str
    channel: int | None = None


@dataclass(frozen=True)
class NotifyResult:
    sent: int
    failed: int


def message_body(notification: Notification) -> str:
    """The exact JSON the datastreamer expects; `channel` only for info images."""
    body: dict[str, object] = {
        "topic": "imagedata",
        "site": notification.site,
        "data": {
            "s3_directory": notification.s3_directory,
            "base_filename": notification.base_filename,
            "site": notification.site,
        },
    }
    if notification.channel is not None:
        body["channel"] = notification.channel
    return json.dumps(body)


def unique(notifications: Iterable[Notification]) -> list[Notification]:
    """One per exposure (and channel), first-seen order kept."""
    return list(dict.fromkeys(notifications))


@cache
def _queue_url_by_name(name: str, region: str, endpoint_url: str | None) -> str:
    return client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def queue_url() -> str:
    """The configured URL, else the URL looked up (once per process) from the queue name."""
    settings = get_settings()
    if settings.datastream_queue_url:
        return settings.datastream_queue_url
    return _queue_url_by_name(settings.datastream_queue_name, settings.region, settings.aws_endpoint_url)


def _send(url: str, batch: Sequence[Notification]) -> int:
    """Send one batch; returns how many SQS refused (it raises only for a failed call)."""
    entries = [{"Id": str(i), "MessageBody": message_body(n)} for i, n in enumerate(batch)]
    response = client("sqs").send_message_batch(QueueUrl=url, Entries=entries)
    refused = response.get("Failed", [])
    for failure in refused:
        n = batch[int(failure["Id"])]
        logger.warning(
            "datastream message refused",
            extra={"base_filename": n.base_filename, "code": failure.get("Code"), "reason": failure.get("Message")},
        )
    return len(refused)


def _emit_failure_metric(failed: int) -> None:
    try:

        with single_metric(
            name=METRIC_NAME, unit=MetricUnit.Count, value=failed, namespace=get_settings().metrics_namespace
        ) as metric:
            metric.add_dimension(name="stage", value=get_settings().stage)
    except Exception:  # noqa: BLE001 - a metric must not turn a tolerated outage into a failure
        logger.exception("could not emit the datastream failure metric")


def notify(notifications: Iterable[Notification]) -> NotifyResult:
    """Send one message per exposure; never raises. Returns how many were sent and how many failed."""
    pending = unique(notifications)
    if not pending:
        return NotifyResult(0, 0)
    sent = failed = 0
    try:
        url = queue_url()
    except Exception as exc:  # noqa: BLE001 - an outage is logged and counted, never raised
        logger.error("datastream queue unavailable", extra={"messages": len(pending), "error": repr(exc)})
        url, failed = None, len(pending)
    if url is not None:
        for batch in batched(pending, SQS_BATCH):
            try:
                refused = _send(url, batch)
            except Exception as exc:  # noqa: BLE001 - see above
                logger.error("datastream send failed", extra={"messages": len(batch), "error": repr(exc)})
                refused = len(batch)
            failed += refused
            sent += len(batch) - refused
    with _COUNTS_LOCK:
        COUNTS["sent"] += sent
        COUNTS["failed"] += failed
    if failed:
        logger.error("datastream notifications lost", extra={"sent": sent, "failed": failed})
        _emit_failure_metric(failed)
    return NotifyResult(sent, failed)

"""Lambda's SQS poller, for the local stack: long-poll the ingest queue and call the handler.

What it reproduces from AWS (the event source mapping with ReportBatchItemFailures):
- batches of up to 10 messages, received with their system attributes, handed over as the SQS event;
- the batching window (serverless.yml `ingestBatchWindowSeconds`, 0: latency first): with 0 the handler
  gets whatever one long poll returns, as soon as it returns (an upload to an idle queue is handed over
  at once); with W > 0 the worker keeps receiving until the batch is full or W seconds have passed since
  its first message, as Lambda's poller does;
- only the messages the handler did not list in `batchItemFailures` are deleted; a handler that
  raises fails the whole batch;
- a failed message comes back, and after `maxReceiveCount` receives the queue moves it to the
  dead-letter queue. moto 5 implements that redrive on receive (checked by the poison-message test),
  so the worker does not move messages itself.

One deliberate difference: a failed message is made visible again after `retry_delay_seconds`
(ChangeMessageVisibility) instead of the queue's full visibility timeout, so a local retry takes a
second, not the 720 s the queue has (as deployed). The handler is called from one thread at a time, as
one Lambda instance runs one invocation at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archive.local.events import LambdaContext, failed_message_ids, sqs_event
from archive.local.loop import BackgroundLoop
from handlers.ingest import EventError, uploads_in

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Delivery:
    """One message's trip through the handler, for progress bars and latency figures."""

    message_id: str
    keys: tuple[str, ...]  # decoded object keys the message carried (none for a test event)
    receive_count: int
    ok: bool
    started_at: float  # time.time() when the handler was called with the message's batch
    finished_at: float  # time.time() when the handler returned


def keys_in_body(body: str) -> tuple[str, ...]:
    """Object keys carried by a message body, read as the ingest handler reads it; empty for anything
    the handler would not ingest (a test event, a body that is no event: never raises)."""
    try:
        return tuple(upload.key for upload in uploads_in(body))
    except EventError:
        return ()


class IngestWorker(BackgroundLoop):
    """Poll one queue and feed its messages to a Lambda handler until stopped."""

    thread_name = "ingest-worker"

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        region: str,
        batch_size: int = 10,
        wait_seconds: int = 1,
        batch_window_seconds: float = 0.0,
        retry_delay_seconds: int = 1,
        on_delivery: Callable[[list[Delivery]], None] | None = None,
        function_name: str = "photonranch-archive-ingest-local",
    ) -> None:
        if not 1 <= batch_size <= 10:
            raise ValueError("SQS batches hold 1 to 10 messages")
        # No wait between polls (the receive itself long-polls); a second's pause after an error.
        super().__init__(interval=0.0, error_pause=1.0)
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.region = region
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds  # how long one poll of an empty queue waits (it returns on arrival)
        self.batch_window_seconds = batch_window_seconds
        self.retry_delay_seconds = retry_delay_seconds
        self.on_delivery = on_delivery
        self.function_name = function_name
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.batches = 0

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        return list(self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", []))

    def receive_batch(self) -> list[dict[str, Any]]:
        """One batch: a long poll (up to `wait_seconds`), then, with a batching window, more polls until
        the batch is full or the window since the first message has passed."""
        received = self._receive(self.batch_size, self.wait_seconds)
        if not received or self.batch_window_seconds <= 0:
            return received
        deadline = time.monotonic() + self.batch_window_seconds
        while len(received) < self.batch_size and (left := deadline - time.monotonic()) > 0:
            if left < 1:  # SQS waits in whole seconds: sit out the rest, take what came, hand it over
                time.sleep(left)
                received += self._receive(self.batch_size - len(received), 0)
                break
            received += self._receive(self.batch_size - len(received), min(20, int(left)))
        return received

    def poll_once(self) -> list[Delivery]:
        """Receive one batch (`receive_batch`), run the handler, settle each message."""
        received = self.receive_batch()
        if not received:
            return []
        event = sqs_event(received, self.queue_arn, self.region)
        context = LambdaContext(function_name=self.function_name)
        started = time.time()
        try:
            failed = failed_message_ids(self.handler(event, context))
        except Exception:  # noqa: BLE001 - a crashing handler fails its whole batch, as in Lambda
            logger.exception("ingest handler raised; the whole batch will be retried")
            failed = {m["MessageId"] for m in received}
        finished = time.time()
        self.batches += 1
        done = [m for m in received if m["MessageId"] not in failed]
        retry = [m for m in received if m["MessageId"] in failed]
        self._settle(done, retry)
        deliveries = [
            Delivery(
                message_id=m["MessageId"],
                keys=keys_in_body(m["Body"]),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                ok=m["MessageId"] not in failed,
                started_at=started,
                finished_at=finished,
            )
            for m in received
        ]
        if self.on_delivery is not None:
            self.on_delivery(deliveries)
        return deliveries

    def _settle(self, done: list[dict[str, Any]], retry: list[dict[str, Any]]) -> None:
        if done:
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)]
            result = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in result.get("Failed", []):
                logger.warning("could not delete a processed message: %s", failure)
        if retry:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.retry_delay_seconds}
                for i, m in enumerate(retry)
            ]
            self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)

    def step(self) -> list[Delivery]:
        return self.poll_once()

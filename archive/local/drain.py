"""Stand in for the datastreamer: receive and delete what lands on the datastream queue.

In AWS the datastreamer consumes `datastreamIncomingQueue-{stage}` as fast as the archive fills it.
Locally nothing does, so the messages stay for a developer's own datastreamer or for inspection;
that is the default. A backfill of tens of thousands of files fills the queue with as many messages,
and moto counts a queue's messages on every send (each SendMessage costs time proportional to the
queue's depth), so the backfill slows down as it goes. `serve --drain-datastream` runs this loop.

After a batch of fewer than ten messages it waits `settle_seconds` before receiving again, so that a
steady trickle (a backfill sends one message every few files) is taken ten at a time: each receive and
delete is a request moto's server serves on the same CPU as the backfill, and receiving every message
on its own cost the server about a tenth of its time (py-spy, 1,000-object backfill). The queue then
holds at most a few seconds' worth of messages.
"""

from __future__ import annotations

from typing import Any

from archive.local.loop import BackgroundLoop

BATCH = 10  # SQS's most per receive


class DatastreamDrain(BackgroundLoop):
    thread_name = "datastream-drain"

    def __init__(self, sqs: Any, queue_url: str, wait_seconds: int = 1, settle_seconds: float = 0.5) -> None:
        super().__init__(interval=0.0, error_pause=1.0)  # the receive itself long-polls
        self.sqs = sqs
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self.settle_seconds = settle_seconds
        self.drained = 0

    def pause_after(self, result: object) -> float:
        return 0.0 if result == BATCH else self.settle_seconds

    def step(self) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=self.wait_seconds
        ).get("Messages", [])
        if messages:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        self.drained += len(messages)
        return len(messages)

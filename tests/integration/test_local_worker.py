"""The local worker's batching matches the event source mapping's window (serverless.yml
ingestBatchWindowSeconds): with 0, what one poll returns is handed over at once; with a window, the
worker waits for more until the batch is full or the window has passed."""

from __future__ import annotations

import threading

import boto3
from moto import mock_aws

from archive.local.worker import IngestWorker


def worker_with(sqs, url: str, window: float, batches: list[list[str]]) -> IngestWorker:
    def handler(event: dict, context: object) -> dict:
        batches.append([r["body"] for r in event["Records"]])
        return {"batchItemFailures": []}

    return IngestWorker(sqs, url, handler, region="us-east-1", wait_seconds=1, batch_window_seconds=window)


def test_without_a_window_a_lone_message_is_handed_over_alone():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        batches: list[list[str]] = []
        worker = worker_with(sqs, url, 0, batches)
        sqs.send_message(QueueUrl=url, MessageBody="first")
        later = threading.Timer(0.3, lambda: sqs.send_message(QueueUrl=url, MessageBody="second"))
        later.start()
        worker.poll_once()
        later.join()
        worker.poll_once()
        assert batches == [["first"], ["second"]]


def test_a_window_gathers_what_arrives_within_it_into_one_batch():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        batches: list[list[str]] = []
        worker = worker_with(sqs, url, 2, batches)
        sqs.send_message(QueueUrl=url, MessageBody="first")
        later = threading.Timer(0.3, lambda: sqs.send_message(QueueUrl=url, MessageBody="second"))
        later.start()
        worker.poll_once()
        later.join()
        assert batches == [["first", "second"]]

"""Datastreamer messages (docs/contracts.md §6) on moto's SQS; outages are counted, never raised."""

from __future__ import annotations

import json

import pytest

from archive import aws
from archive.ingest import datastream
from archive.ingest.datastream import Notification, notify

BASE = "sro-kb001ms-20220629-00010442"


def receive_all(queue_url: str) -> list[dict]:
    sqs = aws.client("sqs")
    bodies: list[dict] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_a_data_exposure_message_has_the_exact_body(aws_stack):
    assert notify([Notification("data", BASE, "sro")]) == datastream.NotifyResult(sent=1, failed=0)
    assert receive_all(aws_stack.datastream_queue_url) == [
        {"topic": "imagedata", "site": "sro", "data": {"s3_directory": "data", "base_filename": BASE, "site": "sro"}}
    ]


def test_an_info_image_message_carries_its_channel_at_the_top_level(aws_stack):
    notify([Notification("info-images", BASE, "sro", channel=2)])
    assert receive_all(aws_stack.datastream_queue_url) == [
        {
            "topic": "imagedata",
            "site": "sro",
            "data": {"s3_directory": "info-images", "base_filename": BASE, "site": "sro"},
            "channel": 2,
        }
    ]


def test_one_message_per_exposure_per_batch(aws_stack):
    result = notify(
        [Notification("data", BASE, "sro")] * 5
        + [Notification("allsky", BASE, "sro"), Notification("data", BASE.replace("sro", "saf"), "saf")]
    )
    assert result == datastream.NotifyResult(sent=3, failed=0)
    bodies = receive_all(aws_stack.datastream_queue_url)
    assert sorted((b["data"]["s3_directory"], b["site"]) for b in bodies) == [
        ("allsky", "sro"), ("data", "saf"), ("data", "sro")
    ]


def test_more_than_ten_exposures_are_all_sent(aws_stack):
    notifications = [Notification("data", f"sro-kb001ms-20220629-{i:08d}", "sro") for i in range(25)]
    assert notify(notifications) == datastream.NotifyResult(sent=25, failed=0)
    bodies = receive_all(aws_stack.datastream_queue_url)
    assert sorted(b["data"]["base_filename"] for b in bodies) == [n.base_filename for n in notifications]


def test_nothing_to_send_sends_nothing(aws_stack):
    assert notify([]) == datastream.NotifyResult(0, 0)
    assert receive_all(aws_stack.datastream_queue_url) == []


def test_the_queue_url_setting_wins_over_the_name(aws_stack, settings_env):
    other = aws.client("sqs").create_queue(QueueName="elsewhere")["QueueUrl"]
    settings_env(DATASTREAM_QUEUE_URL=other)
    notify([Notification("data", BASE, "sro")])
    assert len(receive_all(other)) == 1
    assert receive_all(aws_stack.datastream_queue_url) == []


def test_a_missing_queue_does_not_raise_and_counts_every_message_as_failed(aws_stack, settings_env, caplog, capsys):
    settings_env(DATASTREAM_QUEUE_NAME="no-such-queue")
    result = notify([Notification("data", f"sro-kb001ms-20220629-{i:08d}", "sro") for i in range(3)])
    assert result == datastream.NotifyResult(sent=0, failed=3)
    assert "datastream queue unavailable" in caplog.text
    metric = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "DatastreamFailures" in line]
    assert metric and metric[0]["DatastreamFailures"] == [3.0]  # CloudWatch embedded metric format


@pytest.mark.parametrize("count", [1, 12])
def test_a_send_that_fails_does_not_raise_and_is_counted(aws_stack, settings_env, caplog, count):
    gone = aws.client("sqs").create_queue(QueueName="deleted-soon")["QueueUrl"]
    aws.client("sqs").delete_queue(QueueUrl=gone)
    settings_env(DATASTREAM_QUEUE_URL=gone)
    notifications = [Notification("data", f"sro-kb001ms-20220629-{i:08d}", "sro") for i in range(count)]
    assert notify(notifications) == datastream.NotifyResult(sent=0, failed=count)
    assert "datastream send failed" in caplog.text

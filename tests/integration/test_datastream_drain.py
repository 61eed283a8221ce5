"""`serve --drain-datastream`: the local stand-in for the datastreamer empties the datastream queue."""

from __future__ import annotations

import json

from archive import aws
from archive.local.drain import DatastreamDrain


def test_the_drain_receives_and_deletes_every_datastream_message(aws_stack):
    sqs, url = aws.client("sqs"), aws_stack.datastream_queue_url
    for n in range(23):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"topic": "imagedata", "n": n}))
    drain = DatastreamDrain(sqs, url, wait_seconds=0)

    while drain.step():
        pass

    assert drain.drained == 23
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_a_partial_batch_lets_the_queue_fill_before_the_next_receive_and_a_full_one_does_not(aws_stack):
    sqs, url = aws.client("sqs"), aws_stack.datastream_queue_url
    for n in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"topic": "imagedata", "n": n}))
    drain = DatastreamDrain(sqs, url, wait_seconds=0, settle_seconds=0.5)

    first = drain.step()
    after_first = drain.pause_after(first)
    second = drain.step()

    assert (first, after_first) == (10, 0.0)
    assert (second, drain.pause_after(second)) == (2, 0.5)

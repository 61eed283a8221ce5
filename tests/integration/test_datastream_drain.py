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

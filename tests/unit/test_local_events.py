"""The event shapes the local stack fabricates are the ones our handlers accept from AWS."""

from __future__ import annotations

import datetime as dt
import json

from archive.local.events import (
    TTL_IDENTITY,
    LambdaContext,
    failed_message_ids,
    s3_object_created_event,
    sqs_event,
    ttl_remove_record,
    ttl_value,
)
from archive.local.sweeper import FIVE_YEARS_S, is_expired
from archive.local.worker import keys_in_body
from handlers import expire
from handlers.ingest import is_sqs_batch, uploads_in

MOMENT = dt.datetime(2026, 3, 4, 5, 6, 7, 890_000)


def received(message_id: str, body: str, count: int = 1) -> dict:
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"rh-{message_id}",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": str(count), "SentTimestamp": "1700000000000"},
    }


def test_sqs_event_is_recognised_as_a_batch_and_keeps_the_receive_count():
    body = json.dumps(s3_object_created_event("b", "data/x y+z.txt", 3, MOMENT, "us-east-1"))
    event = sqs_event([received("m1", body, count=3)], "arn:aws:sqs:us-east-1:1:q", "us-east-1")

    record = event["Records"][0]
    assert is_sqs_batch(event)
    assert record["attributes"]["ApproximateReceiveCount"] == "3"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:1:q"
    assert record["messageId"] == "m1" and record["receiptHandle"] == "rh-m1"
    assert [u.key for u in uploads_in(record["body"])] == ["data/x y+z.txt"]


def test_s3_event_round_trips_key_size_and_time_through_the_handlers_decoder():
    event = s3_object_created_event("bucket", "data/odd name+plus.txt", 1234, MOMENT.replace(tzinfo=dt.UTC), "r")

    (upload,) = uploads_in(event)
    assert (upload.bucket, upload.key, upload.size_bytes) == ("bucket", "data/odd name+plus.txt", 1234)
    assert upload.event_time == MOMENT


def test_failed_message_ids_reads_partial_batch_responses_only():
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}) == {"a", "b"}
    assert failed_message_ids({"batchItemFailures": []}) == set()
    assert failed_message_ids(None) == set()
    assert failed_message_ids({"uploads": 3}) == set()


def test_ttl_remove_record_is_what_the_expire_handler_treats_as_a_ttl_deletion():
    image = {"pk": {"S": "tst-cam-20260101-00000001"}, "s3_directory": {"S": "data"},
             "expiration_timestamp_s": {"N": "1700000000"}}

    record = ttl_remove_record(image, ("pk",), "arn:stream", "us-east-1", "4200", MOMENT)

    assert expire.is_ttl_removal(record)
    assert record["userIdentity"] == TTL_IDENTITY
    assert record["dynamodb"]["Keys"] == {"pk": image["pk"]}
    assert record["dynamodb"]["SequenceNumber"] == "4200"
    assert "NewImage" not in record["dynamodb"]
    assert expire.old_image(record) == {"pk": "tst-cam-20260101-00000001", "s3_directory": "data",
                                        "expiration_timestamp_s": 1700000000}


def test_ttl_value_accepts_numbers_only():
    assert ttl_value({"t": {"N": "17.9"}}, "t") == 17
    assert ttl_value({"t": {"S": "17"}}, "t") is None
    assert ttl_value({}, "t") is None


def test_items_expire_only_when_past_and_not_older_than_five_years():
    now = 2_000_000_000
    assert is_expired(now - 1, now)
    assert not is_expired(now, now)
    assert not is_expired(now + 10, now)
    assert not is_expired(now - FIVE_YEARS_S - 1, now)
    assert not is_expired(None, now)


def test_keys_in_body_decodes_moto_encoded_keys_and_ignores_test_events():
    event = s3_object_created_event("b", "data/a b.txt", 3, MOMENT, "us-east-1")
    event["Records"][0]["s3"]["object"]["key"] = "data%2Fa+b.txt"  # moto encodes the `/` too
    assert keys_in_body(json.dumps(event)) == ("data/a b.txt",)
    assert keys_in_body(json.dumps({"Event": "s3:TestEvent"})) == ()
    assert keys_in_body("not json") == ()


def test_lambda_context_has_what_powertools_reads():
    context = LambdaContext(function_name="f")
    assert context.aws_request_id and context.get_remaining_time_in_millis() > 0

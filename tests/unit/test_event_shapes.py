import json

import pytest

from handlers.ingest import EventError, is_sqs_batch, uploads_in
from tests.samples import s3_record, sqs_event

KEY = "data/sro-kb001ms-20220629-00010442-EX10.jpg"


def test_direct_s3_event_yields_every_record():
    event = {"Records": [s3_record("b", KEY, 10), s3_record("b", KEY.replace("EX10", "EX11"), 5)]}
    uploads = uploads_in(event)
    assert [u.key for u in uploads] == [KEY, KEY.replace("EX10", "EX11")]
    assert uploads[0].size_bytes == 10 and uploads[0].bucket == "b"
    assert uploads[0].event_time.isoformat() == "2022-06-29T04:00:00"


def test_moto_style_fully_encoded_key_is_decoded():
    record = s3_record("b", KEY)
    assert record["s3"]["object"]["key"].startswith("data%2F")
    assert uploads_in({"Records": [record]})[0].key == KEY


def test_sqs_wrapped_event_and_test_event():
    event = sqs_event({"Records": [s3_record("b", KEY)]}, {"Event": "s3:TestEvent", "Bucket": "b"})
    assert is_sqs_batch(event)
    assert [u.key for u in uploads_in(event)] == [KEY]


def test_sns_wrapped_event_direct_and_inside_sqs():
    s3_event = {"Records": [s3_record("b", KEY)]}
    sns = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(s3_event)}}]}
    assert [u.key for u in uploads_in(sns)] == [KEY]
    envelope = {"Type": "Notification", "Message": json.dumps(s3_event)}
    assert [u.key for u in uploads_in(sqs_event(envelope))] == [KEY]


def test_eventbridge_object_created():
    event = {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "time": "2022-06-29T04:00:00Z",
        "detail": {"bucket": {"name": "b"}, "object": {"key": KEY, "size": 42}},
    }
    (upload,) = uploads_in(event)
    assert (upload.bucket, upload.key, upload.size_bytes) == ("b", KEY, 42)


def test_object_removed_records_are_not_uploads():
    record = s3_record("b", KEY)
    record["eventName"] = "ObjectRemoved:Delete"
    assert uploads_in({"Records": [record]}) == []


@pytest.mark.parametrize("body", ["not json", "[]", json.dumps({"hello": 1}), json.dumps({"Records": [{}]})])
def test_unknown_shapes_raise_event_error(body):
    with pytest.raises(EventError):
        uploads_in(body)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r["s3"]["object"].update(size="lots"),
        lambda r: r["s3"]["object"].update(key=7),
        lambda r: r["s3"].update(bucket="not-a-dict"),
        lambda r: r.update(s3=None),
    ],
)
def test_malformed_record_fields_are_event_errors_not_crashes(mutate):
    record = s3_record("b", KEY)
    mutate(record)
    with pytest.raises(EventError):
        uploads_in({"Records": [record]})


def test_sns_record_without_a_message_is_an_event_error():
    with pytest.raises(EventError):
        uploads_in({"Records": [{"EventSource": "aws:sns", "Sns": "oops"}]})

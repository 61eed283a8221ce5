"""Everything besides the `images` row, through the real ingest handler: the upload log, the info-image
channels, the expiry schedule and the datastream messages (docs/contracts.md §3-6).

moto for S3/DynamoDB/SQS, a real PostgreSQL; events are S3 notifications wrapped in SQS, as in AWS.
"""

from __future__ import annotations

import json
import socket

import pytest
from boto3.dynamodb.types import TypeDeserializer

import db
from archive import aws
from archive.database import database_url, get_engine
from archive.settings import get_settings
from handlers.ingest import handler
from tests import samples
from tests.samples import sqs_event, sqs_event_for

BASE = samples.BASE
EVENT_TIME_S = 1656475200  # samples.s3_record's eventTime, 2022-06-29T04:00:00Z


def items(table: str) -> list[dict]:
    des = TypeDeserializer()
    raw = aws.client("dynamodb").scan(TableName=table)["Items"]
    return [{k: des.deserialize(v) for k, v in item.items()} for item in raw]


def log_items() -> list[dict]:
    return items(get_settings().uploads_log_table)


def log_item(key: str) -> dict:
    [item] = [i for i in log_items() if i["filename"] == key]
    return item


def datastream_bodies(queue_url: str) -> list[dict]:
    sqs = aws.client("sqs")
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def put(s3, bucket: str, key: str, body: bytes) -> tuple[str, int]:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key, len(body)


def deliver(bucket: str, *keys_and_sizes: tuple[str, int]) -> dict:
    return handler(sqs_event_for(bucket, list(keys_and_sizes)), None)


def row(base: str) -> dict | None:
    with get_engine().connect() as conn:
        return db.get_row(conn, base)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def stack(database, aws_stack, s3, bucket):
    return s3, bucket, aws_stack.datastream_queue_url


# --- the upload log --------------------------------------------------------------------------


def test_an_ingested_file_is_logged_with_the_contract_fields(stack):
    s3, bucket, _ = stack
    key, size = put(s3, bucket, f"data/{BASE}-EX00.txt", samples.header_text())
    assert deliver(bucket, (key, size)) == {"batchItemFailures": []}
    item = log_item(key)
    assert item["site"] == "sro"
    assert item["filename"] == key
    assert item["size_bytes"] == size
    assert item["upload_timestamp_s"] == EVENT_TIME_S
    assert item["expire_timestamp_s"] == item["processed_timestamp_s"] + 48 * 3600  # from the write, not the event
    assert item["status"] == "ingested"
    assert item["reason"]


@pytest.mark.parametrize(
    "key",
    [
        "data/not-a-valid-name.jpg",
        "data/sro-kb001ms-20220231-00010442-EX10.jpg",  # no such date
        "data/sro-kb001ms-20220629-00010442-EX10.png",
        "data/a-very-long-instrument-name-x-20220629-00010442-EX10.jpg",  # base filename over 29
    ],
)
def test_a_name_that_does_not_parse_is_logged_rejected_under_unknown_site(stack, key):
    s3, bucket, queue = stack
    assert deliver(bucket, put(s3, bucket, key, b"x")) == {"batchItemFailures": []}
    item = log_item(key)
    assert (item["site"], item["status"]) == ("unknown_site", "rejected")
    assert item["reason"]
    assert datastream_bodies(queue) == []


@pytest.mark.parametrize("suffix", ["EX12.jpg", "EX05.fits", "EX02.fits.bz2"])
def test_files_with_no_effect_are_logged_ignored_and_not_announced(stack, suffix):
    s3, bucket, queue = stack
    key = f"data/{BASE}-{suffix}"
    deliver(bucket, put(s3, bucket, key, b"x"))
    item = log_item(key)
    assert (item["site"], item["status"]) == ("sro", "ignored")
    assert row(BASE) is None
    assert datastream_bodies(queue) == []


def test_twenty_uploads_with_the_same_event_time_give_twenty_log_items(stack):
    s3, bucket, _ = stack
    files = [put(s3, bucket, f"data/{samples.base_for(i)}-EX12.jpg", b"x") for i in range(20)]
    deliver(bucket, *files)
    logged = log_items()
    assert len(logged) == 20
    assert {i["upload_timestamp_s"] for i in logged} == {EVENT_TIME_S}


# --- datastream messages ---------------------------------------------------------------------


def test_a_whole_exposure_in_one_batch_is_announced_once_after_the_row_exists(stack):
    s3, bucket, queue = stack
    files = [put(s3, bucket, f"data/{name}", body) for name, body in samples.exposure_files().items()]
    assert deliver(bucket, *files) == {"batchItemFailures": []}
    assert row(BASE)["jpg_medium_exists"]
    assert datastream_bodies(queue) == [
        {"topic": "imagedata", "site": "sro", "data": {"s3_directory": "data", "base_filename": BASE, "site": "sro"}}
    ]


def test_no_message_when_the_database_write_failed(stack, settings_env):
    s3, bucket, queue = stack
    files = [put(s3, bucket, f"data/{BASE}-EX00.txt", samples.header_text()),
             put(s3, bucket, f"data/{BASE}-EX10.jpg", samples.jpeg_bytes())]
    good_url = database_url()
    settings_env(DATABASE_URL=f"postgresql+psycopg2://nobody@127.0.0.1:{closed_port()}/none")
    db.dispose_engines()
    try:
        response = deliver(bucket, *files)
    finally:
        settings_env(DATABASE_URL=good_url)
        db.dispose_engines()
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}, {"itemIdentifier": "msg-1"}]}
    assert datastream_bodies(queue) == []
    assert {i["status"] for i in log_items()} == {"failed"}
    assert all("will retry" in i["reason"] for i in log_items())


def test_only_the_messages_that_succeeded_are_announced(stack):
    s3, bucket, queue = stack
    good = put(s3, bucket, f"data/{BASE}-EX00.txt", samples.header_text())
    bad = put(s3, bucket, "data/not-a-valid-name.jpg", b"x")
    info = put(s3, bucket, f"info-images/{samples.base_for(5)}-EX10.jpg", samples.jpeg_bytes())  # no channel
    deliver(bucket, good, bad, info)
    bodies = datastream_bodies(queue)
    assert [b["data"]["base_filename"] for b in bodies] == [BASE]


def test_a_datastream_outage_does_not_fail_ingestion(stack, settings_env, caplog):
    s3, bucket, _ = stack
    settings_env(DATASTREAM_QUEUE_NAME="no-such-queue")
    assert deliver(bucket, put(s3, bucket, f"data/{BASE}-EX00.txt", samples.header_text())) == {
        "batchItemFailures": []
    }
    assert row(BASE) is not None
    assert log_items()[0]["status"] == "ingested"
    assert "datastream notifications lost" in caplog.text


# --- info images -----------------------------------------------------------------------------


def set_metadata(**channels: str) -> None:
    aws.client("dynamodb").put_item(
        TableName=get_settings().info_images_table,
        Item={"pk": {"S": "sro#metadata"}, **{k: {"S": v} for k, v in channels.items()}},
    )


def channel_item(channel: int) -> dict | None:
    found = [i for i in items(get_settings().info_images_table) if i["pk"] == f"sro#{channel}"]
    return found[0] if found else None


def test_an_info_image_updates_its_channel_and_is_announced_with_it(stack):
    s3, bucket, queue = stack
    info_base = samples.base_for(7)
    set_metadata(channel3=info_base)
    files = [put(s3, bucket, f"info-images/{info_base}-EX10.jpg", samples.jpeg_bytes()),
             put(s3, bucket, f"info-images/{info_base}-EX00.txt", samples.header_text())]
    assert deliver(bucket, *files) == {"batchItemFailures": []}
    item = channel_item(3)
    assert item["base_filename"] == info_base
    assert item["jpg_10_file_path"] == f"info-images/{info_base}-EX10.jpg" and item["jpg_medium_exists"]
    assert item["jpg_11_file_path"] == f"info-images/{info_base}-EX11.jpg" and item["jpg_small_exists"]
    assert item["header"]["FILTER"] == "ip"
    assert item["expiration_timestamp"] == EVENT_TIME_S + 48 * 3600
    assert row(info_base) is None  # info images never touch the images table
    assert datastream_bodies(queue) == [{
        "topic": "imagedata", "site": "sro", "channel": 3,
        "data": {"s3_directory": "info-images", "base_filename": info_base, "site": "sro"},
    }]
    assert {i["status"] for i in log_items()} == {"ingested"}


def test_an_info_image_without_a_channel_is_rejected_with_the_reason(stack):
    s3, bucket, queue = stack
    key = f"info-images/{BASE}-EX10.jpg"
    assert deliver(bucket, put(s3, bucket, key, samples.jpeg_bytes())) == {"batchItemFailures": []}
    item = log_item(key)
    assert (item["site"], item["status"]) == ("sro", "rejected")
    assert "no info-image channel" in item["reason"]
    assert items(get_settings().info_images_table) == []
    assert datastream_bodies(queue) == []


# --- expiry schedule -------------------------------------------------------------------------


@pytest.mark.parametrize(("data_type", "lifespan"), [("EP", 7 * 86400), ("EF", 86400), ("EX", None)])
def test_expiring_exposures_are_scheduled_from_their_first_file(stack, data_type, lifespan):
    s3, bucket, _ = stack
    files = [put(s3, bucket, f"data/{BASE}-{data_type}00.txt", samples.header_text()),
             put(s3, bucket, f"data/{BASE}-{data_type}10.jpg", samples.jpeg_bytes())]
    deliver(bucket, files[0])
    handler(sqs_event({"Records": [samples.s3_record(bucket, files[1][0], files[1][1],
                                                     event_time="2022-07-01T00:00:00.000Z")]}), None)
    tracked = items(get_settings().expiration_table)
    if lifespan is None:
        assert tracked == []
    else:
        assert tracked == [{"pk": BASE, "s3_directory": "data", "expiration_timestamp_s": EVENT_TIME_S + lifespan}]

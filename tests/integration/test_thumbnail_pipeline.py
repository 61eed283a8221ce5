"""Thumbnails through the real ingest handler: SQS-wrapped S3 events, moto, a real PostgreSQL."""

from __future__ import annotations

import io

import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError
from PIL import Image

import db
from archive import aws
from archive.database import get_engine
from archive.settings import get_settings
from handlers.ingest import handler
from tests import samples
from tests.samples import sqs_event_for

BASE = samples.BASE
MEDIUM = f"data/{BASE}-EX10.jpg"
SMALL = f"data/{BASE}-EX11.jpg"


@pytest.fixture
def stack(database, aws_stack, s3, bucket):
    return s3, bucket


def put(s3, bucket: str, key: str, body: bytes) -> tuple[str, int]:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key, len(body)


def deliver(bucket: str, *keys_and_sizes: tuple[str, int]) -> dict:
    return handler(sqs_event_for(bucket, list(keys_and_sizes)), None)


def row(base: str = BASE) -> dict | None:
    with get_engine().connect() as conn:
        return db.get_row(conn, base)


def log_item(key: str) -> dict:
    """The latest upload-log item of `key` (a redelivery adds one more)."""
    items = aws.client("dynamodb").scan(TableName=get_settings().uploads_log_table)["Items"]
    mine = [{k: next(iter(v.values())) for k, v in item.items()} for item in items if item["filename"]["S"] == key]
    assert mine, f"no upload-log item for {key}"
    return max(mine, key=lambda item: item["upload_id"])


def keys(s3, bucket: str, prefix: str) -> set[str]:
    return {obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}


def jpeg_of(s3, bucket: str, key: str) -> Image.Image:
    obj = s3.get_object(Bucket=bucket, Key=key)
    assert obj["ContentType"] == "image/jpeg"
    image = Image.open(io.BytesIO(obj["Body"].read()))
    assert image.format == "JPEG"
    image.load()
    return image


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 200)).save(out, "PNG")
    return out.getvalue()


BAD_MEDIUMS = {
    "truncated": (samples.jpeg_bytes((768, 512))[:4000], "failed", "truncated"),
    "png renamed": (png_bytes(), "rejected", "not a JPEG"),
}


# --------------------------------------------------------------------------------------------------
# data/


def test_medium_jpg_gets_its_thumbnail_and_the_row_shows_it(stack):
    s3, bucket = stack
    assert deliver(bucket, put(s3, bucket, MEDIUM, samples.jpeg_bytes((768, 512)))) == {"batchItemFailures": []}
    assert jpeg_of(s3, bucket, SMALL).size == (192, 128)
    r = row()
    assert r["jpg_medium_exists"] and r["jpg_small_exists"]
    assert not r["fits_01_exists"] and not r["fits_10_exists"]
    assert log_item(MEDIUM)["status"] == "ingested"


def test_reduction_13_medium_is_thumbnailed_too(stack):
    s3, bucket = stack
    deliver(bucket, put(s3, bucket, f"data/{BASE}-EX13.jpg", samples.jpeg_bytes((512, 768))))
    assert jpeg_of(s3, bucket, SMALL).size == (85, 128)
    assert row()["jpg_small_exists"]


def test_redelivered_medium_rewrites_an_identical_thumbnail_and_the_same_row(stack):
    s3, bucket = stack
    medium = put(s3, bucket, MEDIUM, samples.jpeg_bytes((768, 512), mode="RGB"))
    deliver(bucket, medium)
    first, first_row = s3.get_object(Bucket=bucket, Key=SMALL)["Body"].read(), row()
    deliver(bucket, medium, medium)
    assert s3.get_object(Bucket=bucket, Key=SMALL)["Body"].read() == first
    assert row() == first_row


def test_uploaded_small_jpg_is_recorded_and_never_thumbnailed_again(stack):
    s3, bucket = stack
    body = samples.jpeg_bytes((400, 300))  # taller than 128: thumbnailing it would shrink it
    assert deliver(bucket, put(s3, bucket, SMALL, body)) == {"batchItemFailures": []}
    assert keys(s3, bucket, "data/") == {SMALL}
    assert s3.get_object(Bucket=bucket, Key=SMALL)["Body"].read() == body
    r = row()
    assert r["jpg_small_exists"] and not r["jpg_medium_exists"]


@pytest.mark.parametrize("case", BAD_MEDIUMS)
def test_bad_medium_is_logged_with_a_reason_keeps_the_other_flags_and_is_not_retried(stack, case):
    s3, bucket = stack
    body, status, reason = BAD_MEDIUMS[case]
    header = put(s3, bucket, f"data/{BASE}-EX00.txt", samples.header_text())
    fits = put(s3, bucket, f"data/{BASE}-EX10.fits", samples.fits_bytes())
    assert deliver(bucket, header, fits) == {"batchItemFailures": []}

    assert deliver(bucket, put(s3, bucket, MEDIUM, body)) == {"batchItemFailures": []}
    item = log_item(MEDIUM)
    assert item["status"] == status
    assert "thumbnail" in item["reason"] and reason in item["reason"]
    assert SMALL not in keys(s3, bucket, "data/")
    r = row()
    assert r["fits_10_exists"] and r["filter_used"] == "ip"  # what was there stays
    assert not r["jpg_small_exists"]


def test_transient_s3_error_while_thumbnailing_is_retried_and_then_completes(stack):
    s3, bucket = stack
    medium = put(s3, bucket, MEDIUM, samples.jpeg_bytes((768, 512)))

    def slow_down(**_: object) -> None:
        error = {"Error": {"Code": "SlowDown", "Message": "Reduce your request rate."},
                 "ResponseMetadata": {"HTTPStatusCode": 503}}
        raise ClientError(error, "GetObject")

    s3.meta.events.register("before-call.s3.GetObject", slow_down)  # the client the handler uses
    try:
        assert deliver(bucket, medium) == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    finally:
        s3.meta.events.unregister("before-call.s3.GetObject", slow_down)
    assert log_item(MEDIUM)["status"] == "failed" and "will retry" in log_item(MEDIUM)["reason"]
    assert SMALL not in keys(s3, bucket, "data/")

    assert deliver(bucket, medium) == {"batchItemFailures": []}
    assert jpeg_of(s3, bucket, SMALL).height == 128
    assert row()["jpg_small_exists"]


# --------------------------------------------------------------------------------------------------
# info-images/ and allsky/


def set_channels(**channels: str) -> None:
    item = {"pk": {"S": "sro#metadata"}, **{name: {"S": base} for name, base in channels.items()}}
    aws.client("dynamodb").put_item(TableName=get_settings().info_images_table, Item=item)


def channel_item(channel: int) -> dict | None:
    raw = aws.client("dynamodb").get_item(
        TableName=get_settings().info_images_table, Key={"pk": {"S": f"sro#{channel}"}}, ConsistentRead=True
    ).get("Item")
    deserialize = TypeDeserializer().deserialize
    return {k: deserialize(v) for k, v in raw.items()} if raw else None


def test_info_image_medium_gets_its_thumbnail_and_the_channel_shows_it(stack):
    s3, bucket = stack
    set_channels(channel1=samples.base_for(99), channel2=BASE)
    medium, small = f"info-images/{BASE}-EX10.jpg", f"info-images/{BASE}-EX11.jpg"
    assert deliver(bucket, put(s3, bucket, medium, samples.jpeg_bytes((768, 512)))) == {"batchItemFailures": []}
    assert jpeg_of(s3, bucket, small).size == (192, 128)
    item = channel_item(2)
    assert item["base_filename"] == BASE
    assert item["jpg_medium_exists"] is True and item["jpg_10_file_path"] == medium
    assert item["jpg_small_exists"] is True and item["jpg_11_file_path"] == small
    assert channel_item(1) is None
    assert row() is None  # info images never touch the images table


@pytest.mark.parametrize("case", BAD_MEDIUMS)
def test_bad_info_image_medium_keeps_the_channel_and_is_not_retried(stack, case):
    s3, bucket = stack
    body, status, reason = BAD_MEDIUMS[case]
    set_channels(channel3=BASE)
    fits = put(s3, bucket, f"info-images/{BASE}-EX10.fits", samples.fits_bytes())
    assert deliver(bucket, fits) == {"batchItemFailures": []}
    medium = put(s3, bucket, f"info-images/{BASE}-EX10.jpg", body)
    assert deliver(bucket, medium) == {"batchItemFailures": []}
    item = log_item(medium[0])
    assert item["status"] == status and reason in item["reason"]
    assert f"info-images/{BASE}-EX11.jpg" not in keys(s3, bucket, "info-images/")
    channel = channel_item(3)
    assert channel["fits_10_exists"] is True and channel["base_filename"] == BASE
    assert "jpg_small_exists" not in channel


def test_allsky_medium_gets_its_thumbnail(stack):
    s3, bucket = stack
    medium = put(s3, bucket, f"allsky/{BASE}-EX10.jpg", samples.jpeg_bytes((768, 768)))
    assert deliver(bucket, medium) == {"batchItemFailures": []}
    assert jpeg_of(s3, bucket, f"allsky/{BASE}-EX11.jpg").size == (128, 128)
    assert log_item(medium[0])["status"] == "ingested"

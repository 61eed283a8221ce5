"""write_thumbnail against S3 (moto): what it puts, with which headers and settings, and what it refuses."""

from __future__ import annotations

import io

import pytest
from botocore.exceptions import ClientError
from PIL import Image

from archive import aws
from archive.formats.jpeg import JpegError
from archive.ingest.thumbnails import make_thumbnail, write_thumbnail
from bench.bench_thumbnails import sky_jpeg

MEDIUM_KEY = "data/sro-kb001ms-20220629-00010442-EX10.jpg"
SMALL_KEY = "data/sro-kb001ms-20220629-00010442-EX11.jpg"


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    image.load()
    return image



def test_write_thumbnail_puts_a_jpeg_with_content_type_and_cache_control(s3, bucket):
    s3.put_object(Bucket=bucket, Key=MEDIUM_KEY, Body=sky_jpeg(1536, 1024, "RGB"))
    size = write_thumbnail(bucket, MEDIUM_KEY, SMALL_KEY)
    obj = s3.get_object(Bucket=bucket, Key=SMALL_KEY)
    body = obj["Body"].read()
    assert obj["ContentType"] == "image/jpeg"
    assert obj["CacheControl"] == "public, max-age=31536000, immutable"
    assert size == len(body) == obj["ContentLength"]
    assert opened(body).size == (192, 128)


def test_write_thumbnail_uses_height_quality_and_cache_control_from_settings(s3, bucket, settings_env):
    s3.put_object(Bucket=bucket, Key=MEDIUM_KEY, Body=sky_jpeg(1536, 1024, "RGB"))
    settings_env(THUMBNAIL_HEIGHT_PX="64", THUMBNAIL_QUALITY="40", THUMBNAIL_CACHE_CONTROL="max-age=60")
    s3 = aws.client("s3")  # rebuilt with the new settings
    write_thumbnail(bucket, MEDIUM_KEY, SMALL_KEY)
    obj = s3.get_object(Bucket=bucket, Key=SMALL_KEY)
    body = obj["Body"].read()
    assert obj["CacheControl"] == "max-age=60"
    assert opened(body).size == (96, 64)
    assert body == make_thumbnail(sky_jpeg(1536, 1024, "RGB"), 64, 40)


def test_write_thumbnail_of_corrupt_medium_raises_and_writes_nothing(s3, bucket):
    s3.put_object(Bucket=bucket, Key=MEDIUM_KEY, Body=b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(JpegError):
        write_thumbnail(bucket, MEDIUM_KEY, SMALL_KEY)
    assert s3.list_objects_v2(Bucket=bucket, Prefix=SMALL_KEY).get("KeyCount") == 0


def test_write_thumbnail_lets_a_missing_medium_raise_no_such_key(s3, bucket):
    with pytest.raises(ClientError) as caught:
        write_thumbnail(bucket, MEDIUM_KEY, SMALL_KEY)
    assert caught.value.response["Error"]["Code"] == "NoSuchKey"


def test_write_thumbnail_refuses_a_medium_over_the_byte_limit_before_reading_it(s3, bucket, settings_env):
    body = sky_jpeg(1536, 1024, "RGB")
    s3.put_object(Bucket=bucket, Key=MEDIUM_KEY, Body=body)
    settings_env(THUMBNAIL_MAX_BYTES=str(len(body) - 1))
    with pytest.raises(JpegError) as caught:
        write_thumbnail(bucket, MEDIUM_KEY, SMALL_KEY)
    assert caught.value.status == "failed" and "byte limit" in caught.value.reason
    assert aws.client("s3").list_objects_v2(Bucket=bucket, Prefix=SMALL_KEY).get("KeyCount") == 0

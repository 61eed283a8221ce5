"""Thumbnails: the small JPG (reduction `11`) made from a medium JPG (`10`/`13`).

The decoding itself (checked against the pixel and decode-memory limits before any pixel is decoded,
scaled down by libjpeg, orientation applied) is `archive.formats.jpeg`, shared with the image API.
This module adds what ingest needs: the size of a thumbnail, the byte limit on the medium JPG read
from S3 (`THUMBNAIL_MAX_BYTES`, checked before reading), and the check of a thumbnail a site made
itself. The output carries no metadata and is a pure function of the input bytes and the settings, so
a redelivered event rewrites an identical object.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from archive import lazy
from archive.aws import client
from archive.formats.jpeg import JpegError, decode_jpeg, encode_jpeg, fit_size, jpeg_signature_problem
from archive.formats.jpeg_layout import JpegLayoutError, read_layout
from archive.settings import get_settings
from archive.statuses import FAILED

# How much of a site's own thumbnail is read to check that it is a JPEG (thumbnails are ~10 kB).
THUMBNAIL_CHECK_BYTES = 64 * 1024


def thumbnail_size(width: int, height: int, target_height: int) -> tuple[int, int]:
    """Size of the thumbnail of a `width`×`height` image (as displayed): aspect kept, never upscaled.
    `fit_size` with a box as wide as any image, so only the height limits."""
    return fit_size(width, height, max(width, 1) * max(target_height, 1), target_height)


def make_thumbnail(
    data: bytes,
    height: int = 128,
    quality: int = 85,
    *,
    max_pixels: int | None = None,
    max_decode_bytes: int | None = None,
) -> bytes:
    """A JPEG `height` pixels high (or the image's own size if smaller) from JPEG `data`.

    EXIF orientation is applied, the output is L or RGB with no metadata, and the same input always
    gives the same bytes. Raises `JpegError` for anything that is not a decodable JPEG within the
    limits (see `decode_jpeg`).
    """
    if height < 1:
        raise ValueError(f"thumbnail height must be positive, got {height}")
    image = decode_jpeg(
        data, lambda w, h: thumbnail_size(w, h, height), max_pixels=max_pixels, max_decode_bytes=max_decode_bytes
    )
    return encode_jpeg(image, quality)


def write_thumbnail(bucket: str, medium_key: str, thumbnail_key: str) -> int:
    """Write the thumbnail of the medium JPG `medium_key` to `thumbnail_key`; return its size in bytes.

    Height, quality, cache header and pixel limit come from settings.

    Raises:
        JpegError: not a JPEG, or one that cannot be decoded or is too large (permanent).
        botocore errors: S3's, as raised; `archive.failures.classify` tells a missing object
            (permanent) from throttling (retry).
    """

    settings = get_settings()
    s3 = client("s3")
    response = s3.get_object(Bucket=bucket, Key=medium_key)
    size = int(response.get("ContentLength") or 0)
    if size > settings.thumbnail_max_bytes:
        response["Body"].close()
        # Refused before reading: a huge misnamed file must not exhaust the Lambda's memory.
        raise JpegError(
            FAILED, f"medium JPG is {size} bytes, over the {settings.thumbnail_max_bytes}-byte limit"
        )
    body = response["Body"]
    try:
        data = body.read(settings.thumbnail_max_bytes + 1)  # never more than the limit, whatever was declared
    finally:
        body.close()
    if len(data) > settings.thumbnail_max_bytes:
        raise JpegError(FAILED, f"medium JPG is over the {settings.thumbnail_max_bytes}-byte limit")
    thumbnail = make_thumbnail(data, settings.thumbnail_height_px, settings.thumbnail_quality)
    s3.put_object(
        Bucket=bucket,
        Key=thumbnail_key,
        Body=thumbnail,
        ContentType="image/jpeg",
        CacheControl=settings.thumbnail_cache_control,
    )
    return len(thumbnail)


def check_thumbnail(bucket: str, key: str) -> None:
    """Raise JpegError (`failed`) unless the object `key`, a thumbnail a site made itself, is JPEG data.

    Reads at most THUMBNAIL_CHECK_BYTES: an empty object or another format fails; an object read whole
    must also have readable JPEG markers. S3 errors propagate as raised (a missing object included).
    """
    try:
        response = client("s3").get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{THUMBNAIL_CHECK_BYTES - 1}")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "InvalidRange":  # S3's answer for an empty object
            raise
        data, whole = b"", True
    else:
        body = response["Body"]
        try:
            data = body.read(THUMBNAIL_CHECK_BYTES)
        finally:
            body.close()
        total = str(response.get("ContentRange") or "").rpartition("/")[2]
        whole = not total.isdigit() or int(total) <= len(data)
    problem = jpeg_signature_problem(data)
    if problem is not None:
        raise JpegError(FAILED, problem.reason)
    if whole:
        try:
            read_layout(data)
        except JpegLayoutError as exc:
            raise JpegError(FAILED, f"unreadable JPEG header: {exc}") from exc


def rehearse() -> None:
    """The thumbnail of a tiny JPEG made in memory, touching no AWS: Pillow's decoder and encoder are
    first used here, before a SnapStart snapshot (archive/snapstart.py), not on the first upload."""
    make_thumbnail(encode_jpeg(lazy.Image.new("L", (64, 48), 128), 85), 16)

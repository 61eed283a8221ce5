"""Realistic files of one exposure, made the way a site makes them (astropy FITS, Pillow JPEG)."""

from __future__ import annotations

import bz2
import io
import json
from urllib.parse import quote_plus

import numpy as np
from astropy.io import fits
from PIL import Image

BASE = "sro-kb001ms-20220629-00010442"


def base_for(counter: int, site: str = "sro") -> str:
    return f"{site}-kb001ms-20220629-{counter:08d}"


def make_header(**overrides: object) -> fits.Header:
    header = fits.Header()
    cards = {
        "DATE-OBS": "2022-06-29T03:12:45.123",
        "RA": "12:34:56.7",
        "DEC": "-05:30:00",
        "FILTER": "ip",
        "EXPTIME": 30.0,
        "AIRMASS": 1.234,
        "ALTITUDE": 54.3,
        "AZIMUTH": 181.2,
        "USERNAME": "Wayne Rosing",
        "USERID": "google-oauth2|1234",
        "SMARTSTK": "no",
        "SSTKNUM": 3,
        "OBJECT": "M 42",
    }
    cards.update(overrides)
    for key, value in cards.items():
        if value is not None:
            header[key] = value
    return header


def header_text(header: fits.Header | None = None, one_card_per_line: bool = False) -> bytes:
    header = header if header is not None else make_header()
    text = header.tostring(sep="\n" if one_card_per_line else "", endcard=True, padding=False)
    return text.encode()


def fits_bytes(header: fits.Header | None = None, shape: tuple[int, int] = (64, 96)) -> bytes:
    header = header if header is not None else make_header()
    data = (np.random.default_rng(1).normal(1000, 30, shape)).astype(np.float32)
    buf = io.BytesIO()
    fits.PrimaryHDU(data=data, header=header).writeto(buf)
    return buf.getvalue()


def fits_bz2_bytes(header: fits.Header | None = None, shape: tuple[int, int] = (64, 96)) -> bytes:
    return bz2.compress(fits_bytes(header, shape))


def jpeg_bytes(size: tuple[int, int] = (768, 512), mode: str = "L") -> bytes:
    rng = np.random.default_rng(2)
    channels = 3 if mode == "RGB" else 1
    arr = rng.normal(60, 10, (size[1], size[0], channels)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode=mode)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def exposure_files(base: str = BASE, data_type: str = "EX") -> dict[str, bytes]:
    """The five files of one exposure, by filename."""
    return {
        f"{base}-{data_type}00.txt": header_text(),
        f"{base}-{data_type}01.fits.bz2": fits_bz2_bytes(),
        f"{base}-{data_type}10.fits": fits_bytes(),
        f"{base}-{data_type}10.jpg": jpeg_bytes(),
        f"{base}-{data_type}11.jpg": jpeg_bytes((192, 128)),
    }


def s3_record(bucket: str, key: str, size: int = 0, event_time: str = "2022-06-29T04:00:00.000Z") -> dict:
    """One S3 ObjectCreated record as S3 sends it (key URL-encoded)."""

    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": event_time,
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe=""), "size": size, "sequencer": "0A1B2C3D4E5F678901"},
        },
    }


def sqs_event(*bodies: dict | str) -> dict:
    """An SQS batch event whose message bodies are the given S3 events."""
    records = []
    for i, body in enumerate(bodies):
        records.append({
            "messageId": f"msg-{i}",
            "receiptHandle": f"rh-{i}",
            "body": body if isinstance(body, str) else json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1656475200000"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:photonranch-archive-ingest-dev",
            "awsRegion": "us-east-1",
        })
    return {"Records": records}


def sqs_event_for(bucket: str, keys_and_sizes: list[tuple[str, int]]) -> dict:
    return sqs_event(*({"Records": [s3_record(bucket, key, size)]} for key, size in keys_and_sizes))

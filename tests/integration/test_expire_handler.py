"""The expire Lambda fed the stream records DynamoDB sends when an item of the tracker is removed."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from botocore.exceptions import EndpointConnectionError

import db
from archive import aws
from archive.database import database_url, get_engine
from handlers.expire import handler

BASE = "sro-kb001ms-20220629-00010442"
NEIGHBOUR = "sro-kb001ms-20220629-00010443"
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def remove_record(base: str, s3_directory: str = "data", *, ttl: bool = True, sequence: str = "111") -> dict:
    """A REMOVE record as the DynamoDB stream delivers it to Lambda (NEW_AND_OLD_IMAGES)."""
    old_image = {
        "pk": {"S": base},
        "s3_directory": {"S": s3_directory},
        "expiration_timestamp_s": {"N": "1656472665"},
    }
    record = {
        "eventID": "c81e728d9d4c2f636f067f89cc14862c",
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1656472700,
            "Keys": {"pk": {"S": base}},
            "OldImage": old_image,
            "SequenceNumber": sequence,
            "SizeBytes": 112,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/data-expiration-tracker/stream/"
        "2022-06-29T00:00:00.000",
    }
    if ttl:
        record["userIdentity"] = dict(TTL_IDENTITY)
    return record


def insert_record(base: str) -> dict:
    record = remove_record(base, ttl=False)
    record["eventName"] = "INSERT"
    record["dynamodb"]["NewImage"] = record["dynamodb"].pop("OldImage")
    return record


def all_keys(s3, bucket: str) -> set[str]:
    paginator = s3.get_paginator("list_objects_v2")
    return {o["Key"] for page in paginator.paginate(Bucket=bucket) for o in page.get("Contents", [])}


def row_exists(base: str) -> bool:
    with get_engine().connect() as conn:
        return db.get_row(conn, base) is not None


@pytest.fixture
def make_exposures(database, aws_stack, s3, bucket):
    """`count` objects of BASE, three of its neighbour `…-00010443`, and a row for each."""

    def make(count: int = 3):
        keys = [f"data/{BASE}-EP{i:04d}.fits" for i in range(count)] + [
            f"data/{NEIGHBOUR}-EP10.jpg",
            f"data/{NEIGHBOUR}-EP11.jpg",
            f"data/{NEIGHBOUR}-EP00.txt",
        ]
        for key in keys:
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        with get_engine().begin() as conn:
            for base in (BASE, NEIGHBOUR):
                db.mark_file(conn, base_filename=base, site="sro", data_type="EP", flag="jpg_medium_exists",
                             upload_time=dt.datetime(2022, 6, 29))
        return s3, bucket, set(keys)

    return make


def test_a_ttl_removal_deletes_the_exposure_objects_and_row_only(make_exposures):
    s3, bucket, keys = make_exposures(1_500)  # more than one listing page and one delete batch
    assert handler({"Records": [remove_record(BASE)]}, None) == {"batchItemFailures": []}
    assert all_keys(s3, bucket) == {k for k in keys if NEIGHBOUR in k}
    assert not row_exists(BASE)
    assert row_exists(NEIGHBOUR)


def test_a_manual_removal_cancels_the_expiry_and_deletes_nothing(make_exposures, caplog):
    s3, bucket, keys = make_exposures()
    assert handler({"Records": [remove_record(BASE, ttl=False)]}, None) == {"batchItemFailures": []}
    assert all_keys(s3, bucket) == keys
    assert row_exists(BASE)
    assert "expiry cancelled" in caplog.text


def test_a_removal_by_another_service_identity_deletes_nothing(make_exposures):
    s3, bucket, keys = make_exposures()
    record = remove_record(BASE)
    record["userIdentity"] = {"type": "Service", "principalId": "someone.else.amazonaws.com"}
    handler({"Records": [record]}, None)
    assert all_keys(s3, bucket) == keys


def test_inserts_are_not_expiries(make_exposures):
    s3, bucket, keys = make_exposures()
    assert handler({"Records": [insert_record(BASE)]}, None) == {"batchItemFailures": []}
    assert all_keys(s3, bucket) == keys


@pytest.mark.parametrize("bad_base", ["sro-kb001ms-20220629", "sro", "../../etc"])
def test_an_invalid_base_filename_is_logged_deletes_nothing_and_is_not_retried(make_exposures, caplog, bad_base):
    s3, bucket, keys = make_exposures()
    assert handler({"Records": [remove_record(bad_base)]}, None) == {"batchItemFailures": []}
    assert all_keys(s3, bucket) == keys
    assert "invalid expiry record" in caplog.text


def test_a_record_without_its_old_image_deletes_nothing(make_exposures):
    s3, bucket, keys = make_exposures()
    record = remove_record(BASE)
    del record["dynamodb"]["OldImage"]
    assert handler({"Records": [record]}, None) == {"batchItemFailures": []}
    assert all_keys(s3, bucket) == keys


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_database_outage_reports_the_record_for_retry_and_a_retry_completes(make_exposures, settings_env):
    s3, bucket, keys = make_exposures()
    good_url = database_url()
    first = remove_record(NEIGHBOUR, sequence="100")
    second = remove_record(BASE, sequence="200")
    third = remove_record("sro-kb001ms-20220629-00000007", sequence="300")

    settings_env(DATABASE_URL=f"postgresql+psycopg2://nobody@127.0.0.1:{closed_port()}/none")
    db.dispose_engines()
    try:
        response = handler({"Records": [first, second, third]}, None)
    finally:
        settings_env(DATABASE_URL=good_url)
        db.dispose_engines()
    # Every failed record is reported; Lambda retries the stream from the first of them.
    assert response == {"batchItemFailures": [{"itemIdentifier": s} for s in ("100", "200", "300")]}
    assert all_keys(s3, bucket) == keys  # the row goes first: nothing was deleted

    assert handler({"Records": [first, second, third]}, None) == {"batchItemFailures": []}
    assert all_keys(s3, bucket) == set()
    assert not row_exists(BASE) and not row_exists(NEIGHBOUR)


def test_an_s3_outage_reports_the_record_for_retry(make_exposures):
    s3, bucket, keys = make_exposures()
    client = aws.client("s3")

    def outage(**_):
        raise EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")

    client.meta.events.register("before-call.s3.ListObjectsV2", outage)
    try:
        response = handler({"Records": [remove_record(BASE, sequence="42")]}, None)
    finally:
        client.meta.events.unregister("before-call.s3.ListObjectsV2", outage)
    assert response == {"batchItemFailures": [{"itemIdentifier": "42"}]}

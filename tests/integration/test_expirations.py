"""Scheduling and carrying out expiries (docs/contracts.md §5): moto S3/DynamoDB and a real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.stub import Stubber

import db
from archive import aws
from archive.cli import main
from archive.database import get_engine
from archive.formats.filenames import FilenameError, parse_base_filename, parse_filename
from archive.ingest.expirations import ExpiryError, expire_exposure, schedule_expiry
from archive.settings import get_settings

NOW = dt.datetime(2022, 6, 29, 3, 12, 45)
NOW_S = 1656472365
BASE = "sro-kb001ms-20220629-00010442"
NEIGHBOUR = "sro-kb001ms-20220629-00010443"


def tracker_item(base: str) -> dict | None:
    table = get_settings().expiration_table
    raw = aws.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": base}}).get("Item")
    des = TypeDeserializer()
    return {k: des.deserialize(v) for k, v in raw.items()} if raw else None


def name(filename: str):
    return parse_filename(filename)


@pytest.mark.parametrize(("data_type", "lifespan"), [("EP", 7 * 86400), ("EF", 86400)])
def test_expiring_data_types_get_one_tracker_item_field_by_field(aws_stack, data_type, lifespan):
    assert schedule_expiry("data", name(f"{BASE}-{data_type}10.jpg"), NOW) is True
    assert tracker_item(BASE) == {"pk": BASE, "s3_directory": "data", "expiration_timestamp_s": NOW_S + lifespan}
    raw = aws.client("dynamodb").get_item(TableName=get_settings().expiration_table, Key={"pk": {"S": BASE}})
    assert set(raw["Item"]["expiration_timestamp_s"]) == {"N"}  # a TTL attribute must be a number


@pytest.mark.parametrize("data_type", ["EP", "EF"])
def test_site_tst_expires_after_five_minutes(aws_stack, data_type):
    base = "tst-kb001ms-20220629-00000001"
    assert schedule_expiry("data", name(f"{base}-{data_type}00.txt"), NOW)
    assert tracker_item(base)["expiration_timestamp_s"] == NOW_S + 300


@pytest.mark.parametrize("data_type", ["EX", "e", "ep"])
def test_other_data_types_are_not_scheduled(aws_stack, data_type):
    assert schedule_expiry("data", name(f"{BASE}-{data_type}10.jpg"), NOW) is False
    assert tracker_item(BASE) is None


def test_a_second_file_of_the_exposure_does_not_move_its_expiry(aws_stack):
    assert schedule_expiry("data", name(f"{BASE}-EP00.txt"), NOW)
    assert schedule_expiry("data", name(f"{BASE}-EP10.jpg"), NOW + dt.timedelta(days=3)) is False
    assert tracker_item(BASE)["expiration_timestamp_s"] == NOW_S + 7 * 86400


def test_lifespans_come_from_settings(aws_stack, settings_env):
    settings_env(EXPIRING_DATA_TYPES="EX=60", SITE_EXPIRY_SECONDS="")
    assert schedule_expiry("data", name(f"{BASE}-EX10.jpg"), NOW)
    assert tracker_item(BASE)["expiration_timestamp_s"] == NOW_S + 60
    assert schedule_expiry("data", name(f"{NEIGHBOUR}-EP10.jpg"), NOW) is False


# --- carrying out an expiry -------------------------------------------------------------------


def put_objects(s3, bucket: str, keys) -> None:
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")


def all_keys(s3, bucket: str) -> set[str]:
    paginator = s3.get_paginator("list_objects_v2")
    return {o["Key"] for page in paginator.paginate(Bucket=bucket) for o in page.get("Contents", [])}


def add_row(base: str) -> None:
    parsed = parse_base_filename(base)
    with get_engine().begin() as conn:
        db.mark_file(conn, base_filename=base, site=parsed.site, data_type="EP", flag="jpg_medium_exists",
                     upload_time=NOW)


def row_exists(base: str) -> bool:
    with get_engine().connect() as conn:
        return db.get_row(conn, base) is not None


@pytest.fixture
def make_pair(database, aws_stack, s3, bucket):
    """`count` objects of BASE and the objects of a neighbour; both exposures have a row."""

    def make(count: int):
        doomed = [f"data/{BASE}-EP{i:04d}.fits" for i in range(count)]
        survivors = [f"data/{NEIGHBOUR}-EP10.jpg", f"data/{NEIGHBOUR}-EP00.txt", f"info-images/{BASE}-EP10.jpg",
                     f"data/{BASE}0-EP10.jpg", "data/unrelated.txt"]
        put_objects(s3, bucket, doomed + survivors)
        add_row(BASE)
        add_row(NEIGHBOUR)
        return s3, bucket, set(doomed), set(survivors)

    return make


def test_expiry_deletes_every_object_and_the_row_but_not_the_neighbour(make_pair):
    s3, bucket, doomed, survivors = make_pair(1_500)  # more than one listing page and one delete batch
    result = expire_exposure("data", BASE)
    assert (result.objects_deleted, result.rows_deleted) == (1_500, 1)
    assert all_keys(s3, bucket) == survivors
    assert not row_exists(BASE) and row_exists(NEIGHBOUR)


def test_expiring_twice_is_harmless(make_pair):
    s3, bucket, _, survivors = make_pair(3)
    expire_exposure("data", BASE)
    result = expire_exposure("data", BASE)
    assert (result.objects_deleted, result.rows_deleted) == (0, 0)
    assert all_keys(s3, bucket) == survivors


def test_expiring_an_info_image_keeps_a_data_row_of_the_same_base(make_pair):
    s3, bucket, doomed, survivors = make_pair(3)
    result = expire_exposure("info-images", BASE)
    assert (result.objects_deleted, result.rows_deleted) == (1, 0)
    assert row_exists(BASE)
    assert all_keys(s3, bucket) == (doomed | survivors) - {f"info-images/{BASE}-EP10.jpg"}


@pytest.mark.parametrize(
    ("directory", "base"),
    [
        ("data", "sro-kb001ms-20220629"),  # would be a prefix of a whole night
        ("data", ""),
        ("data", "sro-kb001ms-20220629-0001044"),
        ("data", f"{BASE}/.."),
        ("", BASE),
        ("raw", BASE),
        ("data/sro", BASE),
    ],
)
def test_an_invalid_expiry_is_refused_and_deletes_nothing(make_pair, directory, base):
    s3, bucket, doomed, survivors = make_pair(3)
    with pytest.raises(FilenameError):
        expire_exposure(directory, base)
    assert all_keys(s3, bucket) == doomed | survivors
    assert row_exists(BASE)


def test_keys_s3_refuses_to_delete_raise_so_the_expiry_is_retried(database, aws_stack, bucket):
    s3 = aws.client("s3")  # the cached client expire_exposure uses; S3's answers are stubbed
    keys = [f"data/{BASE}-EP10.jpg", f"data/{BASE}-EP00.txt"]
    with Stubber(s3) as stub:
        stub.add_response("list_objects_v2", {"Contents": [{"Key": k} for k in keys], "IsTruncated": False},
                          {"Bucket": bucket, "Prefix": f"data/{BASE}-"})
        stub.add_response(
            "delete_objects",
            {"Deleted": [{"Key": keys[1]}], "Errors": [{"Key": keys[0], "Code": "AccessDenied", "Message": "denied"}]},
        )
        with pytest.raises(ExpiryError, match="AccessDenied"):
            expire_exposure("data", BASE)


def test_a_cancelled_expiry_is_never_scheduled_again(aws_stack, capsys):
    name = parse_filename("sro-kb001ms-20220629-00010442-EP01.fits")
    now = dt.datetime(2022, 6, 29, 4)
    assert schedule_expiry("data", name, now)
    assert main(["expiry", "cancel", name.base_filename]) == 0
    assert "expiry cancelled" in capsys.readouterr().out
    table = get_settings().expiration_table
    item = aws.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": name.base_filename}})["Item"]
    assert "expiration_timestamp_s" not in item and "cancelled_at_s" in item  # no TTL: never removed
    assert not schedule_expiry("data", name, now + dt.timedelta(days=1))  # a later file changes nothing
    assert "expiration_timestamp_s" not in aws.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": name.base_filename}})["Item"]


def test_cancelling_an_invalid_base_filename_says_why(aws_stack, capsys):
    assert main(["expiry", "cancel", "not-a-base"]) == 2
    assert "must be site-instrument-YYYYMMDD-counter" in capsys.readouterr().out

"""Info-image channel items (docs/contracts.md §4) in moto's DynamoDB."""

from __future__ import annotations

import datetime as dt

import pytest
from boto3.dynamodb.types import TypeDeserializer

from archive import aws
from archive.formats.filenames import parse_key
from archive.ingest.info_images import NoChannel, apply_info_file
from archive.settings import get_settings

NOW = dt.datetime(2022, 6, 29, 3, 12, 45)
NOW_S = 1656472365
FIRST = "sro-kb001ms-20220629-00000001"
SECOND = "sro-kb001ms-20220629-00000002"
OTHER = "sro-kb001ms-20220629-00000099"


def set_metadata(site: str = "sro", **channels: str) -> None:
    item = {"pk": {"S": f"{site}#metadata"}, **{name: {"S": base} for name, base in channels.items()}}
    aws.client("dynamodb").put_item(TableName=get_settings().info_images_table, Item=item)


def channel_item(site: str, channel: int) -> dict | None:
    raw = aws.client("dynamodb").get_item(
        TableName=get_settings().info_images_table, Key={"pk": {"S": f"{site}#{channel}"}}, ConsistentRead=True
    ).get("Item")
    des = TypeDeserializer()
    return {k: des.deserialize(v) for k, v in raw.items()} if raw else None


def all_items() -> list[dict]:
    return aws.client("dynamodb").scan(TableName=get_settings().info_images_table)["Items"]


def apply(key: str, header: dict | None = None, now: dt.datetime = NOW) -> int:
    return apply_info_file(parse_key(key).name, key, header, now)


def test_medium_jpg_writes_the_channel_item_field_by_field(aws_stack):
    set_metadata(channel1=OTHER, channel2=FIRST)
    key = f"info-images/{FIRST}-EX10.jpg"
    assert apply(key) == 2
    assert channel_item("sro", 2) == {
        "pk": "sro#2",
        "base_filename": FIRST,
        "data_type": "EX",
        "file_date": "20220629",
        "expiration_timestamp": NOW_S + 48 * 3600,
        "jpg_10_file_path": key,
        "jpg_medium_exists": True,
    }
    raw = aws.client("dynamodb").get_item(TableName=get_settings().info_images_table, Key={"pk": {"S": "sro#2"}})
    assert set(raw["Item"]["expiration_timestamp"]) == {"N"}  # a TTL attribute must be a number
    assert set(raw["Item"]["jpg_medium_exists"]) == {"BOOL"}


@pytest.mark.parametrize(
    ("suffix", "path_field", "flag"),
    [
        ("EX10.jpg", "jpg_10_file_path", "jpg_medium_exists"),
        ("EX13.jpg", "jpg_10_file_path", "jpg_medium_exists"),
        ("EX11.jpg", "jpg_11_file_path", "jpg_small_exists"),
        ("EX00.fits", "fits_01_file_path", "fits_01_exists"),
        ("EX01.fits.bz2", "fits_01_file_path", "fits_01_exists"),
        ("EX10.fits.fz", "fits_10_file_path", "fits_10_exists"),
        ("EX13.fits", "fits_10_file_path", "fits_10_exists"),
    ],
)
def test_each_file_kind_sets_its_path_and_flag(aws_stack, suffix, path_field, flag):
    set_metadata(channel3=FIRST)
    key = f"info-images/{FIRST}-{suffix}"
    apply(key)
    item = channel_item("sro", 3)
    assert item[path_field] == key and item[flag] is True
    assert set(item) == {"pk", "base_filename", "data_type", "file_date", "expiration_timestamp", path_field, flag}


def test_header_text_becomes_a_map_of_strings(aws_stack):
    set_metadata(channel1=FIRST)
    apply(f"info-images/{FIRST}-EX00.txt", {"FILTER": "ip", "SSTKNUM": "3", "OBJECT": ""})
    raw = aws.client("dynamodb").get_item(TableName=get_settings().info_images_table, Key={"pk": {"S": "sro#1"}})
    assert raw["Item"]["header"] == {"M": {"FILTER": {"S": "ip"}, "SSTKNUM": {"S": "3"}, "OBJECT": {"S": ""}}}


def test_all_files_of_one_exposure_accumulate_on_its_channel(aws_stack):
    set_metadata(channel1=FIRST)
    for suffix in ("EX00.txt", "EX01.fits.bz2", "EX10.fits", "EX10.jpg", "EX11.jpg"):
        apply(f"info-images/{FIRST}-{suffix}", {"FILTER": "ip"} if suffix.endswith("txt") else None)
    item = channel_item("sro", 1)
    assert item["header"] == {"FILTER": "ip"}
    assert all(item[flag] for flag in ("fits_01_exists", "fits_10_exists", "jpg_medium_exists", "jpg_small_exists"))
    assert item["jpg_11_file_path"] == f"info-images/{FIRST}-EX11.jpg"


def test_a_new_exposure_on_a_channel_replaces_the_old_item_and_leaves_other_channels(aws_stack):
    set_metadata(channel1=OTHER, channel2=FIRST)
    apply(f"info-images/{OTHER}-EX10.jpg")
    apply(f"info-images/{FIRST}-EX10.jpg")
    apply(f"info-images/{FIRST}-EX00.txt", {"FILTER": "ip"})
    channel1_before = channel_item("sro", 1)

    set_metadata(channel1=OTHER, channel2=SECOND)  # photonranch-api assigns a new exposure to channel 2
    later = NOW + dt.timedelta(minutes=5)
    assert apply(f"info-images/{SECOND}-EX11.jpg", now=later) == 2

    assert channel_item("sro", 2) == {
        "pk": "sro#2",
        "base_filename": SECOND,
        "data_type": "EX",
        "file_date": "20220629",
        "expiration_timestamp": NOW_S + 300 + 48 * 3600,
        "jpg_11_file_path": f"info-images/{SECOND}-EX11.jpg",
        "jpg_small_exists": True,
    }  # nothing of FIRST remains: no header, no medium JPG
    assert channel_item("sro", 1) == channel1_before


def test_each_channel_keeps_its_own_expiry(aws_stack, settings_env):
    settings_env(INFO_IMAGE_TTL_HOURS="2")
    set_metadata(channel1=FIRST, channel2=SECOND)
    apply(f"info-images/{FIRST}-EX10.jpg", now=NOW)
    apply(f"info-images/{SECOND}-EX10.jpg", now=NOW + dt.timedelta(hours=1))
    assert channel_item("sro", 1)["expiration_timestamp"] == NOW_S + 2 * 3600
    assert channel_item("sro", 2)["expiration_timestamp"] == NOW_S + 3 * 3600


def test_a_file_without_metadata_is_refused_and_nothing_is_written(aws_stack):
    with pytest.raises(NoChannel) as raised:
        apply(f"info-images/{FIRST}-EX10.jpg")
    assert FIRST in raised.value.reason and "site sro" in raised.value.reason
    assert all_items() == []


def test_a_file_the_metadata_does_not_name_is_refused_and_channels_stay(aws_stack):
    set_metadata(channel1=OTHER)
    apply(f"info-images/{OTHER}-EX10.jpg")
    before = all_items()
    with pytest.raises(NoChannel, match=FIRST):
        apply(f"info-images/{FIRST}-EX10.jpg")
    assert all_items() == before


def test_metadata_of_another_site_does_not_give_a_channel(aws_stack):
    set_metadata(site="saf", channel1=FIRST)
    with pytest.raises(NoChannel):
        apply(f"info-images/{FIRST}-EX10.jpg")


def test_a_file_with_no_channel_field_leaves_the_channel_unchanged(aws_stack):
    set_metadata(channel1=OTHER)
    apply(f"info-images/{OTHER}-EX10.jpg")
    before = channel_item("sro", 1)
    set_metadata(channel1=FIRST)
    assert apply(f"info-images/{FIRST}-EX12.jpg") == 1
    assert channel_item("sro", 1) == before


def test_a_replacement_racing_another_file_of_the_new_exposure_keeps_both_files(aws_stack):
    """Our UpdateItem finds the old exposure; before our PutItem lands, another Lambda replaces the item
    with the new exposure and its own file. Our PutItem must not clobber that file."""
    set_metadata(channel1=OTHER)
    apply(f"info-images/{OTHER}-EX10.jpg")
    set_metadata(channel1=FIRST)
    ddb = aws.client("dynamodb")  # the cached client apply_info_file uses
    raced = []

    def other_lambda_gets_there_first(**_):
        if not raced:
            raced.append(True)
            apply(f"info-images/{FIRST}-EX00.txt", {"FILTER": "ip"})

    ddb.meta.events.register("before-call.dynamodb.PutItem", other_lambda_gets_there_first)
    try:
        apply(f"info-images/{FIRST}-EX10.jpg")
    finally:
        ddb.meta.events.unregister("before-call.dynamodb.PutItem", other_lambda_gets_there_first)
    assert raced
    item = channel_item("sro", 1)
    assert item["base_filename"] == FIRST
    assert item["header"] == {"FILTER": "ip"}
    assert item["jpg_medium_exists"] is True and item["jpg_10_file_path"] == f"info-images/{FIRST}-EX10.jpg"

"""`recent-uploads-log` items (docs/contracts.md §3), written to moto's DynamoDB and read back.

An item per attempt, ordered by when the attempt ran: the newest item for a key is the latest attempt's
truth, whatever the upload (event) time it carries, and its TTL counts from when it was written.
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from boto3.dynamodb.types import TypeDeserializer

import db
from archive import aws
from archive.cli.reprocess import list_objects, replay_through_handler, selected
from archive.cli.status import recent
from archive.clock import epoch_seconds, utc_now
from archive.ingest.pipeline import Upload, ingest_upload
from archive.ingest.uploads_log import ITEM_FIELDS, newest_attempts, record_upload, scan_items
from archive.local.ports import free_port
from archive.settings import get_settings
from handlers import observability
from tests import samples

UPLOADED = dt.datetime(2022, 6, 29, 3, 12, 45, 250_000)  # naive UTC
UPLOADED_S = 1656472365  # 2022-06-29T03:12:45Z
PROCESSED = dt.datetime(2026, 11, 25, 6, 0, 0)
PROCESSED_S = 1795586400  # 2026-11-25T06:00:00Z
KEY = "data/sro-kb001ms-20220629-00010442-EX10.jpg"


def items_of(site: str) -> list[dict]:
    """The site's items as photonranch-api gets them: a query by site, in range-key order."""
    response = aws.client("dynamodb").query(
        TableName=get_settings().uploads_log_table,
        KeyConditionExpression="site = :s",
        ExpressionAttributeValues={":s": {"S": site}},
    )
    des = TypeDeserializer()
    return [{k: des.deserialize(v) for k, v in item.items()} for item in response["Items"]]


def record(**overrides) -> dict:
    values = dict(key=KEY, site="sro", size_bytes=123_456, status="ingested", reason="jpg_medium_exists",
                  upload_time=UPLOADED, processed_at=PROCESSED)
    values.update(overrides)
    return record_upload(**values)


def test_item_has_every_contract_field_with_its_type(aws_stack):
    returned = record()
    [stored] = items_of("sro")
    assert stored == returned
    assert stored["site"] == "sro"
    assert stored["upload_timestamp_s"] == UPLOADED_S
    assert stored["processed_timestamp_s"] == PROCESSED_S
    assert stored["expire_timestamp_s"] == PROCESSED_S + 48 * 3600
    assert stored["filename"] == KEY  # the full key, directory included
    assert stored["size_bytes"] == 123_456
    assert stored["status"] == "ingested"
    assert stored["reason"] == "jpg_medium_exists"
    assert set(stored) == set(ITEM_FIELDS) == {"site", "upload_id", "upload_timestamp_s", "processed_timestamp_s",
                                               "expire_timestamp_s", "filename", "size_bytes", "status", "reason"}
    raw = aws.client("dynamodb").scan(TableName=get_settings().uploads_log_table)["Items"][0]
    for numeric in ("upload_timestamp_s", "processed_timestamp_s", "expire_timestamp_s", "size_bytes"):
        assert set(raw[numeric]) == {"N"}  # numbers, not strings: the API compares them as ints


def test_twenty_uploads_in_one_second_give_twenty_items(aws_stack):
    for i in range(20):
        record(key=f"data/sro-kb001ms-20220629-{i:08d}-EX10.jpg", upload_time=UPLOADED)
    items = items_of("sro")
    assert len(items) == 20
    assert {item["filename"] for item in items} == {f"data/sro-kb001ms-20220629-{i:08d}-EX10.jpg" for i in range(20)}
    assert {item["upload_timestamp_s"] for item in items} == {UPLOADED_S}


def test_the_same_file_uploaded_twice_in_one_millisecond_keeps_both_items(aws_stack):
    record()
    record(status="failed", reason="temporary error, will retry")
    assert sorted(item["status"] for item in items_of("sro")) == ["failed", "ingested"]


def test_a_site_query_returns_its_attempts_in_the_order_they_ran(aws_stack):
    times = [PROCESSED + dt.timedelta(milliseconds=ms) for ms in (999, 1, 0, 1000, 86_400_000, 5)]
    for t in times:
        record(processed_at=t, reason=t.isoformat())
    assert [item["reason"] for item in items_of("sro")] == [t.isoformat() for t in sorted(times)]


def test_the_newest_item_for_a_key_is_the_latest_attempt_whatever_upload_time_it_carries(aws_stack):
    """Redeliveries carry the same event time; reprocess carries LastModified, whole seconds earlier."""
    attempts = [
        (UPLOADED, "failed", "temporary error, will retry: database unavailable"),
        (UPLOADED, "failed", "temporary error, will retry: database unavailable"),
        (UPLOADED.replace(microsecond=0), "ingested", "jpg_medium_exists"),  # the reprocess
    ]
    for n, (uploaded, status, reason) in enumerate(attempts):
        record(upload_time=uploaded, processed_at=PROCESSED + dt.timedelta(seconds=n), status=status, reason=reason)
    items = items_of("sro")
    assert [item["status"] for item in items] == ["failed", "failed", "ingested"]
    assert newest_attempts(items)[KEY]["status"] == "ingested"
    assert [i["status"] for i in recent(scan_items(), 1)] == ["ingested"], "status --last shows the latest attempt"


def test_an_item_for_an_old_upload_lives_the_full_ttl_from_when_it_is_written(aws_stack):
    """A DLQ redrive or a reprocess of files older than the TTL must leave a trace."""
    before = int(epoch_seconds(utc_now()))
    item = record(upload_time=dt.datetime(2020, 1, 1), processed_at=None)
    assert item["upload_timestamp_s"] == 1577836800
    assert item["expire_timestamp_s"] - before in range(48 * 3600, 48 * 3600 + 5)


def test_after_an_outage_and_a_reprocess_the_newest_item_of_every_file_is_ingested(
    aws_stack, database, settings_env
):
    """The reported case: failures logged during an outage, then a backfill that repaired every row."""
    s3, bucket = aws.client("s3"), get_settings().bucket
    uploads = []
    for name, body in samples.exposure_files().items():
        s3.put_object(Bucket=bucket, Key=f"data/{name}", Body=body)
        # S3's event time has milliseconds; LastModified, which reprocess uses, whole seconds before it.
        uploads.append(Upload(bucket, f"data/{name}", len(body), utc_now() + dt.timedelta(milliseconds=900)))
    settings_env(DATABASE_URL=f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/postgres")
    db.dispose_engines()
    for upload in uploads:
        with pytest.raises(Exception, match="database unavailable"):
            ingest_upload(upload)
    settings_env(DATABASE_URL=database)
    db.dispose_engines()

    objects = selected(list_objects(bucket, "data/"))
    level = logging.getLevelName(observability.logger.log_level)
    try:
        replayed = replay_through_handler(objects, bucket, get_settings().region, progress=False)
    finally:
        observability.set_level(level)  # reprocess quiets the handlers' shared logger for the process
    assert replayed["ingested"] == len(uploads)

    newest = newest_attempts(scan_items())
    assert {key: item["status"] for key, item in newest.items()} == {u.key: "ingested" for u in uploads}


def test_an_unknown_site_is_logged_under_unknown_site(aws_stack):
    record(key="data/not-a-valid-name.jpg", site="unknown_site", status="rejected", reason="bad name")
    [item] = items_of("unknown_site")
    assert (item["filename"], item["status"], item["reason"]) == ("data/not-a-valid-name.jpg", "rejected", "bad name")


@pytest.mark.parametrize("status", ["ingested", "ignored", "rejected", "failed"])
def test_every_contract_status_is_accepted(aws_stack, status):
    assert record(status=status)["status"] == status


def test_an_unknown_status_is_refused_and_nothing_is_written(aws_stack):
    with pytest.raises(ValueError, match="status 'ok'"):
        record(status="ok")
    assert items_of("sro") == []


def test_ttl_hours_come_from_settings(aws_stack, settings_env):
    settings_env(UPLOADS_LOG_TTL_HOURS="6")
    item = record()
    assert item["expire_timestamp_s"] - item["processed_timestamp_s"] == 6 * 3600


def test_an_aware_upload_time_is_converted_to_utc(aws_stack):
    aware = UPLOADED.replace(tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=-7)))
    assert record(upload_time=aware)["upload_timestamp_s"] == UPLOADED_S


def test_a_huge_reason_is_truncated_so_the_item_still_fits(aws_stack):
    item = record(status="failed", reason="x" * 500_000)
    assert 0 < len(item["reason"]) < 10_000
    assert items_of("sro")[0]["reason"] == item["reason"]

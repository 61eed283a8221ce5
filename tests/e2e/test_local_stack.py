"""The local stack end to end: moto's server, the ingest worker, the TTL sweeper, serve and demo.

These start real servers (moto on a free port, PostgreSQL) and go through HTTP like the sites and
photonranch-api do; the slowest (`demo`) runs the very command `make demo` runs.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

import db
import migrations
from archive import aws
from archive.cli.serve import usage
from archive.database import get_engine
from archive.local.demo import DeliveryLog, expected_keys, thumbnail_key
from archive.local.postgres import PostgresUnavailable
from archive.local.simulate import SiteRun, make_exposure, render_files, simulate
from archive.local.stack import LocalStack, StackError, StackOptions, open_database, parse_env_file
from archive.local.sweeper import TtlSweeper, describe_ttl_tables
from archive.settings import get_settings
from handlers import expire
from handlers.ingest import handler as ingest_handler
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture
def start_stack(tmp_path: Path, database: str):
    """Start a LocalStack on a free port against the test database; stopped after the test."""
    stacks: list[LocalStack] = []

    def start(**overrides: object) -> LocalStack:
        settings_env = {"LOG_LEVEL": "WARNING", **overrides.pop("settings_env", {})}  # type: ignore[dict-item]
        options = StackOptions(
            port=0, state_dir=tmp_path / ".archive", settings_env=settings_env, notice=lambda _: None, **overrides
        )
        stack = LocalStack(options).start()
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()


def rows(*base_filenames: str) -> dict[str, dict]:
    with get_engine().connect() as conn:
        result = conn.execute(select(db.images).where(db.images.c.base_filename.in_(base_filenames))).mappings()
        return {row["base_filename"]: dict(row) for row in result}


def log_items() -> list[dict]:
    items = aws.client("dynamodb").scan(TableName=get_settings().uploads_log_table)["Items"]
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def test_presigned_uploads_become_rows_log_items_thumbnails_channels_and_datastream_messages(start_stack, database):
    log = DeliveryLog()
    stack = start_stack(on_delivery=log.add)

    env = parse_env_file(stack.env_file.read_text())
    assert f"set -a; . {stack.env_file}; set +a" in usage(stack)
    assert env["AWS_ENDPOINT_URL"] == stack.endpoint_url and env["DATABASE_URL"] == database
    assert env["BUCKET_NAME"] == get_settings().bucket and env["DATASTREAM_QUEUE_URL"].endswith(
        get_settings().datastream_queue_name
    )
    data = simulate(SiteRun(site="ete", exposures=3, seed=5, smartstack=3), progress=False)
    info = simulate(SiteRun(site="ete", exposures=1, s3_directory="info-images", channel=2, seed=6), progress=False)
    expected = expected_keys(data.uploads + info.uploads)
    wait_until(lambda: expected <= log.done().keys(), what="every upload and thumbnail to be processed")

    found = rows(*(e.base_filename for e in data.exposures))
    assert len(found) == 3
    for exposure in data.exposures:
        row = found[exposure.base_filename]
        assert row["fits_01_exists"] and row["fits_10_exists"] and row["jpg_medium_exists"] and row["jpg_small_exists"]
        assert row["capture_date"] == dt.datetime.fromisoformat(exposure.header["DATE-OBS"])
        assert row["right_ascension"] == pytest.approx(exposure.header["RAHRS"], abs=1e-6)
        assert json.loads(row["header"])["SSTKLEN"] == "3"

    statuses: dict[str, set[str]] = {}
    for item in log_items():  # a retried file has an item per attempt: the last one succeeded
        statuses.setdefault(item["filename"], set()).add(item["status"])
    assert [key for key in expected if "ingested" not in statuses.get(key, ())] == []

    s3 = aws.client("s3")
    for upload in data.uploads + info.uploads:
        small = thumbnail_key(upload.key)
        if small:
            picture = Image.open(io.BytesIO(s3.get_object(Bucket=get_settings().bucket, Key=small)["Body"].read()))
            assert picture.format == "JPEG" and picture.height == get_settings().thumbnail_height_px

    channel = aws.client("dynamodb").get_item(
        TableName=get_settings().info_images_table, Key={"pk": {"S": "ete#2"}}
    )["Item"]
    assert channel["base_filename"]["S"] == info.exposures[0].base_filename
    assert channel["jpg_small_exists"]["BOOL"] and channel["fits_10_exists"]["BOOL"]

    sqs = aws.client("sqs")
    announced = set()
    while batch := sqs.receive_message(QueueUrl=env["DATASTREAM_QUEUE_URL"], MaxNumberOfMessages=10).get("Messages"):
        for message in batch:
            body = json.loads(message["Body"])
            announced.add((body["data"]["s3_directory"], body["data"]["base_filename"], body.get("channel")))
            sqs.delete_message(QueueUrl=env["DATASTREAM_QUEUE_URL"], ReceiptHandle=message["ReceiptHandle"])
    assert {("data", e.base_filename, None) for e in data.exposures} <= announced
    assert ("info-images", info.exposures[0].base_filename, 2) in announced


POISON = "00000666"


def poisoned_ingest(event: dict, context: object) -> dict:
    """The real ingest handler, except that it always fails the message naming the poison counter."""
    poison = [r for r in event["Records"] if POISON in r["body"]]
    rest = [r for r in event["Records"] if POISON not in r["body"]]
    response = ingest_handler({"Records": rest}, context) if rest else {"batchItemFailures": []}
    failures = [*response["batchItemFailures"], *({"itemIdentifier": r["messageId"]} for r in poison)]
    return {"batchItemFailures": failures}


def test_a_poison_message_lands_in_the_dead_letter_queue_after_the_receive_count_while_its_batch_succeeds(
    start_stack,
):
    stack = start_stack(ingest_handler=poisoned_ingest, run_worker=False, max_receive_count=3)
    worker = stack.worker
    worker.retry_delay_seconds = 0
    s3, bucket = aws.client("s3"), get_settings().bucket
    exposures = [
        make_exposure(s3_directory="data", site="psn", instrument="kb001ms", night="20260101", counter=counter,
                      data_type="EX", moment=dt.datetime(2026, 1, 1, 3), rng=np.random.default_rng(counter))
        for counter in (1, 2, 3, 4, int(POISON))
    ]
    for exposure in exposures:
        (header,) = render_files(exposure, "h")
        s3.put_object(Bucket=bucket, Key=header.key, Body=header.body)

    first = worker.poll_once()
    with_keys = [d for d in first if d.keys]
    assert len(with_keys) == 5, "all five notifications arrive in one batch"
    assert {d.keys[0] for d in with_keys if not d.ok} == {exposures[-1].key("h")}
    retries = [worker.poll_once() for _ in range(2)]
    assert [[(d.keys, d.receive_count, d.ok) for d in batch] for batch in retries] == [
        [((exposures[-1].key("h"),), 2, False)],
        [((exposures[-1].key("h"),), 3, False)],
    ]
    assert worker.poll_once() == [], "after maxReceiveCount receives the queue stops delivering it"

    sqs = aws.client("sqs")
    dead = sqs.receive_message(QueueUrl=stack.provisioned.ingest_dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert len(dead) == 1 and POISON in dead[0]["Body"]
    depth = sqs.get_queue_attributes(QueueUrl=stack.provisioned.ingest_queue_url, AttributeNames=["All"])["Attributes"]
    assert (depth["ApproximateNumberOfMessages"], depth["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")
    assert set(rows(*(e.base_filename for e in exposures))) == {e.base_filename for e in exposures[:4]}


def test_sweeper_stream_records_make_expire_delete_the_exposure_and_keep_the_unexpired(aws_stack, database):
    settings = get_settings()
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    now = 1_800_000_000
    gone, kept = "tst-kb001ms-20260101-00000001", "tst-kb001ms-20260101-00000002"
    for base in (gone, kept):
        for suffix in ("EP00.txt", "EP10.jpg", "EP11.jpg"):
            s3.put_object(Bucket=settings.bucket, Key=f"data/{base}-{suffix}", Body=b"x")
        with get_engine().begin() as conn:
            db.mark_file(conn, base_filename=base, site="tst", data_type="EP", flag="jpg_medium_exists",
                         upload_time=dt.datetime(2026, 1, 1))
    for base, ttl in ((gone, now - 1), (kept, now + 60)):
        ddb.put_item(TableName=settings.expiration_table, Item={
            "pk": {"S": base}, "s3_directory": {"S": "data"}, "expiration_timestamp_s": {"N": str(ttl)}})
    tables = describe_ttl_tables(ddb, [settings.expiration_table])
    sweeper = TtlSweeper(ddb, tables, {settings.expiration_table: expire.handler}, region=settings.region,
                         clock=lambda: now)

    result = sweeper.sweep_once()

    assert result.deleted == {settings.expiration_table: 1} and result.delivered == 1
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=settings.bucket).get("Contents", [])]
    assert keys and all(kept in key for key in keys)
    assert set(rows(gone, kept)) == {kept}
    tracker = ddb.scan(TableName=settings.expiration_table)["Items"]
    assert [item["pk"]["S"] for item in tracker] == [kept]


def test_sweeper_redelivers_failed_stream_records_and_gives_up_after_max_attempts(aws_stack):
    settings = get_settings()
    ddb = aws.client("dynamodb")
    for i, ttl in enumerate(("100", "100", "nope")):
        ddb.put_item(TableName=settings.uploads_log_table, Item={
            "site": {"S": "tst"}, "upload_id": {"S": str(i)},
            "expire_timestamp_s": {"N": ttl} if ttl.isdigit() else {"S": ttl}})
    for pk in ("a-1", "b-2"):
        ddb.put_item(TableName=settings.expiration_table, Item={
            "pk": {"S": pk}, "s3_directory": {"S": "data"}, "expiration_timestamp_s": {"N": "100"}})
    calls: list[list[str]] = []

    def flaky(event: dict, context: object) -> dict:
        """Fails record a-1 every time; accepts b-2."""
        calls.append([r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]])
        return {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
                                      for r in event["Records"] if r["dynamodb"]["Keys"]["pk"]["S"] == "a-1"]}

    tables = describe_ttl_tables(ddb, [settings.uploads_log_table, settings.expiration_table])
    sweeper = TtlSweeper(ddb, tables, {settings.expiration_table: flaky}, region=settings.region,
                         max_attempts=3, clock=lambda: 1_000)

    results = [sweeper.sweep_once() for _ in range(4)]

    assert results[0].deleted == {settings.uploads_log_table: 2, settings.expiration_table: 2}
    assert calls == [["a-1", "b-2"], ["a-1"], ["a-1"]]
    assert [r.dropped for r in results] == [0, 0, 1, 0]
    remaining = ddb.scan(TableName=settings.uploads_log_table)["Items"]
    assert [item["upload_id"]["S"] for item in remaining] == ["2"], "a TTL that is not a Number never expires"


def test_stop_restores_the_environment_and_removes_the_env_file(start_stack):
    before = os.environ.get("AWS_ENDPOINT_URL")
    stack = start_stack()
    assert os.environ["AWS_ENDPOINT_URL"] == stack.endpoint_url and stack.env_file.exists()

    stack.stop()

    assert os.environ.get("AWS_ENDPOINT_URL") == before
    assert not stack.env_file.exists()


def test_a_taken_port_is_reported_instead_of_hanging(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        taken.listen()
        with pytest.raises(StackError, match=f"127.0.0.1:{port} is in use"):
            LocalStack(StackOptions(port=port, state_dir=tmp_path)).start()


def test_without_postgresql_the_database_falls_back_to_sqlite_with_a_notice(tmp_path):
    def no_postgres(*args: object, **kwargs: object) -> None:
        raise PostgresUnavailable("no PostgreSQL server binaries found")

    notices: list[str] = []
    options = StackOptions(state_dir=tmp_path, notice=notices.append)

    database = open_database(options, env_url=None, postgres=no_postgres)

    assert database.url == f"sqlite:///{tmp_path.resolve()}/archive.sqlite"
    assert len(notices) == 1 and "SQLite" in notices[0]
    migrations.upgrade(database.url)
    assert (tmp_path / "archive.sqlite").exists()


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    env.pop("DATABASE_URL", None)
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env


def test_serve_writes_its_env_file_serves_s3_and_stops_cleanly_on_ctrl_c(tmp_path, database_url):
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "archive", "serve", "--port", "0", "--state-dir", str(state)],
        cwd=tmp_path, env=_cli_env(DATABASE_URL=database_url, LOG_LEVEL="WARNING"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_until(lambda: (state / "local.env").exists() or process.poll() is not None, 60, "serve to start")
        env = parse_env_file((state / "local.env").read_text())

        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        assert env["BUCKET_NAME"] in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert output.rstrip().endswith("stopped")
    assert not (state / "local.env").exists()


def test_demo_runs_the_whole_pipeline_with_an_embedded_database_and_passes_its_checks(tmp_path):
    """What `make demo` runs, from scratch: a new PostgreSQL cluster, moto, 2 sites × 20 exposures."""
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "archive", "demo", "--state-dir", str(tmp_path / "state"), "--no-progress"],
        cwd=tmp_path, env=_cli_env(), capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "all checks passed" in output and "embedded PostgreSQL" in output
    assert "[ok] image API: FITS render" in output and "[ok] image API: colour composite" in output
    assert "FAIL" not in result.stdout
    sheet = Image.open(tmp_path / "state" / "contact-sheet.png")
    assert sheet.format == "PNG" and sheet.width > 1000
    assert time.time() - started < 240

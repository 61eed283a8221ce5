"""The `images` row through the real handler: order, duplicates, concurrency, bad input, outages.

moto for S3/DynamoDB/SQS, a real PostgreSQL for the table.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from moto.server import ThreadedMotoServer

import db
from archive import aws
from archive.database import get_engine
from archive.local.postgres import free_port
from archive.local.provision import provision_all
from archive.settings import get_settings
from handlers.ingest import handler
from tests import samples
from tests.samples import s3_record, sqs_event, sqs_event_for

VOLATILE = ("image_id", "base_filename")


def put(s3, bucket: str, key: str, body: bytes) -> tuple[str, int]:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key, len(body)


def upload_exposure(s3, bucket: str, base: str) -> list[tuple[str, int]]:
    return [put(s3, bucket, f"data/{name}", body) for name, body in samples.exposure_files(base).items()]


def deliver(bucket: str, *keys_and_sizes: tuple[str, int]) -> dict:
    return handler(sqs_event_for(bucket, list(keys_and_sizes)), None)


def row(base: str) -> dict | None:
    with get_engine().connect() as conn:
        return db.get_row(conn, base)


def comparable(r: dict) -> dict:
    return {k: v for k, v in r.items() if k not in VOLATILE}


def log_items() -> list[dict]:
    table = aws.client("dynamodb")
    items = table.scan(TableName=get_settings().uploads_log_table)["Items"]
    return [{k: list(v.values())[0] for k, v in item.items()} for item in items]


@pytest.fixture
def stack(database, aws_stack, s3, bucket):
    return s3, bucket


def test_complete_exposure_row_matches_the_contract(stack):
    s3, bucket = stack
    files = upload_exposure(s3, bucket, samples.BASE)
    assert deliver(bucket, *files) == {"batchItemFailures": []}
    r = row(samples.BASE)
    assert all(r[flag] for flag in db.FLAGS)
    assert (r["site"], r["data_type"]) == ("sro", "EX")
    assert r["right_ascension"] == pytest.approx(12 + 34 / 60 + 56.7 / 3600)  # decimal hours
    assert r["declination"] == pytest.approx(-5.5)
    assert r["filter_used"] == "ip" and r["exposure_time"] == 30.0 and r["airmass"] == pytest.approx(1.234)
    assert (r["altitude"], r["azimuth"]) == (pytest.approx(54.3), pytest.approx(181.2))
    assert (r["username"], r["user_id"]) == ("Wayne Rosing", "google-oauth2|1234")
    assert r["capture_date"].isoformat() == "2022-06-29T03:12:45.123000"
    assert r["sort_date"] == r["capture_date"]
    header = json.loads(r["header"])
    assert header["SSTKNUM"] == "3" and header["SSTKNUM"].isdigit()
    assert header["FILTER"] == "ip" and header["EXPTIME"] == "30.0"
    assert all(isinstance(v, str) for v in header.values())


def test_every_arrival_order_gives_the_same_row(stack):
    s3, bucket = stack
    orders = list(itertools.permutations(range(5)))
    assert len(orders) == 120
    finals = []
    for counter, order in enumerate(orders, start=1):
        base = samples.base_for(counter)
        files = upload_exposure(s3, bucket, base)
        for index in order:
            assert deliver(bucket, files[index]) == {"batchItemFailures": []}
        finals.append(comparable(row(base)))
    assert all(final == finals[0] for final in finals)
    assert all(finals[0][flag] for flag in db.FLAGS)
    assert finals[0]["capture_date"].isoformat() == "2022-06-29T03:12:45.123000"


def test_fits_before_header_then_header_text_wins(stack):
    s3, bucket = stack
    header = samples.make_header(FILTER="rp")
    fits_key = put(s3, bucket, f"data/{samples.BASE}-EX10.fits", samples.fits_bytes(header))
    deliver(bucket, fits_key)
    from_fits = row(samples.BASE)
    assert from_fits["fits_10_exists"] and from_fits["filter_used"] == "rp"
    txt = put(s3, bucket, f"data/{samples.BASE}-EX00.txt", samples.header_text(samples.make_header(FILTER="ip")))
    deliver(bucket, txt)
    deliver(bucket, fits_key)  # a later FITS never replaces the text header
    final = row(samples.BASE)
    assert final["filter_used"] == "ip" and final["fits_10_exists"]


def test_every_event_delivered_twice_gives_the_same_state(stack):
    s3, bucket = stack
    once_files = upload_exposure(s3, bucket, samples.base_for(1))
    twice_files = upload_exposure(s3, bucket, samples.base_for(2))
    deliver(bucket, *once_files)
    deliver(bucket, *[f for f in twice_files for _ in range(2)])  # duplicates within a batch
    deliver(bucket, *reversed(twice_files))  # and again, later, in another order
    assert comparable(row(samples.base_for(1))) == comparable(row(samples.base_for(2)))
    with get_engine().connect() as conn:
        assert conn.execute(db.images.select()).rowcount == 2


def test_concurrent_exposures_from_several_threads_end_as_one_row_each(stack):
    s3, bucket = stack
    events = [f for counter in range(1, 51) for f in upload_exposure(s3, bucket, samples.base_for(counter))]
    random.Random(7).shuffle(events)

    def ingest(item: tuple[str, int]) -> dict:
        return deliver(bucket, item)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(ingest, events))
    assert all(r == {"batchItemFailures": []} for r in responses)
    with get_engine().connect() as conn:
        rows = conn.execute(db.images.select()).mappings().all()
    assert len(rows) == 50
    assert all(all(r[flag] for flag in db.FLAGS) for r in rows)
    assert all(r["header"] is not None for r in rows)


def test_bad_input_gets_reasons_and_never_stops_the_batch(stack):
    s3, bucket = stack
    b = samples.base_for
    good = put(s3, bucket, f"data/{b(9)}-EX00.txt", samples.header_text())
    na_header = samples.make_header(EXPTIME="N/A", AIRMASS="Unknown", ALTITUDE="", RA=None, DEC=None)
    unicode_header = samples.header_text().replace(b"OBJECT  ", b"OBJ\xc3\x89CT ")
    truncated_bz2 = samples.fits_bz2_bytes()[:300]
    items = [
        put(s3, bucket, "data/not-a-valid-name.txt", b"x"),
        put(s3, bucket, f"data/{b(1)}-EX00.txt", b""),
        put(s3, bucket, f"data/{b(2)}-EX00.txt", bytes(range(256)) * 8),
        put(s3, bucket, f"data/{b(3)}-EX00.txt", samples.header_text(na_header)),
        put(s3, bucket, f"data/{b(4)}-EX00.txt", unicode_header),
        (f"data/{b(5)}-EX00.txt", 123),  # deleted before we could read it
        put(s3, bucket, f"data/{b(6)}-EX01.fits.bz2", truncated_bz2),
        put(s3, bucket, f"data/{b(7)}-EX05.jpg", b"whatever"),
        good,
    ]
    assert deliver(bucket, *items) == {"batchItemFailures": []}

    by_key = {item["filename"]: item for item in log_items()}
    assert len(by_key) == len(items)
    expect = {
        "data/not-a-valid-name.txt": ("rejected", "dash-separated parts"),
        f"data/{b(1)}-EX00.txt": ("failed", "empty"),
        f"data/{b(2)}-EX00.txt": ("failed", "binary"),
        f"data/{b(3)}-EX00.txt": ("ingested", "header"),
        f"data/{b(4)}-EX00.txt": ("ingested", "header"),
        f"data/{b(5)}-EX00.txt": ("failed", "no longer exists"),
        f"data/{b(6)}-EX01.fits.bz2": ("failed", "fits_01_exists set; header"),
        f"data/{b(7)}-EX05.jpg": ("ignored", "no effect"),
        good[0]: ("ingested", "header"),
    }
    for key, (status, reason) in expect.items():
        assert by_key[key]["status"] == status, (key, by_key[key])
        assert reason in by_key[key]["reason"], (key, by_key[key])
    assert by_key["data/not-a-valid-name.txt"]["site"] == "unknown_site"

    assert row(b(1)) is None and row(b(2)) is None  # unparseable headers create nothing
    na_row = row(b(3))
    assert na_row["exposure_time"] is None and na_row["airmass"] is None and na_row["altitude"] is None
    assert na_row["right_ascension"] is None and na_row["capture_date"] is not None
    assert "OBJÉCT" in json.loads(row(b(4))["header"])
    truncated = row(b(6))
    assert truncated["fits_01_exists"] and truncated["header"] is None


def test_bad_header_keeps_the_flags_already_set(stack):
    s3, bucket = stack
    jpg = put(s3, bucket, f"data/{samples.BASE}-EX11.jpg", samples.jpeg_bytes((96, 64)))
    deliver(bucket, jpg)
    bad = put(s3, bucket, f"data/{samples.BASE}-EX00.txt", b"\x00\x01\x02 binary")
    assert deliver(bucket, bad) == {"batchItemFailures": []}
    assert row(samples.BASE)["jpg_small_exists"]


def test_database_outage_retries_only_what_can_succeed_and_loses_nothing(stack, database_url, settings_env):
    s3, bucket = stack
    files = upload_exposure(s3, bucket, samples.BASE)
    bad_name = put(s3, bucket, "data/garbage.txt", b"x")

    settings_env(DATABASE_URL=f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/postgres")
    db.dispose_engines()
    event = sqs_event_for(bucket, [*files, bad_name])
    response = handler(event, None)
    failed_ids = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert failed_ids == {f"msg-{i}" for i in range(5)}  # the bad name is not retried
    assert all(
        item["status"] == "failed" and "will retry" in item["reason"]
        for item in log_items()
        if item["filename"] != "data/garbage.txt"
    )

    settings_env(DATABASE_URL=database_url)
    db.dispose_engines()
    redelivery = {"Records": [r for r in event["Records"] if r["messageId"] in failed_ids]}
    assert handler(redelivery, None) == {"batchItemFailures": []}
    r = row(samples.BASE)
    assert all(r[flag] for flag in db.FLAGS) and r["filter_used"] == "ip"


def test_direct_s3_event_raises_when_a_retry_is_needed(stack, settings_env):
    s3, bucket = stack
    key, size = put(s3, bucket, f"data/{samples.BASE}-EX00.txt", samples.header_text())

    settings_env(DATABASE_URL=f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/postgres")
    db.dispose_engines()
    with pytest.raises(RuntimeError, match="need a retry"):
        handler({"Records": [s3_record(bucket, key, size)]}, None)


def test_late_event_for_a_deleted_medium_jpg_creates_no_row(stack):
    _, bucket = stack
    key = f"data/{samples.BASE}-EX10.jpg"  # never uploaded (or already expired and deleted)
    assert deliver(bucket, (key, 1000)) == {"batchItemFailures": []}
    assert row(samples.BASE) is None
    (item,) = [i for i in log_items() if i["filename"] == key]
    assert item["status"] == "failed" and "no longer exists" in item["reason"]


def test_oversized_header_text_is_refused_with_a_reason(stack, settings_env):
    s3, bucket = stack
    settings_env(FITS_HEADER_MAX_BYTES="4000")
    big = put(s3, bucket, f"data/{samples.BASE}-EX00.txt", samples.header_text() * 10)
    assert deliver(bucket, big) == {"batchItemFailures": []}
    (item,) = log_items()
    assert item["status"] == "failed" and "larger than 4000 bytes" in item["reason"]
    assert row(samples.BASE) is None


def test_a_header_event_loads_neither_astropy_nor_pillow(database, database_url):
    """The cold-start promise: a fresh process handling a header text never imports them."""



    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", DATABASE_URL=database_url)
        code = (
            "import json, os, sys, handlers.ingest as h;"
            "r = h.handler(json.loads(os.environ['EVENT']), None);"
            "print(json.dumps([r, 'astropy' in sys.modules, 'PIL' in sys.modules, 'numpy' in sys.modules]))"
        )

        os.environ["AWS_ENDPOINT_URL"] = env["AWS_ENDPOINT_URL"]
        get_settings.cache_clear()
        aws.clear_clients()
        try:
            provision_all()
            key, size = put(aws.client("s3"), get_settings().bucket, f"data/{samples.BASE}-EX00.txt",
                            samples.header_text())
        finally:
            del os.environ["AWS_ENDPOINT_URL"]
            get_settings.cache_clear()
            aws.clear_clients()
        env["EVENT"] = json.dumps(sqs_event({"Records": [s3_record(get_settings().bucket, key, size)]}))
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        response, astropy_loaded, pil_loaded, numpy_loaded = json.loads(out.stdout.strip().splitlines()[-1])
        assert response == {"batchItemFailures": []}
        assert (astropy_loaded, pil_loaded, numpy_loaded) == (False, False, False)
        assert row(samples.BASE)["filter_used"] == "ip"
    finally:
        server.stop()


def test_direct_events_report_statuses_and_unreadable_ones_are_dropped_with_a_reason(stack):
    s3, bucket = stack

    key, size = put(s3, bucket, f"data/{samples.BASE}-EX00.txt", samples.header_text())
    event = {"Records": [s3_record(bucket, key, size), s3_record(bucket, "data/bad-name.txt", 1)]}
    assert handler(event, None) == {"uploads": 2, "statuses": {"ingested": 1, "rejected": 1}}
    dropped = handler({"hello": "world"}, None)
    assert dropped["uploads"] == 0 and "no Records" in dropped["error"]


@pytest.mark.parametrize("filename", ["EP01.fits.bz2", "EP10.fits", "EP11.jpg"])
def test_late_redelivery_after_expiry_brings_nothing_back(stack, filename):
    """An expiring exposure whose objects and row are gone: a late event for one of its files
    creates no row and schedules no new expiry."""
    s3, bucket = stack
    key = f"data/{samples.BASE}-{filename}"
    body = samples.fits_bytes() if "fits" in filename else samples.jpeg_bytes((96, 64))
    put(s3, bucket, key, body)
    assert deliver(bucket, (key, len(body))) == {"batchItemFailures": []}
    tracker = aws.client("dynamodb")
    table = get_settings().expiration_table
    assert tracker.get_item(TableName=table, Key={"pk": {"S": samples.BASE}}).get("Item")

    # What expiry does: the objects, the row and (by TTL) the tracker item go.
    s3.delete_object(Bucket=bucket, Key=key)
    with get_engine().begin() as conn:
        db.delete_exposure(conn, samples.BASE)
    tracker.delete_item(TableName=table, Key={"pk": {"S": samples.BASE}})

    assert deliver(bucket, (key, len(body))) == {"batchItemFailures": []}
    assert row(samples.BASE) is None
    assert "Item" not in tracker.get_item(TableName=table, Key={"pk": {"S": samples.BASE}})
    last = [i for i in log_items() if i["filename"] == key]
    assert any(i["status"] == "failed" and "no longer exists" in i["reason"] for i in last)

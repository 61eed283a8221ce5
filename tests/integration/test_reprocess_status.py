"""`reprocess` rebuilds the archive from the bucket, idempotently; `status` reports what happened."""

from __future__ import annotations

import datetime as dt
import signal
from collections import Counter

import numpy as np
import pytest
from sqlalchemy import event, select

import db
from archive import aws
from archive.cli import build_parser
from archive.cli.reprocess import (
    checkpoint_for,
    describe_stop,
    list_objects,
    position,
    replay_through_handler,
    selected,
)
from archive.cli.resumable import Checkpoint, Interrupted
from archive.database import get_engine
from archive.local.simulate import make_exposure, render_files
from archive.ops.queues import queue_depths
from archive.settings import get_settings

UTC = dt.UTC


def upload_exposures(count: int) -> list[str]:
    s3, bucket = aws.client("s3"), get_settings().bucket
    bases = []
    for counter in range(1, count + 1):
        exposure = make_exposure(s3_directory="data", site="rep", instrument="kb001ms", night="20260101",
                                 counter=counter, data_type="EX", moment=dt.datetime(2026, 1, 1, 4, counter),
                                 rng=np.random.default_rng(counter))
        for file in render_files(exposure, "jhf"):
            s3.put_object(Bucket=bucket, Key=file.key, Body=file.body)
        bases.append(exposure.base_filename)
    return bases


def snapshot() -> list[tuple]:
    columns = [c for c in db.images.c if c.name != "image_id"]
    with get_engine().connect() as conn:
        return [tuple(r) for r in conn.execute(select(*columns).order_by(db.images.c.base_filename))]


def test_reprocessing_the_bucket_rebuilds_the_rows_and_a_second_run_changes_nothing(aws_stack, database):
    bases = upload_exposures(3)  # in-process moto: no notification, so the database starts empty
    settings = get_settings()
    objects = selected(list_objects(settings.bucket, "data/"), site="rep")

    first = replay_through_handler(objects, settings.bucket, settings.region, progress=False)
    rebuilt = snapshot()
    second = replay_through_handler(objects, settings.bucket, settings.region, progress=False)

    assert first == second == Counter({"ingested": 9})
    assert [row[0] for row in rebuilt] == bases
    assert snapshot() == rebuilt
    # f sets fits_10, j sets jpg_medium and makes the thumbnail (jpg_small); no large FITS was uploaded.
    flags = [i for i, c in enumerate(c for c in db.images.c if c.name != "image_id") if c.name in db.FLAGS]
    assert {tuple(row[i] for i in flags) for row in rebuilt} == {(False, True, True, True)}
    with get_engine().connect() as conn:
        dates = conn.execute(select(db.images.c.capture_date).order_by(db.images.c.base_filename)).scalars().all()
    assert dates == [dt.datetime(2026, 1, 1, 4, n) for n in (1, 2, 3)], "dated by the headers, not the replay"


def test_queue_depths_list_the_ingest_queue_its_dlq_and_the_datastream_queue(aws_stack):
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=aws_stack.ingest_dlq_url, MessageBody="{}")

    depths = {name: waiting for name, waiting, _, _ in queue_depths()}

    settings = get_settings()
    assert depths == {settings.ingest_queue_name: "0", f"{settings.ingest_queue_name}-dlq": "1",
                      settings.datastream_queue_name: "0"}


def uploads_logged() -> Counter[str]:
    """How many upload-log items each key has (every replayed file writes one)."""
    pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=get_settings().uploads_log_table)
    return Counter(item["filename"]["S"] for page in pages for item in page["Items"])


def test_an_interrupted_backfill_continues_where_it_stopped_without_redoing_files(aws_stack, database, tmp_path):
    bases = upload_exposures(5)
    settings = get_settings()
    objects = selected(list_objects(settings.bucket, "data/"), site="rep")
    run = {"bucket": settings.bucket, "prefix": "data/"}
    engine = get_engine()
    checked_out, most_at_once = 0, 0

    def on_checkout(*_: object) -> None:
        nonlocal checked_out, most_at_once
        checked_out += 1
        most_at_once = max(most_at_once, checked_out)

    def on_checkin(*_: object) -> None:
        nonlocal checked_out
        checked_out -= 1

    handled = 0

    def ctrl_c_after_six(n: int) -> None:
        nonlocal handled
        handled += n
        if handled >= 6 and handled - n < 6:
            signal.raise_signal(signal.SIGINT)  # as the operator's Ctrl-C

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)
    try:
        with pytest.raises(Interrupted) as stopped:
            replay_through_handler(objects, settings.bucket, settings.region, progress=False, workers=3,
                                   checkpoint=Checkpoint.open(tmp_path / "backfill.json", run),
                                   on_progress=ctrl_c_after_six)
        first_run = uploads_logged()
        resumed = Checkpoint.open(tmp_path / "backfill.json", run)
        counts = replay_through_handler(objects, settings.bucket, settings.region, progress=False, workers=3,
                                        checkpoint=resumed)
    finally:
        event.remove(engine, "checkout", on_checkout)
        event.remove(engine, "checkin", on_checkin)

    assert 6 <= stopped.value.done == sum(first_run.values()) < len(objects)
    assert "run the same command again" in describe_stop(stopped.value)
    assert str(tmp_path / "backfill.json") in describe_stop(stopped.value)
    assert resumed.resumed
    assert uploads_logged() == Counter({o.key: 1 for o in objects})  # each file replayed once, over both runs
    assert counts == Counter({"ingested": len(objects)})  # the summary covers both runs
    assert most_at_once <= 3  # one connection per worker at most
    with get_engine().connect() as conn:
        rows = conn.execute(select(db.images.c.base_filename, db.images.c.jpg_small_exists)).all()
    assert sorted(rows) == [(base, True) for base in bases]


def test_the_command_continues_from_a_saved_checkpoint_and_removes_it_when_done(
    aws_stack, database, tmp_path, monkeypatch, capsys
):
    upload_exposures(3)
    monkeypatch.chdir(tmp_path)  # the checkpoint goes under ./.archive
    args = build_parser().parse_args(["reprocess", "--site", "rep", "--workers", "2", "--no-progress"])
    settings = get_settings()
    objects = selected(list_objects(settings.bucket, "data/"), site="rep")
    # What an interrupted run of the same command left: the headers and one more file done.
    saved = checkpoint_for(args, settings.bucket, f"aws:{settings.region}")
    saved.through, saved.counts = position(objects[3]), Counter(ingested=4)
    saved.save()

    assert args.func(args) == 0

    out = capsys.readouterr().out
    assert f"resuming from {saved.path}: 4 of 9 objects already done" in out
    assert "replayed 5 objects" in out and "ingested  9" in out
    assert uploads_logged() == Counter({o.key: 1 for o in objects[4:]})
    assert not saved.path.exists()

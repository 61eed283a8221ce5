"""Idle end-to-end latency on the local stack: upload → row, upload → datastream message (issue 21).

One upload at a time, each waited for before the next, on an idle stack (moto's S3 notifies the ingest
queue, the worker polls it as Lambda's event source mapping does, the real ingest handler writes the row
in PostgreSQL and sends the datastream message). Each upload is a new exposure's header text, the file
that creates its row. Timed from just before the PUT to:
- the row: a connection outside the stack polls `images` for the base filename every 2 ms;
- the datastream message: a thread long-polls the datastream queue (as the datastreamer does) and notes
  when each exposure's message is received.

Two runs in the same stack, one after the other: the batching window in production until now (5 s, the
baseline) and the window chosen for latency (0, serverless.yml `ingestBatchWindowSeconds`); the local
worker is switched between them (archive/local/worker.py `batch_window_seconds`). Then the functions' own
`IngestLag` metric (S3 event time to row, archive/metrics.py) over the latency run, as the dashboard and
`python -m archive status` show it, against the lag measured from outside.

Targets (issue 21): upload → row p50 ≤ 1 s, upload → datastream p50 ≤ 1.5 s, at window 0.
BENCH_LATENCY_UPLOADS (default 40) and BENCH_LATENCY_BASELINE_UPLOADS (default 6) set the counts.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

import boto3
from sqlalchemy import select

import db
from archive import metrics
from archive.local.metrics_log import read_records
from archive.local.stack import LocalStack, StackOptions
from archive.settings import get_settings
from bench.bench_ingest import _header_texts
from handlers.observability import set_level

SITE = "lat"
ROW_TARGET_P50_S = 1.0
DATASTREAM_TARGET_P50_S = 1.5
TIMEOUT_S = 30.0


class DatastreamWatcher(threading.Thread):
    """Long-polls the datastream queue; `arrived[base_filename]` is when its message was received."""

    def __init__(self, sqs, url: str) -> None:
        super().__init__(daemon=True)
        self.sqs, self.url = sqs, url
        self.arrived: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=1).get("Messages", [])
            now = time.perf_counter()
            for message in messages:
                base = json.loads(message["Body"])["data"]["base_filename"]
                self.arrived.setdefault(base, now)
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


def percentile(values: list[float], p: float) -> float:
    value = metrics.percentile(values, p)
    assert value is not None
    return value


def one_upload(s3, bucket: str, conn, watcher: DatastreamWatcher, base: str, text: str) -> tuple[float, float]:
    """(upload → row, upload → datastream message) in seconds for one header text."""
    key = f"data/{base}-EX00.txt"
    exists = select(db.images.c.base_filename).where(db.images.c.base_filename == base)
    started = time.perf_counter()
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
    row = None
    while row is None:
        if conn.execute(exists).first() is not None:
            row = time.perf_counter() - started
        elif time.perf_counter() - started > TIMEOUT_S:
            raise RuntimeError(f"no row for {base} after {TIMEOUT_S} s")
        else:
            time.sleep(0.002)
    while base not in watcher.arrived:
        if time.perf_counter() - started > TIMEOUT_S:
            raise RuntimeError(f"no datastream message for {base} after {TIMEOUT_S} s")
        time.sleep(0.002)
    return row, watcher.arrived[base] - started


def run(stack: LocalStack, watcher: DatastreamWatcher, headers: list[tuple[str, str]],
        window: float) -> tuple[list[float], list[float]]:
    stack.worker.batch_window_seconds = window  # type: ignore[union-attr]
    settings = get_settings()
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=settings.region)
    engine = db.create_database_engine(stack.database.url, isolation_level="AUTOCOMMIT")  # type: ignore[union-attr]
    rows, datastream = [], []
    try:
        with engine.connect() as conn:
            for base, text in headers:
                row, message = one_upload(s3, settings.bucket, conn, watcher, base, text)
                rows.append(row)
                datastream.append(message)
                time.sleep(0.25)  # idle again before the next upload
    finally:
        engine.dispose()
    return rows, datastream


def line(label: str, values: list[float]) -> str:
    return (f"{label:<34} p50 {percentile(values, 50) * 1000:7.0f} ms   p95 {percentile(values, 95) * 1000:7.0f} ms"
            f"   max {max(values) * 1000:7.0f} ms   (n={len(values)})")


def main() -> None:
    uploads = int(os.environ.get("BENCH_LATENCY_UPLOADS", "40"))
    baseline_uploads = int(os.environ.get("BENCH_LATENCY_BASELINE_UPLOADS", "6"))
    set_level("WARNING")  # a JSON line per upload would bury the figures
    texts = _header_texts(uploads + baseline_uploads + 1)
    headers = [(f"{SITE}-kb001ms-20260301-{i:08d}", text) for i, (_, text) in enumerate(texts)]
    with tempfile.TemporaryDirectory(prefix="archive-bench-latency-") as tmp:
        options = StackOptions(port=0, state_dir=Path(tmp), settings_env={"LOG_LEVEL": "WARNING"},
                               write_env_file=False, notice=lambda message: None)
        with LocalStack(options) as stack:
            sqs = boto3.session.Session().client("sqs", endpoint_url=stack.endpoint_url,
                                                 region_name=get_settings().region)
            watcher = DatastreamWatcher(sqs, stack.provisioned.datastream_queue_url)
            watcher.start()
            try:
                run(stack, watcher, headers[:1], 0)  # warm: first engine, first imports, first thumbnails
                base_rows, base_ds = run(stack, watcher, headers[1:1 + baseline_uploads], 5)
                log_start = len(read_records(stack.metrics_log_path))
                rows, ds = run(stack, watcher, headers[1 + baseline_uploads:], 0)
                lag = metrics.summarize(read_records(stack.metrics_log_path)[log_start:])["ingest_lag_ms"]
            finally:
                watcher.stopping.set()
                watcher.join()
    print("idle, one upload at a time (a new exposure's header text each)")
    print(line("window 5 s (baseline) upload→row", base_rows))
    print(line("window 5 s (baseline) upload→ds", base_ds))
    print(line("window 0 upload→row", rows))
    print(line("window 0 upload→datastream", ds))
    print(f"ratio window 0 / window 5 s, p50: row {percentile(rows, 50) / percentile(base_rows, 50):.3f}x,"
          f" datastream {percentile(ds, 50) / percentile(base_ds, 50):.3f}x")
    print(f"IngestLag metric over the window-0 run (S3 event time → row, as the dashboard shows it): "
          f"p50 {lag['p50']:.0f} ms, p95 {lag['p95']:.0f} ms, max {lag['max']:.0f} ms (n={lag['count']})")
    row_ok = percentile(rows, 50) <= ROW_TARGET_P50_S
    ds_ok = percentile(ds, 50) <= DATASTREAM_TARGET_P50_S
    print(f"targets: upload→row p50 ≤ {ROW_TARGET_P50_S:.1f} s {'met' if row_ok else 'MISSED'}; "
          f"upload→datastream p50 ≤ {DATASTREAM_TARGET_P50_S:.1f} s {'met' if ds_ok else 'MISSED'}")

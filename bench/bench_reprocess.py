"""A backfill on the local stack: `reprocess` with parallel workers against one worker, same run.

Starts `python -m archive serve` (moto's server, the embedded PostgreSQL, migrations) in a scratch
state directory, with TTL sweeps hourly (each sweep scans every table in moto, which a growing uploads
log makes slower and slower) and the datastream queue drained as the datastreamer would (moto's
SendMessage slows down with the depth of an unread queue). It switches the bucket's notifications off
(so the live worker does not ingest the uploads first) and uploads BENCH_REPROCESS_OBJECTS objects
(default 4,000; BENCH_REPROCESS_OBJECTS=100000 for the issue's scale) as sites send them: per exposure its
header text, medium JPG, small FITS and large `.fits.bz2`. Then `python -m archive reprocess` runs
as the operator would run it, twice:
- baseline: one worker (how it ran before), over a tenth of the objects, at most 2,000 (another site);
- ours: BENCH_REPROCESS_WORKERS workers (default 4) over all the objects of the main site;
each printing its objects/s. Meanwhile the database's connections from reprocess are sampled, to
show they stay within the number of workers.

The JPGs are the simulator's (256×192, thumbnailed for real); the FITS files carry the exposure's
full header over a small image: with the header already stored, ingesting a FITS file only checks
that it exists, so its size does not change the work.
"""

from __future__ import annotations

import bz2
import concurrent.futures as cf
import datetime as dt
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import numpy as np
from astropy.io import fits
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from archive.local.simulate import make_exposure, stretched_jpg
from archive.local.stack import parse_env_file

ROOT = Path(__file__).resolve().parent.parent
POOL = 40  # distinct exposures rendered; uploads cycle through them under new names


def _exposure_files(pool: int) -> list[list[tuple[str, bytes]]]:
    """(suffix, body) of the four files of `pool` simulated exposures."""
    out = []
    for n in range(pool):
        exposure = make_exposure(s3_directory="data", site="tmp", instrument="kb001ms", night="20260101",
                                 counter=n + 1, data_type="EX", moment=dt.datetime(2026, 1, 1, 3, n % 60),
                                 rng=np.random.default_rng(n))
        small = io.BytesIO()
        fits.PrimaryHDU(exposure.image[:32, :32].astype(np.float32), exposure.header).writeto(small)
        out.append([
            ("EX00.txt", exposure.header.tostring(endcard=True, padding=False).encode("ascii")),
            ("EX10.jpg", stretched_jpg(exposure.image)),
            ("EX10.fits", small.getvalue()),
            ("EX00.fits.bz2", bz2.compress(small.getvalue())),
        ])
    return out


def upload(env: dict[str, str], site: str, exposures: int, pool: list[list[tuple[str, bytes]]]) -> int:
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = env["BUCKET_NAME"]

    def put(n: int) -> int:
        base = f"{site}-kb001ms-{20250101 + n // 10000}-{n % 10000 + 1:08d}"
        for suffix, body in pool[n % len(pool)]:
            s3.put_object(Bucket=bucket, Key=f"data/{base}-{suffix}", Body=body)
        return len(pool[n % len(pool)])

    with cf.ThreadPoolExecutor(8) as executor:
        return sum(executor.map(put, range(exposures)))


def _serve(state: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "DATABASE_URL"}
    env.update(PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING")
    # The TTL sweeper scans every table each interval; with a large uploads log those scans would take
    # moto's time from the backfill (nothing expires during the run: the log keeps items 48 h).
    process = subprocess.Popen(
        [sys.executable, "-m", "archive", "serve", "--port", "0", "--state-dir", str(state),
         "--sweep-interval", "3600", "--drain-datastream"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    env_file = state / "local.env"
    deadline = time.monotonic() + 120
    while not env_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"serve did not start: {process.communicate()[0][-2000:]}")
        time.sleep(0.2)
    return process, parse_env_file(env_file.read_text())


def _connections_sampler(url: str, since: float, stop: threading.Event, peak: list[int]) -> None:
    """Highest number of our application's connections opened after `since` (the reprocess run's)."""
    engine = create_engine(url, poolclass=NullPool)
    query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'photonranch-archive' "
                 "AND backend_start >= to_timestamp(:since)")
    while not stop.wait(0.25):
        with engine.connect() as conn:
            peak[0] = max(peak[0], conn.execute(query, {"since": since}).scalar())
    engine.dispose()


def reprocess(env_file: Path, site: str, workers: int, database_url: str, cwd: Path) -> tuple[float, int, str]:
    """Run the CLI; returns (objects/s, peak database connections, output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "DATABASE_URL"}
    env.update(PYTHONPATH=str(ROOT))
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_connections_sampler, args=(database_url, time.time() - 1, stop, peak))
    sampler.start()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "archive", "reprocess", "--env-file", str(env_file), "--site", site,
             "--workers", str(workers), "--no-progress"],
            cwd=cwd, env=env, capture_output=True, text=True,
        )
    finally:
        stop.set()
        sampler.join()
    if out.returncode != 0:
        raise RuntimeError(f"reprocess failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    rate = float(re.search(r"\(([\d.]+) objects/s\)", out.stdout).group(1))
    return rate, peak[0], out.stdout


def main() -> None:
    objects = int(os.environ.get("BENCH_REPROCESS_OBJECTS", "4000"))
    workers = int(os.environ.get("BENCH_REPROCESS_WORKERS", "4"))
    exposures = max(1, objects // 4)
    baseline_exposures = max(1, min(exposures // 10, 500))
    pool = _exposure_files(POOL)
    with tempfile.TemporaryDirectory(prefix="archive-bench-reprocess-") as tmp:
        state = Path(tmp) / "state"
        serve, env = _serve(state)
        try:
            s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                              aws_access_key_id="testing", aws_secret_access_key="testing")
            # No notifications: the uploads wait in the bucket for the backfill, as after an outage.
            s3.put_bucket_notification_configuration(Bucket=env["BUCKET_NAME"], NotificationConfiguration={})
            start = time.perf_counter()
            uploaded = upload(env, "bkf", exposures, pool) + upload(env, "bsl", baseline_exposures, pool)
            print(f"uploaded {uploaded} objects to the local stack in {time.perf_counter() - start:.0f} s", flush=True)
            database_url = env["DATABASE_URL"]
            env_file = state / "local.env"
            base_rate, base_peak, _ = reprocess(env_file, "bsl", 1, database_url, Path(tmp))
            rate, peak, output = reprocess(env_file, "bkf", workers, database_url, Path(tmp))
            print(f"reprocess of {baseline_exposures * 4} objects, 1 worker (baseline): {base_rate:7.1f} objects/s,"
                  f" peak {base_peak} database connections")
            print(f"reprocess of {exposures * 4} objects, {workers} workers:          {rate:7.1f} objects/s,"
                  f" peak {peak} database connections (bound: {workers})")
            print(f"  speed-up {rate / base_rate:.2f}x;  {exposures * 4 / rate / 60:.1f} min for the backfill")
            print("  " + "\n  ".join(line for line in output.splitlines() if line.startswith("  ")))
        finally:
            serve.send_signal(2)
            try:
                serve.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                serve.kill()

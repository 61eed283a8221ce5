"""Header ingestion throughput and Lambda cold start, each against a naive baseline in the same run.

Throughput: 200 realistic header texts ingested into a real local PostgreSQL in invocations of 10.
- baseline (how naive Lambda code does it): astropy parses each header into a full dict; a new
  engine per file; SELECT, then INSERT or UPDATE.
- ours: `archive.formats.headers` + the process's one engine + one atomic upsert per file.
The S3 GET and the upload-log write are left out of both: they cost the same either way.

Cold start: from spawning a fresh interpreter to the return of its first invocation (import
`handlers.ingest`, handle one header-text event: S3, DynamoDB and SQS on a local moto server, the
row in PostgreSQL), against the same with boto3, SQLAlchemy, psycopg2, astropy and Pillow imported
eagerly at module load. The interpreter's exit is not counted: Lambda keeps the process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import migrations
from archive.database import batch_scope, get_engine, transaction

ROOT = Path(__file__).resolve().parent.parent
HEADERS = 200
BATCH = 10


def _header_texts(count: int) -> list[tuple[str, str]]:
    """(base_filename, 80-column header text) pairs with ~120 cards each, like a site's headers."""
    from astropy.io import fits

    out = []
    for i in range(count):
        header = fits.Header()
        header["SIMPLE"] = True
        header["BITPIX"] = -32
        header["NAXIS"] = 2
        header["NAXIS1"] = 4800
        header["NAXIS2"] = 3200
        header["DATE-OBS"] = f"2022-06-29T03:{i % 60:02d}:45.123"
        header["RA"] = f"{i % 24:02d}:34:56.7"
        header["DEC"] = "-05:30:00"
        header["RAhrs"] = (i % 24) + 0.58
        header["FILTER"] = "ip"
        header["EXPTIME"] = (30.0, "[s] exposure time")
        header["AIRMASS"] = "N/A" if i % 17 == 0 else 1.234
        header["ALTITUDE"] = 54.3
        header["AZIMUTH"] = 181.2
        header["USERNAME"] = "Wayne Rosing"
        header["USERID"] = "google-oauth2|1234"
        header["SMARTSTK"] = "no"
        header["SSTKNUM"] = 3
        header["OBJECT"] = "M 42"
        for j in range(100):
            header[f"KEY{j:04d}"] = (j * 1.5, f"comment number {j}")
        header["COMMENT"] = "generated for the benchmark"
        header["HIERARCH LONG KEYWORD NAME"] = "hierarch value"
        out.append((f"sro-kb001ms-20220629-{i + 1:08d}", header.tostring()))
    return out


def _time_per_call(fn, items, repeat: int = 5) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, (time.perf_counter() - start) / len(items))
    return best


def bench_parse(texts: list[tuple[str, str]]) -> tuple[float, float]:
    from astropy.io import fits

    from archive.formats.headers import header_columns, parse_header

    def ours(text: str) -> None:
        header_columns(parse_header(text))

    def astropy_dict(text: str) -> None:
        header = fits.Header.fromstring(text)
        {key: str(value) for key, value in header.items()}

    only_text = [t for _, t in texts]
    return _time_per_call(ours, only_text), _time_per_call(astropy_dict, only_text)


def _naive_ingest(url: str, base: str, text: str) -> None:
    from astropy.io import fits
    from sqlalchemy import create_engine, select

    import db

    header = fits.Header.fromstring(text)
    values = {key: str(value) for key, value in header.items()}
    engine = create_engine(url)
    with engine.begin() as conn:
        found = conn.execute(select(db.images.c.image_id).where(db.images.c.base_filename == base)).first()
        fields = {
            "header": json.dumps(values),
            "filter_used": values.get("FILTER"),
            "capture_date": dt.datetime.fromisoformat(values["DATE-OBS"]),
            "sort_date": dt.datetime.fromisoformat(values["DATE-OBS"]),
        }
        if found:
            conn.execute(db.images.update().where(db.images.c.base_filename == base).values(**fields))
        else:
            conn.execute(db.images.insert().values(base_filename=base, site="sro", data_type="EX", **fields))
    engine.dispose()


def _our_ingest(base: str, text: str) -> None:
    """What the ingest core does with a header text once it has the bytes (see archive.ingest.pipeline)."""
    from archive.formats.filenames import parse_filename
    from archive.formats.headers import parse_header
    from archive.ingest.pipeline import Upload, store_header

    name = parse_filename(f"{base}-EX00.txt")
    upload = Upload("bench", f"data/{name.filename}", len(text), dt.datetime(2022, 6, 29, 4))
    header = parse_header(text)
    with transaction() as conn:
        store_header(conn, name, header, upload, from_fits=False)


def bench_throughput(url: str, texts: list[tuple[str, str]]) -> tuple[float, float]:
    from sqlalchemy import text as sql


    def truncate() -> None:
        with get_engine().begin() as conn:
            conn.execute(sql("TRUNCATE images"))

    def run(ingest) -> float:  # noqa: ANN001
        truncate()
        start = time.perf_counter()
        for first in range(0, len(texts), BATCH):  # one invocation per batch of 10
            with batch_scope():  # what handlers.ingest does around a batch; unused by the baseline
                for base, header_text in texts[first : first + BATCH]:
                    ingest(base, header_text)
        return len(texts) / (time.perf_counter() - start)

    naive = max(run(lambda base, t: _naive_ingest(url, base, t)) for _ in range(2))
    ours = max(run(_our_ingest) for _ in range(3))
    return ours, naive


COLD_CHILD = r"""
import json, os, sys, time
if os.environ["EAGER"] == "1":
    import boto3, sqlalchemy, psycopg2, astropy.io.fits, PIL.Image  # noqa
import handlers.ingest
response = handlers.ingest.handler(json.loads(os.environ["EVENT"]), None)
assert response == {"batchItemFailures": []}, response
print(json.dumps({"done_at": time.time(), "astropy": "astropy" in sys.modules, "PIL": "PIL" in sys.modules}))
"""


def bench_cold_start(url: str, texts: list[tuple[str, str]], runs: int = 7) -> dict[str, tuple[float, float, dict]]:
    from moto.server import ThreadedMotoServer

    from archive import aws
    from archive.local.postgres import free_port
    from archive.local.provision import provision_all
    from archive.settings import get_settings
    from tests.samples import s3_record, sqs_event

    port = free_port()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        DATABASE_URL=url,
        PYTHONPATH=str(ROOT),
    )
    saved = dict(os.environ)
    os.environ.update(env)
    get_settings.cache_clear()
    aws.clear_clients()
    try:
        provisioned = provision_all()
        bucket = get_settings().bucket
        # As deployed: the datastream queue URL is configured (no lookup), and our modules ship
        # compiled (serverless.yml packages .pyc; Lambda cannot write them at run time).
        env["DATASTREAM_QUEUE_URL"] = provisioned.datastream_queue_url
        import compileall

        for target in ("archive", "handlers"):
            compileall.compile_dir(ROOT / target, quiet=1)
        compileall.compile_file(ROOT / "db.py", quiet=1)
        results: dict[str, tuple[float, float, dict]] = {}
        samples: dict[str, list[float]] = {"lazy (ours)": [], "eager baseline": []}
        seen: dict[str, dict] = {}
        for run in range(runs):
            for label, eager in (("lazy (ours)", "0"), ("eager baseline", "1")):
                base, header_text = texts[run % len(texts)]
                key = f"data/{base}-EX00.txt"
                aws.client("s3").put_object(Bucket=bucket, Key=key, Body=header_text.encode())
                event = sqs_event({"Records": [s3_record(bucket, key, len(header_text))]})
                child_env = dict(env, EAGER=eager, EVENT=json.dumps(event))
                # From spawning the process to the handler's return: Lambda's init plus first invocation.
                # Interpreter teardown is left out; a Lambda process is reused, not exited.
                start = time.time()
                out = subprocess.run(
                    [sys.executable, "-c", COLD_CHILD], env=child_env, capture_output=True, text=True, cwd=ROOT
                )
                if out.returncode != 0:
                    raise RuntimeError(out.stderr[-2000:])
                seen[label] = json.loads(out.stdout.strip().splitlines()[-1])
                samples[label].append(seen[label]["done_at"] - start)
        for label, walls in samples.items():
            results[label] = (statistics.median(walls), min(walls), seen[label])
        return results
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
        aws.clear_clients()
        server.stop()


def main() -> None:
    import db
    from archive.local.postgres import LocalPostgres
    from archive.settings import get_settings

    texts = _header_texts(HEADERS)
    ours_parse, astropy_parse = bench_parse(texts)
    print(f"header parse, {len(texts)} headers of ~120 cards (best of 5, per header):")
    print(f"  ours (archive.formats.headers):        {ours_parse * 1e6:9.1f} µs")
    print(f"  astropy Header.fromstring+dict: {astropy_parse * 1e6:9.1f} µs")
    print(f"  speed-up:                       {astropy_parse / ours_parse:9.1f}x")

    with tempfile.TemporaryDirectory(prefix="archive-bench-") as tmp:
        url = os.environ.get("DATABASE_URL")
        cluster = None
        if not url:
            cluster = LocalPostgres(Path(tmp) / "pg", durable=False)
            url = cluster.start()
        os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
        migrations.upgrade(url)
        try:
            ours_rate, naive_rate = bench_throughput(url, texts)
            ratio = ours_rate / naive_rate
            print(f"\nheader ingestion into PostgreSQL, invocations of {BATCH} files:")
            print(f"  ours (one engine, atomic upsert):           {ours_rate:8.1f} exposures/s")
            print(f"  baseline (astropy, engine per file, select): {naive_rate:8.1f} exposures/s")
            print(f"  ratio: {ratio:.1f}x   target >= 10x: {'PASS' if ratio >= 10 else 'MISS'}")

            cold = bench_cold_start(url, texts)
            lazy, eager = cold["lazy (ours)"], cold["eager baseline"]
            print("\ncold start: spawn, import handlers.ingest, handle one header-text event (median of 7):")
            for label, (median, best, seen) in cold.items():
                print(f"  {label:16s} {median * 1000:7.0f} ms (best {best * 1000:.0f} ms)"
                      f"  astropy loaded={seen['astropy']} Pillow loaded={seen['PIL']}")
            ratio = lazy[0] / eager[0]
            print(f"  ratio: {ratio:.2f}x   target <= 0.6x: {'PASS' if ratio <= 0.6 else 'MISS'}")
        finally:
            db.dispose_engines()
            if cluster:
                cluster.stop()

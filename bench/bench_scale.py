"""The table at production size: photonranch-api's reads and our ingestion, with and without 0003.

Loads BENCH_SCALE_ROWS rows (default 1,000,000) into a scratch database of a real PostgreSQL (a
throwaway cluster, or a database created beside DATABASE_URL's), at migration 0002, that is without
the frontend indexes. Then, in the same run on the same rows:

1. every read photonranch-api makes (bench/frontend_queries.py: the same statements through
   SQLAlchemy, rows fetched) is timed without the indexes, p50 and p95;
2. header ingestion and the file-flag upserts that follow it are timed (the ingest core's own
   functions, invocations of 10 sharing a connection, as the handler does);
3. migration 0003 builds the indexes, CONCURRENTLY since the table has rows (its time is printed);
4. the reads and the ingestion are timed again; ingestion alternates between the two states once
   more (downgrade, upgrade) and each state keeps its best round, to damp a shared machine's noise.
The reads' results must be the same in both states; the run stops if they are not.

The rows: 12 sites of very different sizes (the largest a third of the table), five years of nights
in upload order, 11 filters and 400 users with skewed frequencies, nine exposure times, 95 % with a
medium JPG. Headers are short JSON objects: in production a whole header is TOASTed out of the row,
so a short inline one keeps the heap about as wide as production's (a scan reads as many pages).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Connection

from bench import frontend_queries as fq

BEFORE = "0002_dated_by_header"
SITES = ("sro", "mrc", "saf", "tst", "eco", "aro", "ckp", "dht", "lsc", "wmd", "mrk", "rfm")
FILTERS = ("ip", "rp", "gp", "zs", "w", "Lum", "Ha", "O3", "S2", "up", "air")
EXPOSURES = (1, 5, 10, 30, 60, 120, 180, 300, 600)
FIRST_NIGHT = dt.datetime(2021, 1, 1)
NIGHTS = 5 * 365 + 1
LATEST_N = 50  # the web app's page of latest images

# One INSERT … SELECT over generate_series: the server makes the rows, nothing crosses the wire.
# Rows come in capture order (as uploads do); skew comes from powers of random().
LOAD_ROWS = """
INSERT INTO images (base_filename, data_type, site, capture_date, sort_date, right_ascension, declination,
    altitude, azimuth, filter_used, airmass, exposure_time, username, user_id, header,
    fits_01_exists, fits_10_exists, jpg_medium_exists, jpg_small_exists, dated_by_header)
SELECT g.site || '-kb001ms-' || to_char(g.t, 'YYYYMMDD') || '-' || lpad(g.i::text, 8, '0'),
    g.data_type, g.site, g.t, g.t, g.ra, g.dec, g.alt, g.az, g.filter_used, g.airmass, g.exptime,
    'User ' || g.u, 'google-oauth2|' || (100000 + g.u),
    json_build_object('DATE-OBS', to_char(g.t, 'YYYY-MM-DD"T"HH24:MI:SS.MS'), 'EXPTIME', g.exptime::text,
        'FILTER', g.filter_used, 'USERID', 'google-oauth2|' || (100000 + g.u), 'SITEID', g.site,
        'OBJECT', 'M ' || (g.i % 110), 'SMARTSTK', 'no', 'SSTKNUM', 'no')::text,
    random() < 0.8, random() < 0.9, g.jpg, g.jpg, true
FROM (
    SELECT i,
        (:sites)[1 + floor(power(random(), 2.2) * :n_sites)::int] AS site,
        :first_night + (i::float8 / :rows * :nights) * interval '1 day'
            + (1 + random() * 10) * interval '1 hour' AS t,
        (ARRAY['EX', 'EX', 'EX', 'EX', 'EX', 'EX', 'EX', 'EX', 'EP', 'EF'])[1 + floor(random() * 10)::int] AS data_type,
        (:filters)[1 + floor(power(random(), 1.6) * :n_filters)::int] AS filter_used,
        (:exposures)[1 + floor(random() * :n_exposures)::int]::float8 AS exptime,
        floor(power(random(), 3) * 400)::int AS u,
        random() * 24 AS ra, random() * 150 - 60 AS dec, 20 + random() * 70 AS alt, random() * 360 AS az,
        1 + random() AS airmass, random() < 0.95 AS jpg
    FROM generate_series(1, :rows) AS i
) AS g
"""


@dataclass
class Case:
    """One read, run with the parameters of repetition i; `already_indexed` is outside the targets."""

    label: str
    run: Callable[[Connection, int], Any]
    already_indexed: bool = False
    without: list[float] = field(default_factory=list)
    with_: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    answers: dict[int, Any] = field(default_factory=dict)


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# --------------------------------------------------------------------------------------------------
# The database.


@contextlib.contextmanager
def scratch_database(server_url: str | None) -> Iterator[str]:
    """A new database beside `server_url` (or in a throwaway cluster), dropped afterwards."""
    import db
    from archive.local.postgres import LocalPostgres

    with tempfile.TemporaryDirectory(prefix="archive-bench-scale-") as tmp:
        cluster = None
        if not server_url:
            cluster = LocalPostgres(Path(tmp) / "pg", durable=False)
            server_url = cluster.start()
        name = f"bench_scale_{uuid.uuid4().hex[:8]}"
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
            finally:
                db.dispose_engines()
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()
            if cluster:
                cluster.stop()


def load_rows(url: str, rows: int, seed: float = 0.42) -> float:
    """Fill `images` with `rows` generated exposures, vacuum and analyse; returns the seconds taken."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    start = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(text("SELECT setseed(:seed)"), {"seed": seed})
        conn.execute(
            text(LOAD_ROWS),
            dict(rows=rows, sites=list(SITES), n_sites=len(SITES), filters=list(FILTERS), n_filters=len(FILTERS),
                 exposures=list(EXPOSURES), n_exposures=len(EXPOSURES), first_night=FIRST_NIGHT, nights=NIGHTS),
        )
        conn.execute(text("VACUUM ANALYZE images"))  # a long-lived table is vacuumed and analysed
    engine.dispose()
    return time.perf_counter() - start


def table_sizes(conn: Connection) -> tuple[int, int]:
    """(heap bytes, bytes of all indexes) of `images`."""
    return tuple(conn.execute(text("SELECT pg_table_size('images'), pg_indexes_size('images')")).one())


# --------------------------------------------------------------------------------------------------
# The reads, with parameters drawn from the loaded rows.


def _night(moment: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(moment.year, moment.month, moment.day)
    return start, start + dt.timedelta(days=1)


def build_cases(conn: Connection, repeats: int, seed: int = 7) -> list[Case]:
    rng = random.Random(seed)
    top = conn.execute(text("SELECT max(image_id) FROM images")).scalar()
    # Rows drawn uniformly: a busy site or user comes up as often as it uploads.
    drawn = conn.execute(
        text("SELECT site, user_id, username, base_filename, capture_date FROM images WHERE image_id = ANY(:ids)"),
        {"ids": rng.sample(range(1, top + 1), min(top, 4 * repeats + 50))},
    ).all()
    # A typical user for the unbounded all-time search (the median by row count, not the busiest).
    users = conn.execute(text("SELECT user_id FROM images GROUP BY user_id ORDER BY count(*)")).scalars().all()
    typical_users = users[len(users) // 4 : 3 * len(users) // 4] or users
    picks = [drawn[i % len(drawn)] for i in range(repeats)]

    def when(i: int) -> dt.datetime:
        return picks[i].capture_date

    def day(moment: dt.datetime) -> str:
        return moment.strftime("%Y-%m-%d")

    def search(make: Callable[[int], dict[str, str]]) -> Callable[[Connection, int], Any]:
        return lambda c, i: fq.fetch(c, fq.filtered_images_query(make(i)))

    return [
        Case(f"latest {LATEST_N} of a site", lambda c, i: fq.fetch(c, fq.latest_site_images_query(
            picks[i].site, LATEST_N))),
        Case(f"latest {LATEST_N} of a site, one user", lambda c, i: fq.fetch(c, fq.latest_site_images_query(
            picks[i].site, LATEST_N, picks[i].user_id))),
        Case(f"latest image of a site (x {len(SITES)} sites per page)",
             lambda c, i: list(fq.latest_image_all_sites(c, [SITES[i % len(SITES)]]).values())),
        Case("files of a site in one night (small FITS)", lambda c, i: fq.fetch(c, fq.files_within_date_range_query(
            picks[i].site, *_night(when(i)), "small"))),
        Case("search: site + one night", search(lambda i: {
            "site": picks[i].site, "start_date": day(when(i)), "end_date": day(when(i) + dt.timedelta(days=1))})),
        Case("search: all sites, one night", search(lambda i: {
            "start_date": day(when(i)), "end_date": day(when(i) + dt.timedelta(days=1))})),
        Case("search: site + filter + exptime 30-300 s + 30 days", search(lambda i: {
            "site": picks[i].site, "filter": FILTERS[i % 4], "exposure_time_min": "30", "exposure_time_max": "300",
            "start_date": day(when(i) - dt.timedelta(days=30)), "end_date": day(when(i))})),
        Case("search: username + 7 days", search(lambda i: {
            "username": picks[i].username, "start_date": day(when(i) - dt.timedelta(days=7)),
            "end_date": day(when(i))})),
        Case("search: user_id + 30 days", search(lambda i: {
            "user_id": picks[i].user_id, "start_date": day(when(i) - dt.timedelta(days=30)),
            "end_date": day(when(i))})),
        Case("search: user_id, all time (a typical user)", search(lambda i: {
            "user_id": typical_users[(i * 7919) % len(typical_users)]})),
        Case("search: filename LIKE a night's prefix", search(lambda i: {
            "filename": picks[i].base_filename.rsplit("-", 1)[0] + "-%"})),
        Case("header by base filename", lambda c, i: fq.fetch(c, fq.fits_header_query(picks[i].base_filename)),
             already_indexed=True),
    ]


def _answer(rows: list[Any]) -> Any:
    """What must not change when indexes appear (ties in sort_date may reorder equal rows)."""
    if rows and hasattr(rows[0], "image_id"):
        return sorted((r.sort_date, r.image_id) for r in rows)
    return [tuple(r) for r in rows]


def time_reads(url: str, cases: list[Case], repeats: int, indexed: bool) -> None:
    engine = create_engine(url)
    with engine.connect() as conn:
        for case in cases:  # warm the caches once, as a server that has been up
            case.run(conn, 0)
            conn.rollback()
        for i in range(repeats):
            for case in cases:  # interleaved, so a noisy moment spreads over every read
                start = time.perf_counter()
                rows = case.run(conn, i)
                elapsed = time.perf_counter() - start
                conn.rollback()
                (case.with_ if indexed else case.without).append(elapsed)
                answer = _answer(list(rows))
                if indexed:
                    case.rows.append(len(rows))
                    if i in case.answers and case.answers[i] != answer:
                        raise AssertionError(f"{case.label}: different rows with the indexes (repetition {i})")
                else:
                    case.answers[i] = answer
    engine.dispose()


# --------------------------------------------------------------------------------------------------
# Ingestion: the core's header upsert and the flag upserts of the files that follow it.

INGEST_BATCH = 10


@dataclass
class IngestRates:
    headers: list[float] = field(default_factory=list)  # header upserts per second, per round
    flags: list[float] = field(default_factory=list)  # file-flag transactions per second, per round


def time_ingestion(exposures: int, round_no: int, texts: list[tuple[str, str]], rates: IngestRates) -> None:
    """Ingest `exposures` new exposures: their header texts, then their four files' flags."""
    import db
    from archive.filenames import parse_filename
    from archive.headers import parse_header
    from archive.ingest import Upload, store_header

    names = [parse_filename(f"bch-kb001ms-20260101-{round_no:02d}{i:06d}-EX00.txt") for i in range(exposures)]
    headers = [parse_header(texts[i % len(texts)][1]) for i in range(exposures)]
    upload_time = dt.datetime(2026, 1, 1, 4)

    def header(i: int) -> None:
        upload = Upload("bench", f"data/{names[i].filename}", 1, upload_time)
        with db.transaction() as conn:
            store_header(conn, names[i], headers[i], upload, only_if_missing=False)

    def flag_files(i: int) -> None:
        # What the small FITS, the large FITS, the medium JPG (with its thumbnail) and the
        # thumbnail's own notification each write.
        for flags in (("fits_10_exists",), ("fits_01_exists",), ("jpg_medium_exists", "jpg_small_exists"),
                      ("jpg_small_exists",)):
            with db.transaction() as conn:
                for flag in flags:
                    db.mark_file(conn, base_filename=names[i].base_filename, site="bch", data_type="EX", flag=flag,
                                 upload_time=upload_time)

    def run(step: Callable[[int], None]) -> float:
        start = time.perf_counter()
        for first in range(0, exposures, INGEST_BATCH):
            with db.batch_scope():
                for i in range(first, min(first + INGEST_BATCH, exposures)):
                    step(i)
        return time.perf_counter() - start

    rates.headers.append(exposures / run(header))
    rates.flags.append(4 * exposures / run(flag_files))


# --------------------------------------------------------------------------------------------------


@dataclass
class ScaleResult:
    rows: int
    load_seconds: float
    heap_bytes: int
    index_bytes_before: int
    index_bytes_after: int
    build_seconds: float
    cases: list[Case]
    without: IngestRates
    with_: IngestRates


def run(server_url: str | None, rows: int, repeats_without: int, repeats_with: int, ingest_exposures: int,
        ingest_rounds: int = 2) -> ScaleResult:
    import db
    from archive.settings import get_settings
    from bench.bench_ingest import _header_texts

    texts = _header_texts(50)
    saved_url = os.environ.get("DATABASE_URL")
    with scratch_database(server_url) as url:
        os.environ["DATABASE_URL"] = url  # the ingest core's engine
        get_settings.cache_clear()
        try:
            db.migrate(url, BEFORE)
            load_seconds = load_rows(url, rows)
            engine = create_engine(url)
            with engine.connect() as conn:
                heap_bytes, index_before = table_sizes(conn)
                cases = build_cases(conn, max(repeats_without, repeats_with))
            without, with_ = IngestRates(), IngestRates()
            time_ingestion(min(ingest_exposures, 100), 0, texts, IngestRates())  # warm-up, not counted
            time_reads(url, cases, repeats_without, indexed=False)
            round_no = 0
            build_seconds = 0.0
            for ingest_round in range(ingest_rounds):
                if ingest_round:
                    db.downgrade(url, BEFORE)
                time_ingestion(ingest_exposures, round_no := round_no + 1, texts, without)
                start = time.perf_counter()
                db.migrate(url)
                build_seconds = build_seconds or time.perf_counter() - start
                time_ingestion(ingest_exposures, round_no := round_no + 1, texts, with_)
            with engine.connect() as conn:
                _, index_after = table_sizes(conn)
            time_reads(url, cases, repeats_with, indexed=True)
            engine.dispose()
        finally:
            db.dispose_engines()
            if saved_url is None:
                os.environ.pop("DATABASE_URL", None)
            else:
                os.environ["DATABASE_URL"] = saved_url
            get_settings.cache_clear()
    return ScaleResult(rows, load_seconds, heap_bytes, index_before, index_after, build_seconds, cases, without, with_)


def report(result: ScaleResult) -> str:
    ms = 1000
    lines = [
        f"{result.rows:,} rows loaded in {result.load_seconds:.1f} s; heap {result.heap_bytes / 2**20:.0f} MiB, "
        f"indexes {result.index_bytes_before / 2**20:.0f} MiB before 0003, {result.index_bytes_after / 2**20:.0f} MiB "
        f"after (built CONCURRENTLY in {result.build_seconds:.1f} s)",
        "",
        f"{'photonranch-api read':52s} {'rows':>6s} {'without p50':>11s} {'p95':>8s} {'with p50':>9s} {'p95':>7s}"
        f" {'speed-up':>9s}  target",
    ]
    misses = 0
    for case in result.cases:
        before, after = statistics.median(case.without), statistics.median(case.with_)
        p95 = percentile(case.with_, 0.95)
        speedup = before / after
        if case.already_indexed:
            verdict = "unique key since 0001"
        else:
            ok = speedup >= 50 and p95 <= 0.010
            misses += not ok
            verdict = "PASS" if ok else "MISS (" + ", ".join(
                [*(["< 50x"] if speedup < 50 else []), *(["p95 > 10 ms"] if p95 > 0.010 else [])]) + ")"
        lines.append(
            f"{case.label:52s} {statistics.median(case.rows):6.0f} {before * ms:9.1f}ms"
            f" {percentile(case.without, 0.95) * ms:6.1f}ms {after * ms:7.2f}ms {p95 * ms:5.2f}ms {speedup:8.0f}x"
            f"  {verdict}"
        )
    lines.append(f"({len(result.cases[0].without)} timed runs of each read without the indexes, "
                 f"{len(result.cases[0].with_)} with; rows fetched through SQLAlchemy)")
    h0, h1 = max(result.without.headers), max(result.with_.headers)
    f0, f1 = max(result.without.flags), max(result.with_.flags)
    cost_h, cost_f = 1 - h1 / h0, 1 - f1 / f0
    lines += [
        "",
        f"ingestion into the {result.rows:,}-row table (best of {len(result.without.headers)} rounds each):",
        f"  header upserts     without {h0:7.0f}/s   with {h1:7.0f}/s   cost {cost_h:+6.1%}"
        f"   target <= 10%: {'PASS' if cost_h <= 0.10 else 'MISS'}",
        f"  file-flag upserts  without {f0:7.0f}/s   with {f1:7.0f}/s   cost {cost_f:+6.1%}"
        f"   target <= 10%: {'PASS' if cost_f <= 0.10 else 'MISS'}",
        "",
        f"reads meeting the targets (>= 50x and p95 <= 10 ms): "
        f"{sum(1 for c in result.cases if not c.already_indexed) - misses} of "
        f"{sum(1 for c in result.cases if not c.already_indexed)}",
    ]
    return "\n".join(lines)


def main() -> None:
    rows = int(os.environ.get("BENCH_SCALE_ROWS", "1000000"))
    print(f"loading {rows:,} rows (BENCH_SCALE_ROWS) …", flush=True)
    result = run(os.environ.get("DATABASE_URL"), rows, repeats_without=10, repeats_with=100, ingest_exposures=1000,
                 ingest_rounds=3)
    print(report(result))

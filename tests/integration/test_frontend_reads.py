"""photonranch-api's reads are served by migration 0003's indexes; the scale benchmark still runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.sql import Select

import migrations
from bench import bench_scale
from bench import frontend_queries as fq

NIGHT = dt.datetime(2023, 5, 4)


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


READS: dict[str, tuple[Select, bool]] = {  # name -> (statement, has ORDER BY … LIMIT)
    "latest of a site": (fq.latest_site_images_query("sro", 50), True),
    "latest of a site, one user": (fq.latest_site_images_query("sro", 50, "google-oauth2|100003"), True),
    "latest image of a site (all-sites loop)": (fq.latest_image_of_site_query("mrc"), True),
    "files of a site in a night": (fq.files_within_date_range_query("sro", NIGHT, NIGHT + dt.timedelta(days=1),
                                                                    "large"), False),
    "search: dates": (fq.filtered_images_query({"start_date": "2023-05-04", "end_date": "2023-05-05"}), False),
    "search: site, filter, exposure, dates": (fq.filtered_images_query({
        "site": "saf", "filter": "ip", "exposure_time_min": "30", "exposure_time_max": "300",
        "start_date": "2023-04-04", "end_date": "2023-05-04"}), False),
    "search: user_id": (fq.filtered_images_query({"user_id": "google-oauth2|100003"}), False),
    "search: username and dates": (fq.filtered_images_query({
        "username": "User 3", "start_date": "2023-04-27", "end_date": "2023-05-04"}), False),
    "search: filename prefix": (fq.filtered_images_query({"filename": "sro-kb001ms-20230504-%"}), False),
    "header": (fq.fits_header_query("sro-kb001ms-20230504-00000001"), False),
}


@pytest.fixture(scope="module")
def populated(database_url: str) -> Iterator[str]:
    """A few thousand generated exposures (the benchmark's generator) in a scratch database at head."""
    with bench_scale.scratch_database(database_url) as url:
        migrations.upgrade(url)
        bench_scale.load_rows(url, 3000)
        yield url


@pytest.mark.parametrize("name", READS)
def test_each_read_is_answered_from_an_index_and_the_latest_images_need_no_sort(populated, name):
    statement, ordered_with_limit = READS[name]
    engine = create_engine(populated)
    with engine.connect() as conn:
        # A small table is cheaper to scan (and a small result to sort): discourage both, so a read no
        # index can serve, or whose order no index gives, still shows a Seq Scan or a Sort.
        conn.execute(text("SET enable_seqscan = off"))
        if ordered_with_limit:
            conn.execute(text("SET enable_sort = off"))
            conn.execute(text("SET enable_bitmapscan = off"))
        compiled = statement.compile(conn)
        plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar()[0]["Plan"]
    engine.dispose()

    kinds = [node["Node Type"] for node in plan_nodes(plan)]
    assert "Seq Scan" not in kinds, kinds
    if ordered_with_limit:
        assert "Sort" not in kinds and "Incremental Sort" not in kinds, kinds


def test_the_scale_benchmark_runs_small_and_the_indexes_change_no_answer(database_url):
    # run() raises if any read returns different rows with the indexes than without them.
    result = bench_scale.run(database_url, rows=2000, repeats_without=2, repeats_with=3, ingest_exposures=20)

    report = bench_scale.report(result)
    assert all(case.label in report for case in result.cases)
    assert all(len(case.without) == 2 and len(case.with_) == len(case.server) == 3 for case in result.cases)
    assert sum(case.rows[0] for case in result.cases) > 0
    assert result.index_bytes_after > result.index_bytes_before
    assert 4_000 <= result.header_bytes[0] <= 4_800, "headers of production's size, so reads pay for them"
    assert {state: times.exposures for state, times in result.ingestion.items()} == {
        bench_scale.WITHOUT: 20, bench_scale.WITH: 20}

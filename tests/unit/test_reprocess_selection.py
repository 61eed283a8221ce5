"""`reprocess` chooses what to replay and `status` tells what happened: the pure parts, no AWS or database."""

from __future__ import annotations

import datetime as dt

import pytest

from archive.cli.reprocess import StoredObject, parse_since, selected
from archive.cli.status import counts_by_site, format_table, recent, status_table

UTC = dt.UTC


def obj(key: str, day: int = 5) -> StoredObject:
    return StoredObject(key, 10, dt.datetime(2026, 1, day, tzinfo=UTC), '"etag"')


def test_selection_filters_by_site_and_upload_date_and_puts_headers_first():
    objects = [
        obj("data/tst-cam-20260101-00000001-EX10.jpg"),
        obj("data/tst-cam-20260101-00000001-EX00.txt"),
        obj("data/abc-cam-20260101-00000001-EX00.txt"),
        obj("data/tst-cam-20251231-00000009-EX00.txt", day=1),
    ]

    chosen = selected(objects, site="tst", since=parse_since("2026-01-02"))

    assert [o.key for o in chosen] == [
        "data/tst-cam-20260101-00000001-EX00.txt",
        "data/tst-cam-20260101-00000001-EX10.jpg",
    ]


def test_since_must_be_a_date():
    assert parse_since("2026-02-03") == dt.datetime(2026, 2, 3, tzinfo=UTC)
    with pytest.raises(Exception, match="YYYY-MM-DD"):
        parse_since("yesterday")


def test_status_counts_uploads_per_site_and_status():
    items = [
        {"site": "tst", "status": "ingested"},
        {"site": "tst", "status": "ingested"},
        {"site": "tst", "status": "rejected"},
        {"site": "unknown_site", "status": "rejected"},
    ]

    table = status_table(counts_by_site(items)).splitlines()

    assert table[0].split() == ["site", "ingested", "ignored", "rejected", "failed", "total"]
    assert table[2].split() == ["tst", "2", "0", "1", "0", "3"]
    assert table[3].split() == ["unknown_site", "0", "0", "1", "0", "1"]


def test_recent_lists_the_newest_uploads_first():
    items = [{"upload_timestamp_s": t, "upload_id": f"{t}#x", "filename": str(t)} for t in (5, 9, 1, 7)]
    assert [i["filename"] for i in recent(items, 2)] == ["9", "7"]


def test_format_table_aligns_columns():
    lines = format_table(["name", "n"], [("a", 10), ("bbb", 2)]).splitlines()
    assert lines == ["name   n", "----  --", "a     10", "bbb    2"]

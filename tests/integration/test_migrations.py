"""Alembic migrations create the table, and adopt the production table without losing rows."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import create_engine, inspect, text

import db
import migrations


@pytest.fixture
def scratch_database(database_url: str):
    """A fresh, empty database in the same cluster."""
    name = f"scratch_{uuid.uuid4().hex[:10]}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = database_url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    db.dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


LEGACY_TABLE = """
CREATE TABLE images (
    image_id serial PRIMARY KEY,
    base_filename varchar(29),
    data_type varchar,
    site varchar(6),
    capture_date timestamp,
    sort_date timestamp,
    right_ascension double precision,
    declination double precision,
    altitude double precision,
    azimuth double precision,
    filter_used varchar,
    airmass double precision,
    exposure_time double precision,
    username varchar,
    user_id varchar,
    header varchar,
    fits_01_exists boolean,
    fits_10_exists boolean,
    jpg_medium_exists boolean,
    jpg_small_exists boolean
)
"""


def test_migrate_creates_the_table_with_the_contract_columns(scratch_database):
    migrations.upgrade(scratch_database)
    migrations.upgrade(scratch_database)  # a second run changes nothing
    engine = create_engine(scratch_database)
    columns = {c["name"]: c for c in inspect(engine).get_columns("images")}
    assert set(columns) == {c.name for c in db.images.columns}
    assert not columns["capture_date"]["nullable"] and not columns["jpg_small_exists"]["nullable"]
    engine.dispose()


def test_migrate_adopts_an_existing_production_table_without_losing_rows(scratch_database):
    engine = create_engine(scratch_database)
    with engine.begin() as conn:
        conn.execute(text(LEGACY_TABLE))
        for i in range(3):
            conn.execute(
                text(
                    "INSERT INTO images (base_filename, site, data_type, capture_date, sort_date, header,"
                    " jpg_medium_exists) VALUES (:b, 'sro', 'EX', :d, :d, '{}', :m)"
                ),
                {"b": f"sro-kb001ms-20220629-0000000{i}", "d": dt.datetime(2022, 6, 29), "m": i == 0 or None},
            )
    migrations.upgrade(scratch_database)
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT * FROM images ORDER BY image_id")).mappings().all()
        assert [r["base_filename"] for r in rows] == [f"sro-kb001ms-20220629-0000000{i}" for i in range(3)]
        assert [r["jpg_medium_exists"] for r in rows] == [True, False, False]  # NULL flags became false
        # The upserts' ON CONFLICT (base_filename) now works on the adopted table.
        db.mark_file(conn, base_filename=rows[1]["base_filename"], site="sro", data_type="EX",
                     flag="fits_10_exists", upload_time=dt.datetime(2022, 6, 30))
        assert conn.execute(text("SELECT count(*) FROM images")).scalar() == 3
        assert db.get_row(conn, rows[1]["base_filename"])["fits_10_exists"] is True
    engine.dispose()


def test_adoption_refuses_duplicate_base_filenames_with_a_clear_error(scratch_database):
    engine = create_engine(scratch_database)
    with engine.begin() as conn:
        conn.execute(text(LEGACY_TABLE))
        for _ in range(2):
            conn.execute(text("INSERT INTO images (base_filename, capture_date, sort_date) "
                              "VALUES ('sro-kb001ms-20220629-00000001', now(), now())"))
    with pytest.raises(RuntimeError, match="base_filename has duplicates"):
        migrations.upgrade(scratch_database)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM images")).scalar() == 2
    engine.dispose()

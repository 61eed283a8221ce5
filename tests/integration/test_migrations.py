"""Alembic migrations create the table, and adopt the production table without losing rows."""

from __future__ import annotations

import datetime as dt
import importlib.util
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

import db
import migrations
from archive.cli import main

_spec = importlib.util.spec_from_file_location(
    "frontend_indexes", Path(migrations.__file__).with_name("versions") / "0004_frontend_indexes.py"
)
INDEX_MIGRATION = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(INDEX_MIGRATION)


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


def test_the_migrate_command_stops_at_the_revision_asked_and_goes_on_to_head_by_default(scratch_database, capsys):
    assert main(["migrate", "--database-url", scratch_database, "--revision", "0003"]) == 0
    assert migrations.current_revision(scratch_database) == migrations.BEFORE_FRONTEND_INDEXES
    assert capsys.readouterr().out.strip() == f"images table is at migration {migrations.BEFORE_FRONTEND_INDEXES}"
    engine = create_engine(scratch_database)
    assert not {i["name"] for i in inspect(engine).get_indexes("images")} & set(INDEX_MIGRATION.INDEXES)
    engine.dispose()

    assert main(["migrate", "--database-url", scratch_database]) == 0
    assert migrations.current_revision(scratch_database) == INDEX_MIGRATION.revision
    engine = create_engine(scratch_database)
    assert set(INDEX_MIGRATION.INDEXES) <= {i["name"] for i in inspect(engine).get_indexes("images")}
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


# --- 0004: the indexes photonranch-api's reads need ------------------------------------------------

FRONTEND_INDEXES = {name: list(columns) for name, (columns, _) in INDEX_MIGRATION.INDEXES.items()}
BEFORE_INDEXES = migrations.BEFORE_FRONTEND_INDEXES


def index_state(engine) -> dict[str, tuple[list[str], bool, bool]]:
    """Every index on images: name -> (columns, valid, unique)."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT c.relname, array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(num, pos)"
            "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num ORDER BY k.pos),"
            " i.indisvalid, i.indisunique"
            " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'images'::regclass"
        )).all()
    return {name: (list(columns), valid, unique) for name, columns, valid, unique in rows}


def frontend_indexes_built(engine) -> bool:
    state = index_state(engine)
    return all(state.get(name) == (columns, True, False) for name, columns in FRONTEND_INDEXES.items())


def legacy_table_with_rows(url: str, rows: int = 50) -> None:
    """The production table as it was before migrations, holding some exposures."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(LEGACY_TABLE))
        conn.execute(text(
            "INSERT INTO images (base_filename, site, user_id, capture_date, sort_date, jpg_medium_exists) "
            "SELECT 'sro-kb001ms-20220629-' || lpad(i::text, 8, '0'), 'sro', 'u' || (i % 3), "
            "timestamp '2022-06-29' + i * interval '1 minute', timestamp '2022-06-29' + i * interval '1 minute', "
            "i % 4 <> 0 FROM generate_series(1, :n) AS i"
        ), {"n": rows})
    engine.dispose()


def test_a_fresh_table_gets_every_frontend_index(scratch_database):
    migrations.upgrade(scratch_database)
    engine = create_engine(scratch_database)

    assert frontend_indexes_built(engine)
    engine.dispose()


def test_adopting_the_production_table_builds_the_indexes_concurrently_while_ingestion_writes(scratch_database):
    legacy_table_with_rows(scratch_database)
    migrations.upgrade(scratch_database, BEFORE_INDEXES)
    engine = create_engine(scratch_database, isolation_level="AUTOCOMMIT")
    # An ingestion transaction in flight: a concurrent build waits for it to finish, without locking
    # writers out meanwhile; a plain CREATE INDEX would queue for a SHARE lock and block every writer.
    in_flight = create_engine(scratch_database).connect()
    in_flight.execute(text("INSERT INTO images (base_filename, capture_date, sort_date) "
                           "VALUES ('sro-kb001ms-20220630-00000001', now(), now())"))
    failures: list[BaseException] = []

    def migrate() -> None:
        try:
            migrations.upgrade(scratch_database)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    builder = threading.Thread(target=migrate)
    builder.start()
    try:
        with engine.connect() as watcher:
            commands: list[str] = []
            for _ in range(600):
                commands = watcher.execute(text(
                    "SELECT command FROM pg_stat_progress_create_index WHERE relid = 'images'::regclass"
                )).scalars().all()
                if commands or not builder.is_alive():
                    break
                time.sleep(0.05)
            assert commands == ["CREATE INDEX CONCURRENTLY"]
            # Another writer gets through while the build waits (it would time out behind a plain build).
            watcher.execute(text("SET statement_timeout = '20s'"))
            watcher.execute(text("INSERT INTO images (base_filename, capture_date, sort_date) "
                                 "VALUES ('sro-kb001ms-20220630-00000002', now(), now())"))
    finally:
        in_flight.commit()
        in_flight.close()
        builder.join(120)
    assert not failures and not builder.is_alive()
    assert frontend_indexes_built(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM images")).scalar() == 52
    engine.dispose()


def test_the_index_migration_runs_again_after_an_interruption_and_rebuilds_an_invalid_index(scratch_database):
    legacy_table_with_rows(scratch_database)
    migrations.upgrade(scratch_database)
    engine = create_engine(scratch_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        # As if the first run died part-way: one index missing, one left INVALID by a failed concurrent
        # build (here a unique build over duplicate sites), and the version still before 0004.
        conn.execute(text("DROP INDEX images_capture_site_idx"))
        conn.execute(text("DROP INDEX images_site_latest_idx"))
        with pytest.raises(Exception, match="could not create unique index"):
            conn.execute(text("CREATE UNIQUE INDEX CONCURRENTLY images_site_latest_idx ON images (site)"))
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": BEFORE_INDEXES})
    assert index_state(engine)["images_site_latest_idx"] == (["site"], False, True)

    migrations.upgrade(scratch_database)

    assert frontend_indexes_built(engine)
    engine.dispose()


def test_downgrading_drops_only_the_frontend_indexes(scratch_database):
    legacy_table_with_rows(scratch_database)
    migrations.upgrade(scratch_database)
    engine = create_engine(scratch_database)
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX images_operators_own_idx ON images (filter_used)"))

    migrations.downgrade(scratch_database, BEFORE_INDEXES)

    remaining = set(index_state(engine))
    assert remaining == {"images_pkey", "images_base_filename_key", "images_operators_own_idx"}
    migrations.upgrade(scratch_database)
    assert frontend_indexes_built(engine)
    engine.dispose()

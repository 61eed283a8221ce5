
import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

import db
from archive.database import batch_scope, get_engine, transaction


def test_mark_file_then_header_converges(database):
    t = dt.datetime(2022, 6, 29, 3, 0, 0)
    engine = get_engine()
    with engine.begin() as conn:
        db.mark_file(conn, base_filename="sro-kb001ms-20220629-00010442", site="sro", data_type="EX",
                     flag="fits_10_exists", upload_time=t)
        db.upsert_header(conn, base_filename="sro-kb001ms-20220629-00010442", site="sro", data_type="EX",
                         header={"DATE-OBS": "2022-06-29T02:00:00", "FILTER": "ip"},
                         columns={"filter_used": "ip"}, capture_date=dt.datetime(2022, 6, 29, 2), upload_time=t)
        db.mark_file(conn, base_filename="sro-kb001ms-20220629-00010442", site="sro", data_type="EX",
                     flag="jpg_small_exists", upload_time=dt.datetime(2022, 6, 29, 1))
        row = db.get_row(conn, "sro-kb001ms-20220629-00010442")
    assert row["fits_10_exists"] and row["jpg_small_exists"] and not row["fits_01_exists"]
    assert row["capture_date"] == dt.datetime(2022, 6, 29, 2)
    assert row["filter_used"] == "ip"


def test_a_connection_killed_mid_batch_fails_one_transaction_and_the_next_reconnects(database):
    engine = get_engine()
    t = dt.datetime(2022, 6, 29, 3)

    def mark(base: str) -> None:
        with transaction() as conn:
            db.mark_file(conn, base_filename=base, site="sro", data_type="EX", flag="fits_01_exists", upload_time=t)

    with batch_scope():
        mark("sro-kb001ms-20220629-00000001")
        with transaction() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(OperationalError):
            mark("sro-kb001ms-20220629-00000002")  # the dead connection: this file is retried by SQS
        mark("sro-kb001ms-20220629-00000003")  # the rest of the batch goes on, on a new connection
    with engine.connect() as conn:
        bases = {r.base_filename for r in conn.execute(db.images.select())}
    assert bases == {"sro-kb001ms-20220629-00000001", "sro-kb001ms-20220629-00000003"}


def test_transactions_outside_a_batch_scope_use_the_engine_directly(database):
    with transaction() as conn:
        db.mark_file(conn, base_filename="sro-kb001ms-20220629-00000009", site="sro", data_type="EX",
                     flag="jpg_small_exists", upload_time=dt.datetime(2022, 6, 29))
    with get_engine().connect() as conn:
        assert db.get_row(conn, "sro-kb001ms-20220629-00000009")["jpg_small_exists"] is True


def test_capture_date_converges_when_date_obs_is_present_but_unusable(database):
    """DATE-OBS = 'N/A': the date is the earliest upload, whichever file came first."""

    early, late = dt.datetime(2022, 6, 29, 1), dt.datetime(2022, 6, 29, 5)
    header = {"DATE-OBS": "N/A", "FILTER": "ip"}

    def header_at(conn, base: str, when: dt.datetime) -> None:
        db.upsert_header(conn, base_filename=base, site="sro", data_type="EX", header=header,
                         columns={}, capture_date=None, upload_time=when)

    def flag_at(conn, base: str, when: dt.datetime) -> None:
        db.mark_file(conn, base_filename=base, site="sro", data_type="EX", flag="fits_10_exists", upload_time=when)

    a, b = "sro-kb001ms-20220629-00000001", "sro-kb001ms-20220629-00000002"
    with get_engine().begin() as conn:
        flag_at(conn, a, early)
        header_at(conn, a, late)
        header_at(conn, b, late)
        flag_at(conn, b, early)
        rows = [db.get_row(conn, base) for base in (a, b)]
    assert [r["capture_date"] for r in rows] == [early, early]
    assert [r["sort_date"] for r in rows] == [early, early]


def test_a_date_from_date_obs_is_never_moved_by_a_file_upload(database):
    date_obs = dt.datetime(2022, 6, 29, 3)
    base = "sro-kb001ms-20220629-00000003"
    with get_engine().begin() as conn:
        db.upsert_header(conn, base_filename=base, site="sro", data_type="EX", header={"DATE-OBS": "x"},
                         columns={}, capture_date=date_obs, upload_time=dt.datetime(2022, 6, 30))
        db.mark_file(conn, base_filename=base, site="sro", data_type="EX", flag="jpg_small_exists",
                     upload_time=dt.datetime(2022, 6, 28))
        assert db.get_row(conn, base)["capture_date"] == date_obs

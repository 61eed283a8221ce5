import datetime as dt

import db


def test_mark_file_then_header_converges(database):
    t = dt.datetime(2022, 6, 29, 3, 0, 0)
    engine = db.get_engine()
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

"""The demo's bookkeeping, statistics and checks, and the contact sheet, without starting anything."""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pytest
from PIL import Image

from archive.local.contact_sheet import contact_sheet
from archive.local.demo import (
    Check,
    DeliveryLog,
    DemoReport,
    check_datastream,
    check_log,
    check_rows,
    expected_keys,
    latencies,
    percentile,
    thumbnail_key,
    tile_label,
)
from archive.local.simulate import UploadRecord, make_exposure
from archive.local.worker import Delivery


def upload(key: str, finished: float = 100.0) -> UploadRecord:
    return UploadRecord(key, 1, finished - 0.1, finished)


def test_expected_keys_add_the_thumbnail_of_every_medium_jpg():
    base = "tst-cam-20260101-00000001"
    uploads = [upload(f"data/{base}-EX10.jpg"), upload(f"data/{base}-EX00.txt"),
               upload(f"info-images/{base}-EX13.jpg"), upload(f"data/{base}-EX11.jpg")]

    assert expected_keys(uploads) == {u.key for u in uploads} | {f"info-images/{base}-EX11.jpg"}
    assert thumbnail_key(f"data/{base}-EX10.fits") is None
    assert thumbnail_key("data/not-a-name-EX10.jpg") is None, "the archive thumbnails only names it can read"


def test_delivery_log_keeps_the_first_success_and_counts_failures_and_handler_time():
    log = DeliveryLog()
    log.add([Delivery("1", ("k",), 1, False, 9.0, 10.0), Delivery("2", ("j",), 1, True, 9.0, 10.0)])
    log.add([Delivery("3", ("k",), 2, True, 11.0, 12.5)])
    log.add([Delivery("4", ("k",), 1, True, 13.0, 14.0)])

    assert log.done() == {"j": 10.0, "k": 12.5}
    assert log.failures == 1
    assert (log.handler_seconds, log.objects) == (3.5, 4)


def test_latency_runs_from_the_upload_answer_to_processing_and_skips_unprocessed_uploads():
    uploads = [upload("a", finished=10.0), upload("b", finished=10.0), upload("c", finished=10.0)]
    assert latencies(uploads, {"a": 10.25, "b": 9.9}) == [0.25, 0.0]


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (50.0, 95.0, 100.0)
    assert percentile([3.0], 95) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)


def exposure():
    return make_exposure(s3_directory="data", site="tst", instrument="kb001ms", night="20260101", counter=7,
                         data_type="EX", moment=dt.datetime(2026, 1, 1, 2, 3, 4, 5000), rng=np.random.default_rng(1))


def good_row(exp) -> dict:
    return {"fits_01_exists": True, "fits_10_exists": True, "jpg_medium_exists": True, "jpg_small_exists": True,
            "capture_date": dt.datetime(2026, 1, 1, 2, 3, 4, 5000), "right_ascension": 1.0,
            "filter_used": exp.header["FILTER"], "header": json.dumps({"SSTKNUM": "no"})}


def test_check_rows_passes_complete_rows_and_names_what_is_wrong_otherwise():
    exp = exposure()
    assert check_rows([exp], {exp.base_filename: good_row(exp)}).ok

    missing_flag = {**good_row(exp), "jpg_small_exists": False}
    wrong_date = {**good_row(exp), "capture_date": dt.datetime(2026, 1, 1)}
    assert "jpg_small_exists false" in check_rows([exp], {exp.base_filename: missing_flag}).detail
    assert "capture_date" in check_rows([exp], {exp.base_filename: wrong_date}).detail
    assert check_rows([exp], {}).detail == f"0/1 rows complete; {exp.base_filename}: no row"


def test_check_log_wants_the_newest_item_of_every_key_ingested():
    assert check_log(["a", "b"], {"a": "ingested", "b": "ingested"}).ok
    result = check_log(["a", "b"], {"a": "failed"})
    assert not result.ok and "a: newest item 'failed'" in result.detail and "b: no item" in result.detail


def test_check_datastream_matches_directory_base_and_channel():
    bodies = [json.dumps({"topic": "imagedata", "site": "tst", "channel": 2,
                          "data": {"s3_directory": "info-images", "base_filename": "b", "site": "tst"}})]
    assert check_datastream([("info-images", "b", 2)], bodies).ok
    assert not check_datastream([("info-images", "b", 1)], bodies).ok


def test_report_fails_when_any_check_fails_or_there_are_none():
    assert not DemoReport().ok
    report = DemoReport(checks=[Check("a", True, ""), Check("b", False, "why")], latencies=[0.1, 0.2])
    assert not report.ok
    text = report.format()
    assert "[FAIL] b" in text and "p50 100 ms" in text and "SOME CHECKS FAILED" in text


def test_tile_labels_name_site_counter_and_directory():
    assert tile_label("info-images/tst-kb001ms-20260101-00000012-EX10.jpg") == "tst 00000012 info-images"


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 200, 200)).save(out, format="JPEG")
    return out.getvalue()


def test_contact_sheet_tiles_thumbnails_in_rows_and_marks_missing_ones():
    tiles = [(f"t{i}", jpeg(170, 128)) for i in range(5)] + [("gone", None)]

    sheet = Image.open(io.BytesIO(contact_sheet(tiles, columns=4, title="six")))

    assert sheet.format == "PNG"
    assert sheet.width == 6 + 4 * (170 + 6)
    assert sheet.height == 22 + 6 + 2 * (128 + 14 + 6)
    assert sheet.getpixel((6 + 5, 22 + 6 + 148 + 5)) == (200, 200, 200), "second row, first tile"
    assert sheet.getpixel((6 + 176 + 5, 22 + 6 + 148 + 5)) == (90, 30, 30), "the missing image is a red box"
    with pytest.raises(ValueError):
        contact_sheet([])

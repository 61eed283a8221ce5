"""The viewer's pure shaping: coordinates as the frontend shows them, smart stacks as photonranch-api
folds them, thumbnails from the 11.jpg or the image service."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from archive.local.viewer_data import (
    channel_package,
    exposure_package,
    file_kind,
    final_smart_stack_frames,
    format_dec,
    format_ra,
    thumbnail_service_url,
    upload_row,
)


@pytest.mark.parametrize(
    "hours,shown",
    [
        (12.582416666666667, "12:34:56.70"),  # 12h34m56.7s
        (0.7, "00:42:00.00"),  # float noise must not print 41:59.99
        (23.99999999, "23:59:59.99"),  # truncated, never rounded up to 24:00
        (0.0, "00:00:00.00"),
        (24.5, "00:30:00.00"),
    ],
)
def test_ra_is_sexagesimal_hours_truncated_like_the_frontend(hours, shown):
    assert format_ra(hours) == shown


@pytest.mark.parametrize(
    "degrees,shown",
    [(-5.5, "-05:30:00.0"), (41.26875, "+41:16:07.5"), (-0.01, "-00:00:36.0"), (89.99999999, "+89:59:59.9")],
)
def test_dec_is_signed_sexagesimal_degrees(degrees, shown):
    assert format_dec(degrees) == shown


def test_missing_or_unusable_coordinates_show_nothing():
    assert format_ra(None) == format_dec(None) == format_ra(float("nan")) == format_dec(float("inf")) == ""


def pkg(name: str, stack: str = "no", number: str = "no") -> dict:
    return {"base_filename": name, "SMARTSTK": stack, "SSTKNUM": number}


def test_smart_stacks_keep_their_last_frame_and_single_frames_stay_in_order():
    listed = [
        pkg("s1-3", "1001", "3"), pkg("single", "no", "no"), pkg("s1-2", "1001", "2"),
        pkg("s2-2", "1002", "2"), pkg("s1-1", "1001", "1"), pkg("s2-1", "1002", "1"), pkg("bare", "", ""),
    ]
    assert [p["base_filename"] for p in final_smart_stack_frames(listed)] == ["s1-3", "single", "s2-2", "bare"]


def test_only_numeric_stack_ids_are_folded_as_photonranch_api_does():
    listed = [pkg("a-2", "tst00000001", "2"), pkg("a-1", "tst00000001", "1"), pkg("b-1", "7", "x")]
    assert final_smart_stack_frames(listed) == listed


def test_a_stack_whose_last_frame_is_not_listed_yet_shows_its_newest_listed_frame():
    listed = [pkg("s-2", "55", "2"), pkg("s-1", "55", "1")]
    assert final_smart_stack_frames(listed) == [listed[0]]


def row(**overrides) -> dict:
    base = {
        "image_id": 7, "base_filename": "tst-cam-20260101-00000001", "site": "tst", "data_type": "EX",
        "capture_date": dt.datetime(2026, 1, 1, 3, 4, 5), "sort_date": dt.datetime(2026, 1, 1, 3, 4, 5),
        "right_ascension": 5.5, "declination": -20.25, "exposure_time": 30.0, "filter_used": "ip",
        "header": json.dumps({"OBJECT": "M 42", "SMARTSTK": "99", "SSTKNUM": "2", "SSTKLEN": "3"}),
        "fits_01_exists": True, "fits_10_exists": False, "jpg_medium_exists": True, "jpg_small_exists": True,
    }
    return {**base, **overrides}


def sign(key: str) -> str:
    return f"signed:{key}"


def test_an_exposure_with_its_11_jpg_shows_that_thumbnail_and_the_frontend_fields():
    package = exposure_package(row(), sign, 128)
    assert package["thumbnail_url"] == "signed:data/tst-cam-20260101-00000001-EX11.jpg"
    assert package["thumbnail_source"] == "jpg"
    assert package["jpg_url"] == "signed:data/tst-cam-20260101-00000001-EX10.jpg"
    assert (package["ra_display"], package["dec_display"]) == ("05:30:00.00", "-20:15:00.0")
    assert package["capture_date"] == 1767236645000 and package["capture_date_iso"] == "2026-01-01T03:04:05Z"
    assert (package["object"], package["SMARTSTK"], package["SSTKNUM"], package["SSTKLEN"]) == ("M 42", "99", "2", "3")


def test_an_exposure_without_an_11_jpg_falls_back_to_the_image_service():
    package = exposure_package(row(jpg_small_exists=False, header=None), sign, 128)
    assert package["thumbnail_url"] == "/thumbnails/tst-cam-20260101-00000001?height=128&image=true"
    assert package["thumbnail_source"] == "service"
    assert package["SMARTSTK"] == "" and package["object"] == ""


def test_image_service_links_drop_empty_parameters_and_quote_values():
    assert thumbnail_service_url("a-b-20260101-00000001", width=200, label="M 42 & co", color=False) == (
        "/thumbnails/a-b-20260101-00000001?width=200&label=M+42+%26+co"
    )


def test_an_unset_channel_is_empty_and_a_set_one_links_its_small_jpg():
    assert channel_package(2, None, sign) == {"channel": 2, "empty": True}
    item = {"base_filename": "tst-cam-20260101-00000009", "data_type": "EX", "jpg_small_exists": True,
            "jpg_11_file_path": "info-images/tst-cam-20260101-00000009-EX11.jpg", "header": {"OBJECT": "M 1"}}
    package = channel_package(1, item, sign)
    assert package["thumbnail_url"] == "signed:info-images/tst-cam-20260101-00000009-EX11.jpg"
    assert package["object"] == "M 1" and package["empty"] is False


def test_failed_and_rejected_uploads_are_flagged_for_the_dev_tools_table():
    rows = [upload_row({"status": s, "upload_timestamp_s": 1767236645}) for s in ("ingested", "ignored",
                                                                                  "rejected", "failed")]
    assert [r["failure"] for r in rows] == [False, False, True, True]
    assert rows[0]["uploaded_iso"] == "2026-01-01T03:04:05Z"


@pytest.mark.parametrize(
    "name,kind",
    [("x-EX00.txt", "header text"), ("x-EX10.jpg", "medium JPG"), ("x-EX11.jpg", "thumbnail JPG"),
     ("x-EX00.fits.bz2", "large FITS"), ("x-EX10.fits", "small FITS"), ("x-EX10.fits.fz", "small FITS")],
)
def test_files_are_named_for_what_they_are(name, kind):
    assert file_kind(name) == kind

"""The image API end to end in one process: handler events as API Gateway sends them, real S3 (moto),
real FITS and JPEG files, the real database for colour sets."""

from __future__ import annotations

import bz2
import datetime as dt
import io
import json
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from astropy.io import fits
from moto import mock_aws
from PIL import Image

import db
from archive import aws
from archive.database import get_engine
from archive.local.provision import provision_bucket
from archive.settings import get_settings
from handlers import render
from tests.apigw import apigw_event

BASE = "tst-kb001ms-20260101-00000001"
ROUTE = "GET /thumbnails/{base_filename}"


def sky(shape: tuple[int, int], seed: int = 1, star: tuple[int, int] | None = None) -> np.ndarray:
    frame = np.random.default_rng(seed).normal(1000, 20, shape).astype(np.float32)
    if star:
        frame[star[0]:star[0] + 6, star[1]:star[1] + 6] += 20000
    return frame


def fits_bytes(data: np.ndarray, **cards: object) -> bytes:
    out = io.BytesIO()
    hdu = fits.PrimaryHDU(data)
    for key, value in cards.items():
        hdu.header[key] = value
    hdu.writeto(out)
    return out.getvalue()


def jpeg_bytes(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((height, width), 90, np.uint8)).save(out, "JPEG")
    return out.getvalue()


def put(s3, filename: str, body: bytes) -> None:
    s3.put_object(Bucket=get_settings().bucket, Key=f"data/{filename}", Body=body)


def call(target: str = BASE, **query: str) -> tuple[int, dict, dict]:
    event = apigw_event(ROUTE, f"/thumbnails/{target}", {k: str(v) for k, v in query.items()},
                        {"base_filename": target})
    response = render.handler(event, None)
    body = json.loads(response["body"]) if response["body"] else {}
    return response["statusCode"], response["headers"], body


def rendered(s3, answer: dict) -> tuple[Image.Image, dict]:
    key = urlsplit(answer["url"]).path.lstrip("/")
    obj = s3.get_object(Bucket=get_settings().bucket, Key=key)
    return Image.open(io.BytesIO(obj["Body"].read())), obj


@pytest.fixture(scope="module")
def moto_bucket():
    """moto in-process with the bucket, for the whole module (provisioning is most of a test's time)."""
    get_settings.cache_clear()
    aws.clear_clients()
    with mock_aws():
        provision_bucket()
        yield
    aws.clear_clients()


@pytest.fixture
def s3(moto_bucket):
    """The bucket, emptied after each test."""
    client = aws.client("s3")
    yield client
    bucket = get_settings().bucket
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        if page.get("Contents"):
            client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": i["Key"]} for i in page["Contents"]]})


@pytest.fixture
def exposure(s3):
    """One exposure with a medium JPG (768×512), a small FITS (300 rows × 400) and a large .bz2 FITS."""
    put(s3, f"{BASE}-EX10.jpg", jpeg_bytes(768, 512))
    put(s3, f"{BASE}-EX10.fits", fits_bytes(sky((300, 400), star=(100, 200))))
    put(s3, f"{BASE}-EX00.fits.bz2", bz2.compress(fits_bytes(sky((600, 800), seed=2))))
    return BASE


@pytest.mark.parametrize("query,size", [
    ({"source": "small"}, (200, 150)),
    ({"source": "small", "width": 100}, (100, 75)),
    ({"source": "small", "height": 30}, (40, 30)),
    ({"source": "small", "width": 4000, "height": 4000}, (400, 300)),
    ({"source": "large", "width": 500, "height": 500}, (500, 375)),
    ({"source": "jpg", "width": 300, "height": 300}, (300, 200)),
    ({"source": "jpg", "width": 4000, "height": 3000}, (768, 512)),
])
def test_renders_fit_inside_the_box_keep_the_aspect_and_are_never_enlarged(exposure, s3, query, size):
    status, headers, answer = call(**query)
    assert status == 200, answer
    assert (answer["width"], answer["height"]) == size
    picture, obj = rendered(s3, answer)
    assert picture.format == "JPEG" and picture.size == size
    assert obj["CacheControl"] == "public, max-age=31536000, immutable" and obj["ContentType"] == "image/jpeg"
    assert headers["cache-control"] == "no-store"


def test_the_answer_names_the_picture_and_when_its_link_expires(exposure, s3):
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    status, _, answer = call()
    after = dt.datetime.now(dt.UTC)
    assert status == 200 and set(answer) == {"url", "expires_at", "width", "height", "cached"}
    key = urlsplit(answer["url"]).path.lstrip("/")
    assert key.startswith(f"thumbnails/{BASE}/") and key.endswith(".jpg")
    expires = dt.datetime.strptime(answer["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    signed = parse_qs(urlsplit(answer["url"]).query)
    assert int(signed["X-Amz-Expires"][0]) == 3600
    assert before + dt.timedelta(seconds=3600) <= expires <= after + dt.timedelta(seconds=3600)


def source_of(s3, **query: str) -> str:
    status, _, answer = call(**query)
    assert status == 200, answer
    return rendered(s3, answer)[1]["Metadata"]["sources"]


def test_auto_takes_the_smallest_source_that_fills_the_box(exposure, s3):
    # medium JPG 768×512, small FITS 400×300, large FITS 800×600
    assert source_of(s3) == f"{BASE}-EX10.jpg"
    assert source_of(s3, width=600, height=600) == f"{BASE}-EX10.jpg", "it fills: 768 wide"
    assert source_of(s3, stretch="asinh") == f"{BASE}-EX10.fits", "a FITS-only option; the small FITS fills"
    assert source_of(s3, stretch="asinh", width=500, height=500) == f"{BASE}-EX00.fits.bz2", "only the large fills"
    _, _, big_box = call(width=1000, height=1000)
    assert rendered(s3, big_box)[1]["Metadata"]["sources"] == f"{BASE}-EX00.fits.bz2", "none fills: the largest"
    assert (big_box["width"], big_box["height"]) == (800, 600)


def test_an_explicit_default_changes_neither_the_source_nor_the_picture(exposure, s3):
    plain = call()[2]
    explicit = call(stretch="zscale", median="false", color="no", percentile="99.5")[2]
    assert urlsplit(explicit["url"]).path == urlsplit(plain["url"]).path and explicit["cached"] is True


def test_auto_falls_back_to_the_largest_source_and_to_the_fits_for_fits_options(s3):
    put(s3, f"{BASE}-EX01.fits", fits_bytes(sky((50, 60))))
    put(s3, f"{BASE}-EX10.jpg", jpeg_bytes(120, 80))
    assert source_of(s3) == f"{BASE}-EX10.jpg", "nothing fills 200×200: the larger"
    assert source_of(s3, median="true") == f"{BASE}-EX01.fits"
    other = "tst-kb001ms-20260101-00000002"
    put(s3, f"{other}-EX10.jpg", jpeg_bytes(120, 80))
    status, _, answer = call(other)
    assert status == 200 and (answer["width"], answer["height"]) == (120, 80)


def test_a_full_filename_pins_that_file(exposure, s3):
    status, _, answer = call(f"{BASE}-EX00.fits.bz2", width=400, height=400)
    assert status == 200 and (answer["width"], answer["height"]) == (400, 300)
    assert rendered(s3, answer)[1]["Metadata"]["sources"] == f"{BASE}-EX00.fits.bz2"
    assert urlsplit(answer["url"]).path.startswith(f"/thumbnails/{BASE}/")


def test_the_fits_is_flipped_so_north_is_up_and_the_label_is_drawn_lower_left(exposure, s3):
    picture = np.asarray(rendered(s3, call(source="small", width=400, height=300)[2])[0], dtype=float)
    # The star was put at FITS rows 100-105 (counted from the bottom), columns 200-205.
    assert picture[300 - 106:300 - 100, 200:206].mean() > 200
    assert picture[100:106, 200:206].mean() < 150
    labelled = np.asarray(rendered(s3, call(source="small", width=400, height=300, label="M 42 rp")[2])[0],
                          dtype=float)
    changed = np.abs(labelled - picture) > 60
    rows, cols = np.nonzero(changed)
    assert changed.sum() > 50
    assert rows.min() > 240 and cols.max() < 200, "the text sits in the lower-left corner"


def test_the_second_request_is_a_cache_hit_and_a_reupload_renders_again(exposure, s3):
    first = call(source="small")[2]
    _, obj = rendered(s3, first)
    second = call(source="small", image="false")[2]
    assert (first["cached"], second["cached"]) == (False, True)
    assert urlsplit(first["url"]).path == urlsplit(second["url"]).path
    assert rendered(s3, second)[1]["LastModified"] == obj["LastModified"], "not written again"
    put(s3, f"{BASE}-EX10.fits", fits_bytes(sky((300, 400), seed=9)))
    third = call(source="small")[2]
    assert third["cached"] is False and urlsplit(third["url"]).path != urlsplit(first["url"]).path


def test_image_true_redirects_to_the_picture(exposure):
    status, headers, _ = call(image="yes")
    assert status == 302 and "/thumbnails/" in headers["location"] and "X-Amz-Signature=" in headers["location"]
    assert headers["cache-control"] == "no-store"


@pytest.mark.parametrize("target,query,status,fragment", [
    ("tst-kb001ms-20260101-00000099", {}, 404, "no exposure"),
    (BASE, {"source": "large"}, 404, "no large FITS"),
    (f"{BASE}-EX01.fits", {}, 404, "no file"),
    (f"{BASE}-EX00.txt", {}, 400, "header text"),
    ("not-an-exposure", {}, 400, "not an exposure"),
    (BASE, {"width": "huge"}, 400, "width"),
])
def test_unknown_exposures_and_missing_sources_are_404_and_bad_names_400(s3, target, query, status, fragment):
    put(s3, f"{BASE}-EX10.fits", fits_bytes(sky((30, 40))))
    got, headers, answer = call(target, **query)
    assert got == status and fragment in answer["message"], answer
    assert headers["content-type"] == "application/json"


def test_sources_over_the_byte_or_pixel_budget_are_413(exposure, settings_env):
    settings_env(RENDER_MAX_SOURCE_BYTES="1000")
    status, _, answer = call(source="small")
    assert status == 413 and "bytes, over the budget of 1000" in answer["message"]
    settings_env(RENDER_MAX_SOURCE_BYTES=str(10**9), RENDER_MAX_PIXELS="100000")
    status, _, answer = call(source="small")
    assert status == 413 and "400×300 = 120000 pixels" in answer["message"]


def test_frames_with_nothing_to_show_or_too_many_dimensions_are_422(s3):
    put(s3, f"{BASE}-EX10.fits", fits_bytes(np.full((40, 50), np.nan, np.float32)))
    status, _, answer = call(source="small")
    assert status == 422 and "no finite pixels" in answer["message"]
    put(s3, f"{BASE}-EX10.fits", fits_bytes(np.zeros((3, 40, 50), np.float32)))
    status, _, answer = call(source="small")
    assert status == 422 and "cube" in answer["message"]
    put(s3, f"{BASE}-EX10.fits", b"this is not FITS" * 300)
    assert call(source="small")[0] == 422


def test_a_frame_with_some_nan_pixels_renders(s3):
    frame = sky((100, 120))
    frame[10:60, 10:60] = np.nan
    put(s3, f"{BASE}-EX10.fits", fits_bytes(frame))
    status, _, answer = call(source="small")
    assert status == 200 and (answer["width"], answer["height"]) == (120, 100)


def colour_frames(s3, shapes: dict[str, tuple[int, int]], stack: str = "tst00000001") -> dict[str, str]:
    """Three exposures of one smart stack through rp/gp/B, with their header rows."""
    names = {}
    for counter, (colour, filter_name) in enumerate((("red", "rp"), ("green", "gp"), ("blue", "B")), start=11):
        base = f"tst-kb001ms-20260101-{counter:08d}"
        put(s3, f"{base}-EX10.fits", fits_bytes(sky(shapes[colour], seed=counter)))
        names[colour] = base
        with get_engine().begin() as conn:
            header = {"FILTER": filter_name, "SMARTSTK": stack, "SSTKNUM": "1"}
            db.upsert_header(conn, base_filename=base, site="tst", data_type="EX", header=header,
                             columns={"filter_used": filter_name}, capture_date=dt.datetime(2026, 1, 1, 3, counter),
                             upload_time=dt.datetime(2026, 1, 1, 4))
    return names


def test_colour_from_named_frames_of_different_shapes_is_cropped_to_what_they_share(s3, database):
    names = colour_frames(s3, {"red": (300, 400), "green": (300, 400), "blue": (400, 300)})
    status, _, answer = call(names["red"], color="true", r=names["red"], g=names["green"], b=names["blue"])
    assert status == 200, answer
    picture, obj = rendered(s3, answer)
    # red and green fit the box as 200×150, blue as 150×200: the composite is what all three cover
    assert picture.mode == "RGB" and picture.size == (answer["width"], answer["height"]) == (150, 150)
    assert obj["Metadata"]["sources"] == " ".join(f"{names[c]}-EX10.fits" for c in ("red", "green", "blue"))


def test_colour_frames_are_matched_by_smart_stack_and_filter(s3, database):
    names = colour_frames(s3, {"red": (300, 400), "green": (300, 400), "blue": (300, 400)})
    colour_frames(s3, {"red": (30, 40), "green": (30, 40), "blue": (30, 40)}, stack="other")  # not ours
    status, _, answer = call(names["green"], color="true")
    assert status == 200, answer
    assert rendered(s3, answer)[1]["Metadata"]["sources"] == " ".join(
        f"{names[c]}-EX10.fits" for c in ("red", "green", "blue"))


def test_a_missing_colour_is_a_404_naming_it(s3, database):
    names = colour_frames(s3, {"red": (30, 40), "green": (30, 40), "blue": (30, 40)})
    with get_engine().begin() as conn:
        db.delete_exposure(conn, names["blue"])
    status, _, answer = call(names["red"], color="true")
    assert status == 404 and answer["missing"] == "blue" and "B|SII" in answer["message"]
    status, _, answer = call(names["red"], color="true", r=names["red"], g=names["green"],
                             b="tst-kb001ms-20260101-00000404")
    assert status == 404 and answer["missing"] == "blue"


def test_colour_for_an_exposure_in_no_smart_stack_asks_for_the_frames(s3, database):
    colour_frames(s3, {"red": (30, 40), "green": (30, 40), "blue": (30, 40)}, stack="no")
    status, _, answer = call("tst-kb001ms-20260101-00000011", color="true")
    assert status == 404 and "pass r, g and b" in answer["message"]


def test_a_database_that_cannot_be_reached_is_a_502(s3, settings_env):
    colour_frames_without_rows = "tst-kb001ms-20260101-00000011"
    settings_env(DATABASE_URL="postgresql+psycopg2://nobody@127.0.0.1:1/none")
    status, _, answer = call(colour_frames_without_rows, color="true")
    assert status == 502 and "database" in answer["message"]


def test_links_signed_with_temporary_credentials_say_they_expire_with_them(exposure, settings_env):
    settings_env(AWS_SESSION_TOKEN="temporary", RENDER_ASSUMED_CREDENTIAL_SECONDS="900")
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    _, _, answer = call()
    after = dt.datetime.now(dt.UTC)
    expires = dt.datetime.strptime(answer["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert before + dt.timedelta(seconds=900) <= expires <= after + dt.timedelta(seconds=900)
    assert 899 <= int(parse_qs(urlsplit(answer["url"]).query)["X-Amz-Expires"][0]) <= 900

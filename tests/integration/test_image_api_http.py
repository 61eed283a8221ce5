"""The image API as a browser and a web app meet it, over HTTP: CORS, preflights, HEAD, a trailing slash,
favicon and robots; one render per picture (concurrent requests, colour sets, percentiles on a grid);
the source `auto` picks; labels in the bundled font.

Both faces are exercised: the handler with API Gateway 2.0 events written as AWS sends them
(tests/apigw.py), and the local stack's HTTP front (archive/local/api.py) serving that same handler on
loopback, with real HTTP requests. AWS is moto in this process; renders are counted as the PUTs of
`thumbnails/` objects that reach S3 (a botocore hook on the client the code uses) and the "rendered"
log lines.
"""

from __future__ import annotations

import bz2
import io
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import numpy as np
import pytest
from moto import mock_aws
from PIL import Image

from archive import aws
from archive.local.api import LocalApi, lambda_routes
from archive.local.provision import provision_bucket
from archive.render import api as render_api
from archive.render import cors
from archive.render.params import SourceRef
from archive.settings import get_settings
from handlers import render
from tests.apigw import apigw_event
from tests.integration.test_render import fits_bytes, jpeg_bytes, sky

BASE = "tst-kb001ms-20260101-00000001"
ALLOWED = "https://www.photonranch.org"
STRANGER = "https://evil.example"


@pytest.fixture(scope="module")
def moto_bucket():
    get_settings.cache_clear()
    aws.clear_clients()
    with mock_aws():
        provision_bucket()
        yield
    aws.clear_clients()


@pytest.fixture
def s3(moto_bucket):
    client = aws.client("s3")
    yield client
    bucket = get_settings().bucket
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        if page.get("Contents"):
            client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": i["Key"]} for i in page["Contents"]]})


@pytest.fixture(scope="module")
def front(moto_bucket) -> Iterator[str]:
    """The local stack's HTTP front serving the render handler, as `archive serve` does."""
    with LocalApi(lambda_routes(list(render.ROUTES), render.handler, "render")) as api:
        yield api.url


@pytest.fixture
def s3_calls(s3) -> Iterator[list[tuple[str, str]]]:
    """(operation, key) of every S3 call the code makes through its client while the test runs."""
    calls: list[tuple[str, str]] = []
    lock = threading.Lock()

    def seen(params: dict, model, **_: object) -> None:
        with lock:
            calls.append((model.name, str(params.get("Key", ""))))

    s3.meta.events.register("before-parameter-build.s3", seen)
    yield calls
    s3.meta.events.unregister("before-parameter-build.s3", seen)


def renders(calls: list[tuple[str, str]]) -> int:
    return sum(1 for op, key in calls if op == "PutObject" and key.startswith("thumbnails/"))


def put(s3, filename: str, body: bytes) -> None:
    s3.put_object(Bucket=get_settings().bucket, Key=f"data/{filename}", Body=body)


def event(method: str, path: str, query: dict[str, str] | None = None, origin: str | None = None) -> dict:
    """An API Gateway event for `path` routed as API Gateway would (route key from the path's shape)."""
    parameters = None
    route_path = path
    if path.startswith("/thumbnails/"):
        parameters = {"base_filename": path.removeprefix("/thumbnails/")}
        route_path = "/thumbnails/{base_filename}"
    built = apigw_event(f"{method} {route_path}", path, query, parameters)
    if origin:
        built["headers"]["origin"] = origin
    return built


def lambda_call(method: str, path: str, query: dict[str, str] | None = None,
                origin: str | None = None) -> tuple[int, dict[str, str], str]:
    response = render.handler(event(method, path, query, origin), None)
    return response["statusCode"], response.get("headers") or {}, response.get("body") or ""


def http(method: str, url: str, origin: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers={"Origin": origin} if origin else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("access-control-")}


def key_of(answer: dict) -> str:
    return urlsplit(answer["url"]).path.lstrip("/")


def picture(s3, answer: dict) -> Image.Image:
    body = s3.get_object(Bucket=get_settings().bucket, Key=key_of(answer))["Body"].read()
    return Image.open(io.BytesIO(body))


@pytest.fixture
def exposure(s3):
    put(s3, f"{BASE}-EX10.fits", fits_bytes(sky((120, 160), star=(40, 60))))
    return BASE


# --- CORS, HEAD, trailing slash, favicon, robots --------------------------------------------------------


EXPECTED_PREFLIGHT = {
    "access-control-allow-origin": ALLOWED,
    "access-control-allow-methods": "GET, HEAD, OPTIONS",
    "access-control-allow-headers": ", ".join(cors.ALLOWED_HEADERS),
    "access-control-max-age": "86400",
}


def test_a_preflight_from_the_web_app_is_a_204_with_the_cors_headers_and_renders_nothing(front, exposure, s3_calls):
    status, headers, body = lambda_call("OPTIONS", f"/thumbnails/{BASE}", origin=ALLOWED)
    assert (status, body, cors_headers(headers), headers["vary"]) == (204, "", EXPECTED_PREFLIGHT, "Origin")
    status, headers, body = http("OPTIONS", f"{front}/thumbnails/{BASE}?width=300", origin=ALLOWED)
    assert (status, body, cors_headers(headers), headers["vary"]) == (204, b"", EXPECTED_PREFLIGHT, "Origin")
    assert s3_calls == [], "a preflight reads nothing"


def test_a_preflight_from_another_origin_gets_no_cors_headers(front):
    status, headers, _ = lambda_call("OPTIONS", f"/thumbnails/{BASE}", origin=STRANGER)
    assert status == 204 and cors_headers(headers) == {}
    status, headers, _ = http("OPTIONS", f"{front}/thumbnails/{BASE}", origin=STRANGER)
    assert status == 204 and cors_headers(headers) == {}
    assert http("OPTIONS", f"{front}/no/such/path", origin=ALLOWED)[0] == 404, "only paths a route serves"


@pytest.mark.parametrize("query,status", [({"width": "300"}, 200), ({"width": "huge"}, 400)])
def test_answers_name_an_allowed_origin_and_vary_by_origin(front, exposure, query, status):
    for origin, expected in ((ALLOWED, {"access-control-allow-origin": ALLOWED}), (STRANGER, {}), (None, {})):
        got, headers, _ = lambda_call("GET", f"/thumbnails/{BASE}", query, origin)
        assert (got, cors_headers(headers), headers["vary"]) == (status, expected, "Origin")
        got, headers, _ = http("GET", f"{front}/thumbnails/{BASE}?{urlencode(query)}", origin)
        assert (got, cors_headers(headers), headers["vary"]) == (status, expected, "Origin")


def test_the_allowed_origins_are_the_setting(front, exposure, settings_env):
    settings_env(CORS_ORIGINS="http://localhost:9999")
    assert cors_headers(lambda_call("GET", f"/thumbnails/{BASE}", origin="http://localhost:9999")[1])
    assert cors_headers(lambda_call("GET", f"/thumbnails/{BASE}", origin=ALLOWED)[1]) == {}


def test_head_answers_like_get_without_a_body(front, exposure):
    got = lambda_call("GET", f"/thumbnails/{BASE}", {"width": "100"}, ALLOWED)
    head = lambda_call("HEAD", f"/thumbnails/{BASE}", {"width": "100"}, ALLOWED)
    assert (head[0], head[1], head[2]) == (got[0], got[1], "") and json.loads(got[2])["width"] == 100
    for path in (f"/thumbnails/{BASE}?width=100", "/health", "/robots.txt", f"/thumbnails/{BASE}?width=1"):
        get_status, get_headers, get_body = http("GET", front + path)
        head_status, head_headers, head_body = http("HEAD", front + path)
        assert head_status == get_status and head_body == b"", path
        assert head_headers["content-type"] == get_headers["content-type"], path


def test_a_trailing_slash_is_the_same_request(front, exposure):
    plain = http("GET", f"{front}/thumbnails/{BASE}?width=100")
    slashed = http("GET", f"{front}/thumbnails/{BASE}/?width=100")
    assert plain[0] == slashed[0] == 200
    assert key_of(json.loads(plain[2])) == key_of(json.loads(slashed[2]))
    # API Gateway may hand the slash to the function in the path parameter: it is dropped there too.
    status, _, body = lambda_call("GET", f"/thumbnails/{BASE}/", {"width": "100"})
    assert status == 200 and key_of(json.loads(body)) == key_of(json.loads(plain[2]))


def test_favicon_and_robots_are_answered_without_touching_aws(front, s3_calls):
    status, headers, body = lambda_call("GET", "/favicon.ico")
    assert (status, body) == (204, "") and "max-age" in headers["cache-control"]
    status, headers, body = lambda_call("GET", "/robots.txt")
    assert (status, body) == (200, "User-agent: *\nDisallow: /\n") and headers["content-type"].startswith("text/plain")
    assert http("GET", f"{front}/favicon.ico")[0] == 204
    assert http("GET", f"{front}/robots.txt")[2] == b"User-agent: *\nDisallow: /\n"
    assert s3_calls == []


# --- one render per picture ----------------------------------------------------------------------------


def test_eight_concurrent_identical_cold_requests_render_once(front, s3, s3_calls, caplog):
    put(s3, f"{BASE}-EX00.fits", fits_bytes(sky((1200, 1600), star=(500, 700))))
    url = f"{front}/thumbnails/{BASE}?width=800&stretch=asinh"
    start = threading.Barrier(8)
    answers: list[tuple[int, dict]] = []

    def ask() -> None:
        start.wait()
        status, _, body = http("GET", url)
        answers.append((status, json.loads(body)))

    caplog.set_level("INFO", logger="archive.render.api")
    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [status for status, _ in answers] == [200] * 8
    assert len({key_of(answer) for _, answer in answers}) == 1
    assert sorted(answer["cached"] for _, answer in answers) == [False] + [True] * 7
    assert renders(s3_calls) == 1
    assert [r.getMessage() for r in caplog.records if r.name == "archive.render.api"].count("rendered") == 1


def test_a_writer_that_loses_the_race_keeps_and_reuses_the_winners_object(s3):
    """What two Lambdas that missed together do: both render, the first PUT lands, the second is refused
    by S3's conditional write and answers with the object already there."""
    bucket, key = get_settings().bucket, f"thumbnails/{BASE}/race.jpg"
    ours, theirs = io.BytesIO(), io.BytesIO()
    Image.new("L", (64, 48), 10).save(ours, "JPEG")
    Image.new("L", (32, 24), 200).save(theirs, "JPEG")
    sources = (SourceRef(f"data/{BASE}-EX10.fits", '"e"', 1),)
    assert render_api.store(bucket, key, theirs.getvalue(), sources, get_settings()) == (32, 24)
    first = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    assert render_api.store(bucket, key, ours.getvalue(), sources, get_settings()) == (32, 24)
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"] == first, "the object a link points at never changes"


def colour_set(s3) -> list[str]:
    bases = [f"tst-kb001ms-20260101-{n:08d}" for n in (11, 12, 13)]
    for seed, base in enumerate(bases):
        put(s3, f"{base}-EX10.fits", fits_bytes(sky((96, 128), seed=seed)))
        put(s3, f"{base}-EX00.fits.bz2", bz2.compress(fits_bytes(sky((192, 256), seed=seed + 10))))
    return bases


def test_colour_on_each_member_of_a_set_is_one_object(front, s3, s3_calls):
    red, green, blue = colour_set(s3)
    keys = set()
    for member in (red, green, blue):
        status, _, body = http("GET", f"{front}/thumbnails/{member}?" + urlencode(
            {"color": "true", "r": red, "g": green, "b": blue}))
        assert status == 200, body
        keys.add(key_of(json.loads(body)))
    assert len(keys) == 1 and renders(s3_calls) == 1
    assert keys.pop().startswith(f"thumbnails/{red}/")


def test_percentiles_98_01_and_98_02_are_one_picture(front, exposure, s3_calls):
    answers = [json.loads(http("GET", f"{front}/thumbnails/{BASE}?stretch=asinh&percentile={p}")[2])
               for p in ("98.01", "98.02", "98.1")]
    assert key_of(answers[0]) == key_of(answers[1]) != key_of(answers[2])
    assert [a["cached"] for a in answers] == [False, True, False] and renders(s3_calls) == 2


# --- source=auto ---------------------------------------------------------------------------------------


def sources_of(s3, answer: dict) -> str:
    return s3.head_object(Bucket=get_settings().bucket, Key=key_of(answer))["Metadata"]["sources"]


def test_auto_picks_the_jpg_or_the_large_fits_when_they_fill_the_box(front, s3):
    """The issue's exposure: JPG and large FITS 256×192, small FITS 128×96, asked for 400×400."""
    put(s3, f"{BASE}-EX10.jpg", jpeg_bytes(256, 192))
    put(s3, f"{BASE}-EX10.fits", fits_bytes(sky((96, 128))))
    put(s3, f"{BASE}-EX00.fits.bz2", bz2.compress(fits_bytes(sky((192, 256), seed=4))))
    box = {"width": "400", "height": "400"}
    plain = json.loads(http("GET", f"{front}/thumbnails/{BASE}?{urlencode(box)}")[2])
    assert (plain["width"], plain["height"], sources_of(s3, plain)) == (256, 192, f"{BASE}-EX10.jpg")
    explicit = json.loads(http("GET", f"{front}/thumbnails/{BASE}?{urlencode({**box, 'stretch': 'zscale'})}")[2])
    assert key_of(explicit) == key_of(plain), "an explicit default changes nothing"
    fits = json.loads(http("GET", f"{front}/thumbnails/{BASE}?{urlencode({**box, 'stretch': 'asinh'})}")[2])
    assert (fits["width"], fits["height"], sources_of(s3, fits)) == (256, 192, f"{BASE}-EX00.fits.bz2")
    small = json.loads(http("GET", f"{front}/thumbnails/{BASE}?stretch=asinh&width=100")[2])
    assert (small["width"], sources_of(s3, small)) == (100, f"{BASE}-EX10.fits"), "the small FITS fills 100"


def test_colour_picks_frames_of_the_size_the_box_needs(front, s3):
    red, green, blue = colour_set(s3)
    channels = {"color": "true", "r": red, "g": green, "b": blue}
    big = json.loads(http("GET", f"{front}/thumbnails/{red}?{urlencode({**channels, 'width': '400'})}")[2])
    assert (big["width"], big["height"]) == (256, 192)
    assert sources_of(s3, big) == " ".join(f"{b}-EX00.fits.bz2" for b in (red, green, blue))
    small = json.loads(http("GET", f"{front}/thumbnails/{red}?{urlencode({**channels, 'width': '120'})}")[2])
    assert (small["width"], small["height"]) == (120, 90)
    assert sources_of(s3, small) == " ".join(f"{b}-EX10.fits" for b in (red, green, blue))


# --- labels ----------------------------------------------------------------------------------------------


def test_labels_in_greek_and_symbols_draw_glyphs_and_a_non_breaking_space_is_accepted(front, exposure, s3):
    def labelled(text: str) -> np.ndarray:
        status, _, body = http("GET", f"{front}/thumbnails/{BASE}?" + urlencode({"width": "160", "label": text}))
        assert status == 200, body
        return np.asarray(picture(s3, json.loads(body)), dtype=float)

    box = labelled("星")  # no CJK in the bundled font: the missing-glyph box
    for glyph in ("α", "—", "°", "★"):
        assert np.abs(labelled(glyph) - box).max() > 60, f"{glyph!r} drew as the missing-glyph box"
    assert labelled("Hα\u00a0— 3° ★").shape == (120, 160)

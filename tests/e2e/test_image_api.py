"""The image API served by the local stack's HTTP front: the same handler, the same answers as the
Lambda behind API Gateway (events written as AWS sends them, tests/apigw.py)."""

from __future__ import annotations

import bz2
import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from archive import aws
from archive.local.ports import steady_port
from archive.local.stack import LocalStack, StackOptions, parse_env_file
from archive.settings import get_settings
from handlers import render
from tests.apigw import apigw_event

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, database_url: str):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", database_url)
        options = StackOptions(port=0, state_dir=tmp_path_factory.mktemp("api") / ".archive",
                               settings_env={"LOG_LEVEL": "WARNING"}, notice=lambda _: None)
        with LocalStack(options) as running:
            yield running


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def without_timings(body: dict) -> dict:
    checks = {name: {k: v for k, v in check.items() if k != "ms"} for name, check in body.get("checks", {}).items()}
    return {**body, "checks": checks} if checks else body


def lambda_answer(route_key: str, path: str) -> tuple[int, dict]:
    response = render.handler(apigw_event(route_key, path), None)
    return response["statusCode"], json.loads(response["body"])


def test_the_front_listens_where_local_env_says(stack):
    env = parse_env_file(stack.env_file.read_text())
    assert env["ARCHIVE_API_URL"] == stack.api_url and stack.api_url.startswith("http://127.0.0.1:")
    assert stack.api_url != stack.endpoint_url


@pytest.mark.parametrize("route_key,path", [("GET /health", "/health"), ("GET /health/ready", "/health/ready")])
def test_health_answers_alike_over_http_and_from_an_api_gateway_event(stack, route_key, path):
    status, headers, body = get(stack.api_url + path)
    lambda_status, lambda_body = lambda_answer(route_key, path)
    assert status == 200 and headers["cache-control"] == "no-store"
    assert (status, without_timings(json.loads(body))) == (lambda_status, without_timings(lambda_body))


def test_an_unknown_path_is_a_404_json_like_api_gateway(stack):
    status, headers, body = get(stack.api_url + "/nothing/here")
    assert (status, headers["content-type"], json.loads(body)) == (404, "application/json", {"message": "Not Found"})


def test_with_a_fixed_moto_port_the_front_takes_the_next_one(tmp_path: Path, database_url: str, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    port = steady_port(2)  # below the ephemeral range: no connection of the stack's own takes port + 1
    options = StackOptions(port=port, state_dir=tmp_path, settings_env={"LOG_LEVEL": "WARNING"},
                           write_env_file=False, run_worker=False, notice=lambda _: None)
    with LocalStack(options) as running:
        assert running.api_url == f"http://127.0.0.1:{port + 1}"
        assert get(running.api_url + "/health")[0] == 200


BASE = "e2e-kb001ms-20260101-00000001"


def fits_file(shape: tuple[int, int] = (120, 160)) -> bytes:
    out = io.BytesIO()
    data = np.random.default_rng(3).normal(1000, 20, shape).astype(np.float32)
    data[40:46, 60:66] += 30000
    fits.PrimaryHDU(data).writeto(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def exposure(stack):
    s3 = aws.client("s3")
    s3.put_object(Bucket=get_settings().bucket, Key=f"data/{BASE}-EX00.fits.bz2", Body=bz2.compress(fits_file()))
    return BASE


def thumbnail_url(stack, target: str, **query: str) -> str:
    return f"{stack.api_url}/thumbnails/{target}?{urlencode(query)}"


def lambda_render(target: str, **query: str) -> tuple[int, dict]:
    event = apigw_event("GET /thumbnails/{base_filename}", f"/thumbnails/{target}", query, {"base_filename": target})
    response = render.handler(event, None)
    return response["statusCode"], json.loads(response["body"])


def comparable(answer: dict) -> dict:
    """The answer without what differs between two signings (signature, expiry second)."""
    return {**answer, "url": urlsplit(answer["url"]).path, "expires_at": None} if "url" in answer else answer


def test_a_render_answers_alike_over_http_and_from_an_api_gateway_event(stack, exposure):
    status, _, body = get(thumbnail_url(stack, exposure, width="100", label="e2e"))
    first = json.loads(body)
    assert status == 200 and first["cached"] is False and (first["width"], first["height"]) == (100, 75)
    lambda_status, from_lambda = lambda_render(exposure, width="100", label="e2e")
    status, _, body = get(thumbnail_url(stack, exposure, width="100", label="e2e"))
    again = json.loads(body)
    assert (lambda_status, comparable(from_lambda)) == (status, comparable(again))
    assert again["cached"] is True and comparable(again)["url"] == comparable(first)["url"]
    picture = Image.open(io.BytesIO(urllib.request.urlopen(again["url"], timeout=30).read()))
    assert picture.format == "JPEG" and picture.size == (100, 75)


@pytest.mark.parametrize("target,query", [
    (BASE, {"width": "9"}), (BASE, {"stretch": "log"}), ("e2e-kb001ms-20260101-00000404", {}),
    (BASE, {"source": "jpg"}), ("nonsense", {}),
])
def test_errors_answer_alike_over_http_and_from_an_api_gateway_event(stack, exposure, target, query):
    status, headers, body = get(thumbnail_url(stack, target, **query))
    assert status in (400, 404) and headers["content-type"] == "application/json"
    assert (status, json.loads(body)) == lambda_render(target, **query)


def test_image_true_redirects_to_a_picture_that_can_be_fetched(stack, exposure):
    request = urllib.request.Request(thumbnail_url(stack, exposure, image="true", width="64"))

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.build_opener(NoRedirect).open(request, timeout=30)
    assert caught.value.code == 302
    location = caught.value.headers["location"]
    assert Image.open(io.BytesIO(urllib.request.urlopen(location, timeout=30).read())).size == (64, 48)


def test_the_cache_is_hit_from_another_process_with_another_hash_seed(stack, exposure):
    query = {"width": "120", "stretch": "asinh"}
    status, _, body = get(thumbnail_url(stack, exposure, **query))
    assert status == 200
    program = (
        "import json, sys\n"
        "from archive.render.api import render_request\n"
        f"result = render_request({exposure!r}, {query!r})\n"
        "print(json.dumps(result.as_json()))\n"
    )
    env = {**os.environ, **parse_env_file(stack.env_file.read_text()), "PYTHONHASHSEED": "12345",
           "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    other = json.loads(run.stdout.strip().splitlines()[-1])
    assert other["cached"] is True and urlsplit(other["url"]).path == urlsplit(json.loads(body)["url"]).path

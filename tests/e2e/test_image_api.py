"""The image API served by the local stack's HTTP front: the same handler, the same answers as the
Lambda behind API Gateway (events written as AWS sends them, tests/apigw.py)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from archive.local.stack import LocalStack, StackOptions, parse_env_file
from handlers import render
from tests.apigw import apigw_event

pytestmark = pytest.mark.slow


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


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        with socket.socket() as b:
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free neighbouring ports")


def test_with_a_fixed_moto_port_the_front_takes_the_next_one(tmp_path: Path, database_url: str, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    port = _free_port_pair()
    options = StackOptions(port=port, state_dir=tmp_path, settings_env={"LOG_LEVEL": "WARNING"},
                           write_env_file=False, run_worker=False, notice=lambda _: None)
    with LocalStack(options) as running:
        assert running.api_url == f"http://127.0.0.1:{port + 1}"
        assert get(running.api_url + "/health")[0] == 200

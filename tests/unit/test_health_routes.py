"""Liveness, the readiness deadline and unknown routes of the image API: nothing is reached, nothing started."""

from __future__ import annotations

import json
import threading

from archive.ops import health
from handlers import render
from tests.apigw import apigw_event


def call(route_key: str, path: str) -> tuple[int, dict, dict]:
    response = render.handler(apigw_event(route_key, path), None)
    return response["statusCode"], response["headers"], json.loads(response["body"])


def test_liveness_answers_ok_without_touching_anything_and_is_never_cached(settings_env):
    settings_env(DATABASE_URL="postgresql+psycopg2://nobody@127.0.0.1:1/none", BUCKET_NAME="no-such-bucket")
    status, headers, body = call("GET /health", "/health")
    assert (status, body["status"], headers["cache-control"]) == (200, "ok", "no-store")


def test_a_check_that_does_not_answer_in_time_fails_at_the_deadline():
    release = threading.Event()

    def slow() -> tuple[str, dict]:
        release.wait(30)  # answers only after readiness has returned (or never, if it waited for it)
        return "late", {}

    try:
        checks = health.readiness({"slow": slow, "quick": lambda: ("fine", {})}, deadline_seconds=0.2)
    finally:
        release.set()
    assert [(c.name, c.ok) for c in checks] == [("slow", False), ("quick", True)]
    assert checks[0].detail == "no answer within 0.2 s"


def test_unknown_routes_are_404():
    assert call("GET /nope", "/nope")[0] == 404

"""Liveness and readiness of the image API (handlers/render.py + archive/ops/health.py), against moto and
the real test database."""

from __future__ import annotations

import json
import time

from archive import aws
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


def test_ready_when_database_bucket_and_queues_answer(aws_stack, database):
    status, headers, body = call("GET /health/ready", "/health/ready")
    assert status == 200, body
    assert body["status"] == "ready" and body["failing"] == []
    assert set(body["checks"]) == {"database", "bucket", "ingest_queue", "dead_letters"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["dead_letters"]["depth"] == 0 and headers["cache-control"] == "no-store"


def test_dead_letters_over_the_limit_are_a_warning_in_the_body_not_an_unready_image_api(
        aws_stack, database, settings_env):
    aws.client("sqs").send_message(QueueUrl=aws_stack.ingest_dlq_url, MessageBody="{}")
    status, _, body = call("GET /health/ready", "/health/ready")
    assert status == 200 and body["status"] == "ready"
    assert body["failing"] == [] and body["warnings"] == ["dead_letters"]
    assert "1 dead letters (more than 0)" in body["checks"]["dead_letters"]["detail"]
    assert body["checks"]["dead_letters"]["ok"] is False

    settings_env(READY_MAX_DEAD_LETTERS="5")
    assert call("GET /health/ready", "/health/ready")[2]["warnings"] == []


def test_an_unreachable_database_makes_it_unready_naming_the_database(aws_stack, settings_env):
    settings_env(DATABASE_URL="postgresql+psycopg2://nobody@127.0.0.1:1/none")
    status, _, body = call("GET /health/ready", "/health/ready")
    assert status == 503 and body["failing"] == ["database"]
    assert body["checks"]["database"]["detail"] == "database unavailable (OperationalError)"
    text = json.dumps(body)
    assert "127.0.0.1" not in text and "nobody" not in text and ":1/" not in text and "port" not in text


def test_a_missing_bucket_fails_and_a_missing_queue_is_named_as_a_warning(aws_stack, database, settings_env):
    settings_env(BUCKET_NAME="not-the-archive", INGEST_QUEUE_NAME="no-such-queue")
    status, _, body = call("GET /health/ready", "/health/ready")
    assert status == 503 and body["failing"] == ["bucket"]
    assert body["warnings"] == ["ingest_queue", "dead_letters"]
    assert body["checks"]["bucket"]["detail"] in ("bucket unavailable (404)", "bucket unavailable (NoSuchBucket)")


def test_a_missing_ingest_queue_alone_leaves_the_image_api_ready(aws_stack, database, settings_env):
    settings_env(INGEST_QUEUE_NAME="no-such-queue")
    status, _, body = call("GET /health/ready", "/health/ready")
    assert status == 200 and body["warnings"] == ["ingest_queue", "dead_letters"]


def test_an_unreachable_endpoint_is_named_without_its_address(aws_stack, database, settings_env):
    settings_env(AWS_ENDPOINT_URL="http://127.0.0.1:9")  # nothing listens on the discard port
    status, _, body = call("GET /health/ready", "/health/ready")
    assert status == 503 and "bucket" in body["failing"]
    assert body["checks"]["bucket"]["detail"] == "bucket unavailable (EndpointConnectionError)"
    assert "127.0.0.1" not in json.dumps(body)


def test_a_check_that_does_not_answer_in_time_fails_at_the_deadline():
    def slow() -> tuple[str, dict]:
        time.sleep(2)
        return "late", {}

    started = time.monotonic()
    checks = health.readiness({"slow": slow, "quick": lambda: ("fine", {})}, deadline_seconds=0.2)
    assert time.monotonic() - started < 1.5
    assert [(c.name, c.ok) for c in checks] == [("slow", False), ("quick", True)]
    assert checks[0].detail == "no answer within 0.2 s"


def test_unknown_routes_are_404():
    assert call("GET /nope", "/nope")[0] == 404

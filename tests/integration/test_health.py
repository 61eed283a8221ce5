"""Liveness and readiness of the image API (handlers/render.py + archive/ops/health.py), against moto and
the real test database."""

from __future__ import annotations

import json

from archive import aws
from handlers import render
from tests.apigw import apigw_event


def call(route_key: str, path: str) -> tuple[int, dict, dict]:
    response = render.handler(apigw_event(route_key, path), None)
    return response["statusCode"], response["headers"], json.loads(response["body"])


def test_ready_when_database_bucket_and_queues_answer(aws_stack, database):
    status, headers, body = call("GET /health/ready", "/health/ready")
    assert status == 200, body
    assert body["status"] == "ready" and body["failing"] == []
    assert set(body["checks"]) == {"database", "bucket", "ingest_queue", "dead_letters"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["dead_letters"]["depth"] == 0 and headers["cache-control"] == "no-store"


def test_dead_letters_over_the_limit_make_it_unready_naming_the_queue(aws_stack, database, settings_env):
    aws.client("sqs").send_message(QueueUrl=aws_stack.ingest_dlq_url, MessageBody="{}")
    status, _, body = call("GET /health/ready", "/health/ready")
    assert status == 503 and body["failing"] == ["dead_letters"]
    assert "1 dead letters (more than 0)" in body["checks"]["dead_letters"]["detail"]

    settings_env(READY_MAX_DEAD_LETTERS="5")
    assert call("GET /health/ready", "/health/ready")[0] == 200


def test_an_unreachable_database_makes_it_unready_naming_the_database(aws_stack, settings_env):
    settings_env(DATABASE_URL="postgresql+psycopg2://nobody@127.0.0.1:1/none")
    status, _, body = call("GET /health/ready", "/health/ready")
    assert status == 503 and body["failing"] == ["database"]
    assert "OperationalError" in body["checks"]["database"]["detail"]


def test_a_missing_bucket_and_queue_are_named(aws_stack, database, settings_env):
    settings_env(BUCKET_NAME="not-the-archive", INGEST_QUEUE_NAME="no-such-queue")
    status, _, body = call("GET /health/ready", "/health/ready")
    assert status == 503 and body["failing"] == ["bucket", "ingest_queue", "dead_letters"]



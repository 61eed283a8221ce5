"""Both handlers in one process (the local stack runs them on two threads): every log line, the core's
`archive.*` lines included, names the function and the invocation it came from, never the other's."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading

import pytest

from archive.local.events import LambdaContext, ttl_remove_record
from archive.settings import get_settings
from handlers import expire, ingest, observability
from tests.samples import s3_record

ROUNDS = 15


@pytest.fixture
def log_lines():
    """The JSON lines the handlers' shared log handler writes during the test."""
    buffer = io.StringIO()
    handler = observability.logger.registered_handler
    previous = handler.setStream(buffer)
    observability.set_level("INFO")
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    handler.setStream(previous)
    observability.set_level(get_settings().log_level)


def test_interleaved_ingest_and_expire_invocations_each_stamp_only_their_own_lines(database, aws_stack, log_lines):
    start = threading.Barrier(2)

    def ingest_invocations() -> None:
        start.wait()
        for i in range(ROUNDS):  # a name that does not parse: the core logs "ingest rejected"
            event = {"Records": [s3_record("photonranch-001", f"data/garbage-{i}.txt")]}
            ingest.handler(event, LambdaContext("ingest", aws_request_id=f"ingest-{i}"))

    def expire_invocations() -> None:
        start.wait()
        for i in range(ROUNDS):  # a TTL removal: the core logs what it deleted
            image = {"pk": {"S": f"tst-kb001ms-20220629-{i:08d}"}, "s3_directory": {"S": "data"}}
            record = ttl_remove_record(image, ["pk"], "arn:aws:dynamodb:us-east-1:1:table/t/stream/x", "us-east-1",
                                       str(i), dt.datetime(2026, 1, 1))
            expire.handler({"Records": [record]}, LambdaContext("expire", aws_request_id=f"expire-{i}"))

    threads = [threading.Thread(target=ingest_invocations), threading.Thread(target=expire_invocations)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = log_lines()
    core = [line for line in lines if str(line.get("name", "")).startswith("archive.")]
    assert {line["name"] for line in core} >= {"archive.ingest.pipeline", "archive.ingest.expirations"}
    for line in lines:
        function = "ingest" if line.get("name") == "archive.ingest.pipeline" else "expire" \
            if line.get("name") == "archive.ingest.expirations" else line.get("function")
        assert line.get("function") == function, line
        assert str(line.get("correlation_id", "")).startswith(f"{function}-"), line
        assert line.get("service") == observability.SERVICE

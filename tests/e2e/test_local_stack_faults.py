"""The local stack under faults: the database gone mid-stream and recovered as docs/operations.md says,
`serve` killed, restarted at once on its port, and a settings file left behind by a dead `serve`.

These start real servers (moto on loopback, the stack's own embedded PostgreSQL) and upload through
presigned POSTs as a site does.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

import db
from archive import aws, database
from archive.cli import main
from archive.ingest.uploads_log import newest_attempts, scan_items
from archive.local.demo import DeliveryLog, expected_keys
from archive.local.ports import free_port, steady_port
from archive.local.postgres import LocalPostgres
from archive.local.simulate import SiteRun, simulate
from archive.local.stack import LocalStack, StackOptions, format_env_file, parse_env_file
from archive.settings import get_settings
from archive.statuses import INGESTED
from handlers import observability
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]



def queue_counts(url: str) -> tuple[int, int]:
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def rows(base_filenames: list[str]) -> dict[str, dict]:
    with database.get_engine().connect() as conn:
        result = conn.execute(select(db.images).where(db.images.c.base_filename.in_(base_filenames))).mappings()
        return {row["base_filename"]: dict(row) for row in result}


@pytest.fixture
def embedded_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A stack with its own embedded PostgreSQL (no DATABASE_URL), quick retries, 2 receives to the DLQ."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    stacks: list[LocalStack] = []

    def start(**overrides: object) -> LocalStack:
        defaults = {"port": 0, "state_dir": tmp_path / ".archive", "settings_env": {"LOG_LEVEL": "ERROR"},
                    "notice": lambda _: None}
        options = StackOptions(**{**defaults, **overrides})
        stack = LocalStack(options).start()
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()
    LocalPostgres(tmp_path / ".archive" / "pg").stop()  # whatever a failed test left running


def test_a_database_outage_past_the_retry_budget_is_recovered_by_reprocess_with_every_row_flag_and_log_item_right(
    embedded_stack, tmp_path, monkeypatch
):
    deliveries = DeliveryLog()
    stack = embedded_stack(max_receive_count=2, retry_delay_seconds=0, on_delivery=deliveries.add)
    cluster = LocalPostgres(tmp_path / ".archive" / "pg")
    before = simulate(SiteRun(site="flt", exposures=2, files="hjf", seed=1), progress=False)
    wait_until(lambda: expected_keys(before.uploads) <= deliveries.done().keys(), what="the first uploads")

    cluster.stop(mode="immediate")  # killed, as a crashed or failed-over database is
    during = simulate(SiteRun(site="flt", exposures=3, files="hjf", seed=2), progress=False)
    dlq = stack.provisioned.ingest_dlq_url
    wait_until(lambda: queue_counts(stack.provisioned.ingest_queue_url) == (0, 0) and queue_counts(dlq)[0] > 0,
               what="every message of the outage to exhaust its receives")
    newest = newest_attempts(scan_items())
    assert {newest[u.key]["status"] for u in during.uploads} == {"failed"}
    assert all(newest[u.key]["reason"] == "temporary error, will retry: database unavailable" for u in during.uploads)

    cluster.start()  # the same port: the stack's DATABASE_URL still holds
    for key in parse_env_file(stack.env_file.read_text()):  # reprocess loads the env file into os.environ:
        if key not in os.environ:  # undone after the test (the stack restores the keys it set itself)
            monkeypatch.setenv(key, "")
    level = logging.getLevelName(observability.logger.log_level)
    try:
        assert main(["reprocess", "--site", "flt", "--no-progress", "--env-file", str(stack.env_file)]) == 0
    finally:
        observability.set_level(level)  # reprocess quiets the handlers' shared logger for the process

    exposures = before.exposures + during.exposures
    keys = expected_keys(before.uploads + during.uploads)
    wait_until(lambda: queue_counts(stack.provisioned.ingest_queue_url) == (0, 0), what="the queue to drain")
    newest = newest_attempts(scan_items())
    assert {key: newest[key]["status"] for key in keys} == dict.fromkeys(keys, INGESTED)
    found = rows([e.base_filename for e in exposures])
    assert sorted(found) == sorted(e.base_filename for e in exposures)
    for exposure in exposures:
        row = found[exposure.base_filename]
        assert (row["fits_10_exists"], row["jpg_medium_exists"], row["jpg_small_exists"]) == (True, True, True)
        assert not row["fits_01_exists"], "no large FITS was uploaded"
        assert row["capture_date"] == dt.datetime.fromisoformat(exposure.header["DATE-OBS"])
        assert row["filter_used"] == exposure.header["FILTER"]


def test_the_stack_restarts_on_the_same_port_right_after_a_stop(embedded_stack, database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)  # no embedded cluster needed here
    port = steady_port()  # the HTTP front on any port: it is not the subject here
    first = embedded_stack(port=port, api_port=0)
    with socket.create_connection(("127.0.0.1", port)) as client:  # a client that lets the server close first:
        client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        while client.recv(65536):  # the server's port is left in TIME_WAIT for a minute
            pass
    first.stop()
    second = embedded_stack(port=port, api_port=0)
    assert second.endpoint_url.endswith(f":{port}")


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT") and k != "DATABASE_URL"}
    return {**env, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING", **extra}


def test_a_killed_serve_leaves_its_postgresql_to_the_next_stack_which_stops_it(embedded_stack, tmp_path):
    state = tmp_path / ".archive"
    serve = subprocess.Popen([sys.executable, "-m", "archive", "serve", "--port", "0", "--state-dir", str(state)],
                             cwd=tmp_path, env=_cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (state / "local.env").exists() or serve.poll() is not None, 120, "serve to start")
    finally:
        serve.send_signal(signal.SIGKILL)
        serve.wait(30)
    cluster = LocalPostgres(state / "pg")
    assert cluster.running(), "killed, serve could not stop its database"

    embedded_stack().stop()  # adopts the orphan, and stops it as its own

    assert not cluster.running()


def test_a_stale_settings_file_says_the_stack_is_not_running_instead_of_a_traceback(tmp_path, monkeypatch, capsys):
    stale = tmp_path / ".archive" / "local.env"
    stale.parent.mkdir()
    stale.write_text(format_env_file({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
                                      "BUCKET_NAME": "photonranch-001", "AWS_ACCESS_KEY_ID": "testing"}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for command in (["status"], ["simulate-site", "--site", "tst", "--exposures", "1"], ["reprocess"]):
        with pytest.raises(SystemExit) as stopped:
            main(command)
        message = str(stopped.value.code)
        assert message.startswith("the local stack is not running (start it with `python -m archive serve`)")
        assert ".archive/local.env" in message and "\n" not in message
    assert os.environ.get("AWS_ENDPOINT_URL") is None, "nothing of the stale file was applied"


def test_an_endpoint_that_stops_answering_is_one_line_from_the_cli(monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    try:
        assert main(["status", "--last", "1"]) == 1
    finally:
        get_settings.cache_clear()
        aws.clear_clients()
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: Could not connect to the endpoint URL")

"""The functions' metrics: the ingest, expire and render handlers run with metrics on (real PostgreSQL,
moto), and the EMF lines they print carry the names, units and dimensions serverless.yml's dashboard and
alarms read; the same lines, kept by the local stack's metrics log, are what `status` and the viewer show."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

import pytest

from archive import aws, metrics
from archive.cli import status
from archive.formats.filenames import UNKNOWN_SITE
from archive.local import viewer
from archive.local.api import dispatch
from archive.local.events import LambdaContext, ttl_remove_record
from archive.local.metrics_log import MetricsLog, read_records
from archive.settings import get_settings
from handlers import expire, ingest, render
from tests import samples
from tests.apigw import apigw_event
from tests.dashboard import emitted_refs, serverless_refs

SITE = "mtr"
BASE = f"{SITE}-kb001ms-20260301-00000001"
STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/data-expiration-tracker/stream/2026-03-01T00:00:00.000"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def deliver(*files: tuple[str, bytes]) -> dict:
    """Put the objects and hand the ingest handler one SQS message per object, as the queue would."""
    s3, bucket = aws.client("s3"), get_settings().bucket
    bodies = []
    for key, body in files:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        bodies.append({"Records": [samples.s3_record(bucket, key, len(body), event_time=now_iso())]})
    return ingest.handler(samples.sqs_event(*bodies), LambdaContext("ingest"))


def run_every_handler() -> None:
    """A night in small: uploads of every outcome, an expiry and a cancelled one, renders hit and miss."""
    response = deliver(
        (f"data/{BASE}-EX00.txt", samples.header_text()),
        (f"data/{BASE}-EX10.jpg", samples.jpeg_bytes((192, 128))),
        (f"data/{BASE}-EX12.jpg", samples.jpeg_bytes((32, 32))),  # a reduction that does nothing: ignored
        (f"data/{SITE}-not-a-name.jpg", b"x"),  # rejected
    )
    assert response["batchItemFailures"] == []
    call = {"pathParameters": {"base_filename": BASE}}
    route = "GET /thumbnails/{base_filename}"
    for _ in range(2):  # a miss, then a hit
        answer = render.handler({**apigw_event(route, f"/thumbnails/{BASE}", {"width": "64"}), **call}, None)
        assert answer["statusCode"] == 200, answer["body"]
    missing = f"{SITE}-kb001ms-20260301-00000099"
    answer = render.handler({**apigw_event(route, f"/thumbnails/{missing}"),
                             "pathParameters": {"base_filename": missing}}, None)
    assert answer["statusCode"] == 404
    image = {"pk": {"S": BASE}, "s3_directory": {"S": "data"}}
    removed = ttl_remove_record(image, ["pk"], STREAM, "us-east-1", "1", dt.datetime(2026, 3, 2))
    manual = {**ttl_remove_record(image, ["pk"], STREAM, "us-east-1", "2", dt.datetime(2026, 3, 2)),
              "userIdentity": None}
    assert expire.handler({"Records": [removed, manual]}, LambdaContext("expire"))["batchItemFailures"] == []


def emf_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]


@pytest.fixture
def archive(database, aws_stack):
    return aws_stack


def test_the_handlers_emit_every_metric_the_dashboard_and_alarms_read(archive, capsys):
    run_every_handler()
    records = emf_lines(capsys.readouterr().out)
    emitted = emitted_refs(records)
    namespace, read = serverless_refs()
    assert namespace == get_settings().metrics_namespace
    assert {r["_aws"]["CloudWatchMetrics"][0]["Namespace"] for r in records} == {namespace}
    missing = {ref for ref in read if ref not in emitted}
    assert not missing, f"the dashboard/alarms read metrics nothing emitted: {missing}"
    defined = {(m.name, frozenset(dims)) for m in metrics.METRICS for dims in m.full_dimension_sets()}
    assert read == defined, "every metric and dimension set emitted is shown or watched, and nothing else"
    # Units as defined, and every line stamped with the deployment's service and stage.
    for metric in metrics.METRICS:
        units = {u for (name, _), us in emitted.items() if name == metric.name for u in us}
        assert units == {metric.unit}, metric.name
    assert all(r["service"] == get_settings().service_name and r["stage"] == get_settings().stage for r in records)


def test_the_emitted_values_describe_what_happened(archive, capsys):
    run_every_handler()
    summary = metrics.summarize(emf_lines(capsys.readouterr().out))
    assert summary["uploads"] == {SITE: {"ingested": 2, "ignored": 1}, UNKNOWN_SITE: {"rejected": 1}}
    assert summary["roles"]["header"] == {"ingested": 1} and summary["roles"]["jpg_medium"] == {"ingested": 1}
    assert summary["ingest_lag_ms"]["count"] == 2 and summary["ingest_lag_ms"]["max"] >= 0
    assert summary["thumbnail_ms"]["count"] == 1
    assert summary["renders"] == {"2xx": 2, "4xx": 1}
    assert summary["render_hit_ratio"] == 0.5
    assert summary["render_sources"] == {"jpg": 2}
    assert summary["expirations"] == {"expired": 1, "cancelled": 1}
    assert summary["datastream"] == {"sent": 1}  # one message per exposure per batch


def test_a_bad_dimension_value_is_refused_rather_than_billed_as_a_new_metric():
    with pytest.raises(ValueError, match="status_class"):
        metrics.records(metrics.RENDERS, [1.0], status_class="teapot")
    with pytest.raises(ValueError, match="takes dimensions"):
        metrics.records(metrics.INGEST_LAG, [1.0], site="sro")


def test_metrics_switched_off_print_nothing(archive, capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    deliver((f"data/{BASE}-EX00.txt", samples.header_text()))
    assert emf_lines(capsys.readouterr().out) == []


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (metrics.percentile(values, 50), metrics.percentile(values, 95)) == (50.0, 95.0)
    assert metrics.percentile([], 50) is None
    assert metrics.percentile([7.0], 95) == 7.0


@pytest.fixture
def metrics_log(archive, tmp_path, settings_env):
    """The local stack's metrics log: the handlers' records kept in a file, off stdout."""
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.start()
    settings_env(ARCHIVE_METRICS_LOG=str(path))
    yield path
    log.stop()


def test_the_stack_keeps_the_records_in_its_log_instead_of_stdout(metrics_log, capsys):
    run_every_handler()
    assert emf_lines(capsys.readouterr().out) == []
    assert {name for name, _ in emitted_refs(read_records(metrics_log))} >= {m.name for m in metrics.METRICS}


def test_status_shows_per_site_counts_lag_percentiles_and_the_hit_ratio(metrics_log, capsys, monkeypatch):
    run_every_handler()
    capsys.readouterr()
    monkeypatch.setattr(status, "load_target", lambda env_file: "target: test")
    assert status.run(argparse.Namespace(env_file=None, last=0)) == 0
    out = capsys.readouterr().out
    section = out[out.index("Metrics (the dashboard's"):out.index("\nQueues")]
    site_row = next(line.split() for line in section.splitlines() if line.startswith(SITE))
    assert site_row == [SITE, "2", "1", "0", "0", "3"]  # ingested, ignored, rejected, failed, total
    assert next(line.split() for line in section.splitlines() if line.startswith(UNKNOWN_SITE))[3] == "1"
    assert "ingest lag (S3 event to row): p50" in section and "(2 samples)" in section
    assert "image API cache hit ratio: 50%" in section


def test_status_without_a_local_metrics_log_points_at_the_dashboard(archive, capsys, monkeypatch):
    monkeypatch.setattr(status, "load_target", lambda env_file: "target: test")
    status.run(argparse.Namespace(env_file=None, last=0))
    assert f"on the CloudWatch dashboard photonranch-archive-{get_settings().stage}" in capsys.readouterr().out


def test_the_viewer_serves_the_same_numbers(metrics_log):
    run_every_handler()
    response = dispatch(viewer.routes(), "GET", "/viewer/api/metrics")
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["available"] is True
    assert body == {"available": True, **metrics.summarize(read_records(metrics_log))}
    assert body["uploads"][SITE]["ingested"] == 2 and body["render_hit_ratio"] == 0.5

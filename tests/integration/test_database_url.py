"""Which database URLs work, and what a database failure tells the people who read the upload log.

The plain `postgresql://` form (libpq, RDS, photonranch-api) names no driver; SQLAlchemy's default for
it is psycopg 3, which is not installed. It must work for migrations, the handler and the CLI, given
directly or in the SSM parameter the functions read. A database error's details (host, port, SQL)
belong in the function's log; the upload log, which the web app shows to site users, says only
"database unavailable" or "database error".
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import db
from archive import aws, database
from archive.cli import migrate
from archive.ingest.pipeline import Upload, ingest_upload
from archive.ingest.uploads_log import newest_attempts, scan_items
from archive.local.ports import free_port
from archive.settings import get_settings
from handlers.ingest import handler
from tests import samples
from tests.samples import sqs_event_for

UPLOADED = dt.datetime(2022, 6, 29, 4)


def plain(url: str) -> str:
    """The libpq form of a SQLAlchemy URL: `postgresql://…`, no driver named."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def scratch_url(database_url: str):
    """An empty database in the test cluster, as its plain `postgresql://` URL."""
    name = f"plain_{uuid.uuid4().hex[:10]}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield plain(database_url.rsplit("/", 1)[0] + f"/{name}")
    db.dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def header_upload(s3, bucket: str) -> tuple[str, int]:
    key = f"data/{samples.BASE}-EX00.txt"
    body = samples.header_text()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key, len(body)


def ingested_rows(url: str) -> list[str]:
    with db.engine_for(url).connect() as conn:
        return [r.base_filename for r in conn.execute(db.images.select())]


def test_a_plain_postgresql_url_is_migrated_by_the_cli_and_used_by_the_handler(
    scratch_url, aws_stack, settings_env
):
    settings_env(DATABASE_URL=scratch_url)
    assert migrate.run(argparse.Namespace(database_url=None, revision="head")) == 0
    s3, bucket = aws.client("s3"), get_settings().bucket
    assert handler(sqs_event_for(bucket, [header_upload(s3, bucket)]), None) == {"batchItemFailures": []}
    assert ingested_rows(scratch_url) == [samples.BASE]


def test_an_ssm_parameter_holding_the_plain_url_works_for_migrations_and_the_handler(
    scratch_url, aws_stack, settings_env, monkeypatch
):
    aws.client("ssm").put_parameter(Name="/photonranch-archive/test/database-url", Type="SecureString",
                                    Value=scratch_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings_env(DATABASE_URL_SSM_PARAM="/photonranch-archive/test/database-url")
    database._ssm_database_url.cache_clear()
    try:
        assert migrate.run(argparse.Namespace(database_url=None, revision="head")) == 0
        s3, bucket = aws.client("s3"), get_settings().bucket
        assert handler(sqs_event_for(bucket, [header_upload(s3, bucket)]), None) == {"batchItemFailures": []}
    finally:
        database._ssm_database_url.cache_clear()
    assert ingested_rows(scratch_url) == [samples.BASE]


def failed_header_ingest(caplog: pytest.LogCaptureFixture) -> tuple[BaseException, str]:
    """Ingest a header text that must fail: the exception raised and the upload log's reason."""
    s3, bucket = aws.client("s3"), get_settings().bucket
    key, size = header_upload(s3, bucket)
    with caplog.at_level(logging.ERROR, logger="archive.ingest.pipeline"), pytest.raises(Exception) as caught:  # noqa: PT011
        ingest_upload(Upload(bucket, key, size, UPLOADED))
    return caught.value, newest_attempts(scan_items())[key]["reason"]


def test_an_unreachable_database_is_logged_as_unavailable_without_its_host_or_port(
    aws_stack, database, settings_env, caplog
):
    port = free_port()
    settings_env(DATABASE_URL=f"postgresql+psycopg2://archive@127.0.0.1:{port}/photonranch")
    db.dispose_engines()
    error, reason = failed_header_ingest(caplog)
    assert error.retry
    assert reason == "temporary error, will retry: database unavailable"
    details = [getattr(r, "detail", "") for r in caplog.records]
    assert any(str(port) in d for d in details), "the function's log keeps the details"


def test_any_other_database_error_is_logged_as_a_database_error_without_the_sql(
    scratch_url, aws_stack, settings_env, caplog
):
    settings_env(DATABASE_URL=scratch_url)  # reachable, but never migrated: no `images` table
    error, reason = failed_header_ingest(caplog)
    assert error.retry
    assert reason == "unexpected error, will retry: database error"
    assert any("images" in getattr(r, "detail", "") for r in caplog.records)


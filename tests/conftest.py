"""Shared fixtures: a real PostgreSQL (throwaway unless DATABASE_URL is set) and moto for AWS."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws
from sqlalchemy import text

import db
import migrations
from archive import aws
from archive.database import get_engine
from archive.local.postgres import LocalPostgres
from archive.local.provision import provision_all
from archive.settings import get_settings

# AWS credentials/region for moto, set before anything builds a client.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated PostgreSQL database for the whole run."""
    url = os.environ.get("DATABASE_URL")
    if url:
        migrations.upgrade(url)
        yield url
        return

    with tempfile.TemporaryDirectory(prefix="archive-pg-") as tmp:
        cluster = LocalPostgres(Path(tmp) / "pg", durable=False)
        url = cluster.start()
        try:
            migrations.upgrade(url)
            yield url
        finally:
            db.dispose_engines()
            cluster.stop()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch):
    """Set environment variables for one test and rebuild settings and clients from them."""

    def apply(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        aws.clear_clients()

    yield apply
    get_settings.cache_clear()
    aws.clear_clients()


@pytest.fixture
def database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty `images` table, and DATABASE_URL pointing at it."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    engine = get_engine()
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE images RESTART IDENTITY"))
    yield database_url
    get_settings.cache_clear()


@pytest.fixture
def aws_stack(monkeypatch: pytest.MonkeyPatch):
    """moto in-process with the bucket, tables and queues provisioned."""

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    get_settings.cache_clear()
    aws.clear_clients()
    with mock_aws():
        provisioned = provision_all()
        yield provisioned
    aws.clear_clients()
    get_settings.cache_clear()


@pytest.fixture
def s3(aws_stack):
    return aws.client("s3")


@pytest.fixture
def bucket(aws_stack) -> str:
    return get_settings().bucket

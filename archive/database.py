"""Which database the archive writes, and the transactions it writes in.

`db.py` is the table and its upserts and knows nothing of the archive (photonranch-api mirrors it);
this module is the archive's side: the URL comes from settings (DATABASE_URL) or, in AWS, from an SSM
parameter read once per process; one engine per process; one pooled connection shared by the
transactions of a batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

import db
from archive.aws import client
from archive.settings import get_settings


class DatabaseConfigError(RuntimeError):
    """No database URL could be found (neither DATABASE_URL nor an SSM parameter)."""


@cache
def _ssm_database_url(parameter: str) -> str:
    return str(client("ssm").get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"])


def database_url() -> str:
    """DATABASE_URL, else the SSM parameter DATABASE_URL_SSM_PARAM names."""
    settings = get_settings()
    if settings.database_url:
        return settings.database_url
    if settings.database_url_ssm_param:
        return _ssm_database_url(settings.database_url_ssm_param)
    raise DatabaseConfigError("set DATABASE_URL or DATABASE_URL_SSM_PARAM")


def get_engine() -> Engine:
    """The process's engine, created on first use and reused by later invocations."""
    return db.engine_for(database_url())


def is_database_error(exc: BaseException) -> bool:
    """Any error raised by the database or its driver (their messages name hosts, ports and SQL)."""
    return isinstance(exc, SQLAlchemyError)


def is_database_timeout(exc: BaseException) -> bool:
    """A database that did not answer in time (no pooled connection free, or a connect timeout)."""
    return isinstance(exc, PoolTimeout) or (is_database_outage(exc) and "timeout" in str(exc).lower())


def is_database_outage(exc: BaseException) -> bool:
    """A database that could not be reached or dropped the connection; another attempt may succeed."""
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


@dataclass
class _BatchScope:
    connection: Connection | None = None


_batch: ContextVar[_BatchScope | None] = ContextVar("archive_db_batch", default=None)


@contextmanager
def batch_scope() -> Iterator[None]:
    """Share one pooled connection among the transactions of a batch.

    One checkout (and one liveness ping) per invocation instead of one per statement; each file
    still commits in its own transaction. A connection broken mid-batch is replaced on next use.
    """
    if _batch.get() is not None:
        yield
        return
    scope = _BatchScope()
    token = _batch.set(scope)
    try:
        yield
    finally:
        _batch.reset(token)
        if scope.connection is not None:
            scope.connection.close()


@contextmanager
def transaction() -> Iterator[Connection]:
    """A committed-on-success transaction, on the batch's connection when inside `batch_scope`."""
    scope = _batch.get()
    if scope is None:
        with get_engine().begin() as conn:
            yield conn
        return
    if scope.connection is None or scope.connection.closed or scope.connection.invalidated:
        if scope.connection is not None:
            scope.connection.close()
            scope.connection = None
        scope.connection = get_engine().connect()
    with scope.connection.begin():
        yield scope.connection

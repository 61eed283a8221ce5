"""The one translation of foreign exceptions (botocore, SQLAlchemy) into the archive's errors.

Called wherever the core meets AWS and the database, by ingest (whether SQS must deliver the message
again) and by render (which HTTP status to answer) alike. Anything not known to be permanent is
retried: a retry is cheap, a dropped upload is not (after the queue's receive count it lands in the
dead-letter queue).
"""

from __future__ import annotations

from archive.aws import is_aws_error, is_invalid_request, is_missing_object, is_throttling, is_timeout, is_transient
from archive.database import DatabaseConfigError, is_database_error, is_database_outage, is_database_timeout
from archive.errors import (
    ArchiveError,
    ObjectMissing,
    PermanentError,
    RetryableError,
    TemporaryError,
    Throttled,
    TimedOut,
)

DATABASE_UNAVAILABLE = "temporary error, will retry: database unavailable"


def is_upstream(exc: BaseException) -> bool:
    """True for a failure of AWS or the database (or of reaching them), as opposed to a bug of ours."""
    return is_aws_error(exc) or is_database_error(exc) or isinstance(exc, DatabaseConfigError)


def classify(exc: BaseException) -> ArchiveError:
    """The archive error an exception stands for; anything unknown is retried (and logged in full).

    Database details (host, port, SQL) stay out of the reason: the web app shows it to site users, and
    the function's log has them. A request AWS refuses as invalid (an item over DynamoDB's size limit)
    is refused again on every retry, so it is permanent.
    """
    if isinstance(exc, ArchiveError):
        return exc
    if is_missing_object(exc):
        return ObjectMissing()
    if is_database_timeout(exc):
        return TimedOut(DATABASE_UNAVAILABLE)
    if is_database_outage(exc):
        return TemporaryError(DATABASE_UNAVAILABLE)
    if is_database_error(exc):
        return RetryableError("unexpected error, will retry: database error")
    if isinstance(exc, DatabaseConfigError):
        return RetryableError("unexpected error, will retry: database not configured")
    if is_invalid_request(exc):
        return PermanentError(f"refused by AWS as invalid, not retried: {type(exc).__name__}: {exc}")
    if is_timeout(exc):
        return TimedOut(f"temporary error, will retry: {type(exc).__name__}: {exc}")
    if is_throttling(exc):
        return Throttled(f"temporary error, will retry: {type(exc).__name__}: {exc}")
    if is_transient(exc):
        return TemporaryError(f"temporary error, will retry: {type(exc).__name__}: {exc}")
    return RetryableError(f"unexpected error, will retry: {type(exc).__name__}: {exc}")

"""The one translation of foreign exceptions (botocore, SQLAlchemy) into the archive's errors.

Called where the core meets AWS and the database: whatever a step raised, `classify` says whether SQS
must deliver the message again. Anything not known to be permanent is retried: a retry is cheap, a
dropped upload is not (after the queue's receive count it lands in the dead-letter queue).
"""

from __future__ import annotations

from archive.aws import is_invalid_request, is_missing_object, is_throttling
from archive.database import is_database_error, is_database_outage
from archive.errors import ArchiveError, ObjectMissing, PermanentError, RetryableError, TemporaryError


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
    if is_database_outage(exc):
        return TemporaryError("temporary error, will retry: database unavailable")
    if is_database_error(exc):
        return RetryableError("unexpected error, will retry: database error")
    if is_invalid_request(exc):
        return PermanentError(f"refused by AWS as invalid, not retried: {type(exc).__name__}: {exc}")
    if is_throttling(exc):
        return TemporaryError(f"temporary error, will retry: {type(exc).__name__}: {exc}")
    return RetryableError(f"unexpected error, will retry: {type(exc).__name__}: {exc}")

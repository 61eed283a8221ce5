"""The one translation of foreign exceptions (botocore, SQLAlchemy) into the archive's errors.

Called where the core meets AWS and the database: whatever a step raised, `classify` says whether SQS
must deliver the message again. Anything not known to be permanent is retried: a retry is cheap, a
dropped upload is not (after the queue's receive count it lands in the dead-letter queue).
"""

from __future__ import annotations

from archive.aws import is_missing_object, is_throttling
from archive.database import is_database_outage
from archive.errors import ArchiveError, ObjectMissing, RetryableError, TemporaryError


def classify(exc: BaseException) -> ArchiveError:
    """The archive error an exception stands for; anything unknown is retried (and logged in full).

    Database details (host, port) stay out of the reason: the web app shows it to site users.
    """
    if isinstance(exc, ArchiveError):
        return exc
    if is_missing_object(exc):
        return ObjectMissing()
    if is_database_outage(exc):
        return TemporaryError("temporary error, will retry: database unavailable")
    if is_throttling(exc):
        return TemporaryError(f"temporary error, will retry: {type(exc).__name__}: {exc}")
    return RetryableError(f"unexpected error, will retry: {type(exc).__name__}: {exc}")

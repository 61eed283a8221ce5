"""Errors the core raises on purpose, each knowing whether a later delivery can fix it.

SQS retries a message only when the handler reports it, so "retry or not" is the one question every
failure must answer. It is answered by the error's type: `PermanentError` (bad name, unreadable header,
corrupt image, a deleted object: retrying changes nothing, so it is logged and dropped) or
`RetryableError` (the database or AWS is unavailable: the message comes back). Exceptions from
botocore and SQLAlchemy are translated into these once, by `archive.failures.classify`, where the core
meets them. This module stays light (no botocore, no SQLAlchemy), so the header parser can raise these.

Every error carries `reason`, written for the people who read the upload log (the web app shows it to
site users), and `status`, the upload-log status it stands for.
"""

from __future__ import annotations

from archive.statuses import FAILED, REJECTED


class ArchiveError(Exception):
    """Base of the core's errors: a reason for people, a status for the upload log, a retry class."""

    retry: bool = False
    status: str = FAILED
    topic: str = ""  # what failed, prefixed to the reason in the upload log ("header: …")

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def log_reason(self) -> str:
        """The reason as the upload log shows it."""
        return f"{self.topic}: {self.reason}" if self.topic else self.reason


class PermanentError(ArchiveError):
    """No retry can fix it: logged with its reason and not delivered again."""


class Rejected(PermanentError):
    """The upload is not something the archive takes (bad name, no channel, not an image)."""

    status = REJECTED


class RetryableError(ArchiveError):
    """A later delivery can fix it: the message must come back."""

    retry = True


class TemporaryError(RetryableError):
    """An outage (database, AWS throttling) expected to pass: retried without a traceback in the log."""


class ObjectMissing(PermanentError):
    """The object was deleted before it could be read (e.g. its exposure expired)."""

    def __init__(self, reason: str = "object no longer exists (deleted before it could be read)") -> None:
        super().__init__(reason)


class Throttled(TemporaryError):
    """AWS asked us to slow down: the caller should come back in a moment."""


class TimedOut(TemporaryError):
    """AWS or the database did not answer in time."""


class TooLarge(PermanentError):
    """A source over one of the budgets (bytes, pixels, header or tile size), refused before it is read."""


class Unreadable(PermanentError):
    """Data whose own bytes cannot be turned into a picture (truncated, corrupt, not an image)."""

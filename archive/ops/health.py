"""Is the archive able to serve? Liveness (this process answers) and readiness (what it depends on).

Readiness asks each dependency one cheap question, all at once, each bounded by a deadline, so a
hanging database cannot hold the probe longer than the slowest allowed answer:

- database: `SELECT 1` through the process's engine (the URL from DATABASE_URL or SSM);
- bucket: HeadBucket on the archive bucket;
- ingest queue: it exists and its depth (a backlog is not an outage);
- dead letters: the ingest queue's dead-letter queue (found through its redrive policy) holds no more
  than `READY_MAX_DEAD_LETTERS` messages: uploads are failing repeatedly and need an operator.

Each check answers a `Check` naming what it found or why it failed. Only the `REQUIRED` ones, what
rendering itself reads (the database for colour sets, the bucket for every picture), make the image
API unready (503); the ingest queue's are the archive's health, reported in the same body as warnings
for whoever watches it, since a dead letter of an upload does not stop a single render.
The route is public, so a failure is named by what failed and the kind of error only (`database
unavailable (OperationalError)`, `NoSuchBucket`): the exception's text names hosts, ports, users and
endpoints, and goes to the log with its traceback instead.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from sqlalchemy import text

from archive.aws import client
from archive.database import get_engine
from archive.ops.queues import queue_attributes
from archive.settings import get_settings

DEADLINE_SECONDS = 5.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    ms: float = 0.0
    values: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "ms": round(self.ms, 1), **self.values}


class NotReady(Exception):
    """A dependency answered, and the answer is bad (as opposed to an exception while asking)."""


def check_database() -> tuple[str, dict[str, Any]]:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()
    return "answers SELECT 1", {}


def check_bucket() -> tuple[str, dict[str, Any]]:
    bucket = get_settings().bucket
    client("s3").head_bucket(Bucket=bucket)
    return f"s3://{bucket} reachable", {}


def check_ingest_queue() -> tuple[str, dict[str, Any]]:
    name = get_settings().ingest_queue_name
    depth = int(queue_attributes(name, "ApproximateNumberOfMessages")["ApproximateNumberOfMessages"])
    return f"{name}: {depth} waiting", {"depth": depth}


def check_dead_letters() -> tuple[str, dict[str, Any]]:
    settings = get_settings()
    redrive = queue_attributes(settings.ingest_queue_name, "RedrivePolicy").get("RedrivePolicy")
    if not redrive:
        raise NotReady(f"{settings.ingest_queue_name} has no dead-letter queue (no redrive policy)")
    dlq_name = json.loads(redrive)["deadLetterTargetArn"].rsplit(":", 1)[-1]
    depth = int(queue_attributes(dlq_name, "ApproximateNumberOfMessages")["ApproximateNumberOfMessages"])
    limit = settings.ready_max_dead_letters
    if depth > limit:
        raise NotReady(f"{dlq_name}: {depth} dead letters (more than {limit}); see the redrive steps in "
                       "docs/operations.md")
    return f"{dlq_name}: {depth} dead letters", {"depth": depth}


# What the image API cannot answer without: a failure of one of these is a 503.
REQUIRED = frozenset({"database", "bucket"})

READINESS_CHECKS: Mapping[str, Callable[[], tuple[str, dict[str, Any]]]] = {
    "database": check_database,
    "bucket": check_bucket,
    "ingest_queue": check_ingest_queue,
    "dead_letters": check_dead_letters,
}


def public_reason(name: str, exc: BaseException) -> str:
    """Why a check failed, fit for a public answer: the AWS error code or the exception's kind, never
    its message (which names hosts, ports, users and endpoints)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "")) or "ClientError"
        return f"{name.replace('_', ' ')} unavailable ({code[:60]})"
    return f"{name.replace('_', ' ')} unavailable ({type(exc).__name__})"


def _timed(name: str, probe: Callable[[], tuple[str, dict[str, Any]]]) -> Check:
    started = time.perf_counter()
    try:
        detail, values = probe()
        ok = True
    except NotReady as exc:
        ok, detail, values = False, str(exc), {}
    except Exception as exc:  # noqa: BLE001 - any failure to ask is the answer: not ready, and why
        logger.warning("readiness check %s failed", name, exc_info=exc)
        ok, detail, values = False, public_reason(name, exc), {}
    return Check(name, ok, detail, (time.perf_counter() - started) * 1000, values)


def readiness(
    checks: Mapping[str, Callable[[], tuple[str, dict[str, Any]]]] = READINESS_CHECKS,
    deadline_seconds: float = DEADLINE_SECONDS,
) -> list[Check]:
    """Every check, run concurrently; one that has not answered by the deadline fails as such."""
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="ready")
    try:
        futures = {name: pool.submit(_timed, name, probe) for name, probe in checks.items()}
        end = time.monotonic() + deadline_seconds
        results = []
        for name, future in futures.items():
            try:
                results.append(future.result(timeout=max(0.0, end - time.monotonic())))
            except FutureTimeout:
                results.append(Check(name, False, f"no answer within {deadline_seconds:g} s",
                                     deadline_seconds * 1000))
        return results
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

"""Logging for the Lambda faces, set up once per process and shared by every handler.

One powertools Logger writes JSON lines for the handlers and the `archive.*` loggers alike. Which
function and which invocation a line belongs to are per-thread keys (`function`, `correlation_id`),
set at the start of each invocation: the local stack runs the ingest and expire handlers in one
process on different threads, and neither may stamp its name or request id on the other's lines.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from archive.settings import get_settings

SERVICE = get_settings().service_name  # also the metrics' `service` dimension (archive/metrics.py)

logger = Logger(service=SERVICE, level=get_settings().log_level)
copy_config_to_registered_loggers(source_logger=logger, include={"archive"})


def start_invocation(function: str, context: Any) -> None:
    """Forget the previous invocation's keys on this thread and stamp this one's."""
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(function=function, correlation_id=getattr(context, "aws_request_id", None))


def set_level(level: str) -> None:
    """Change the level of the handlers' and the core's lines (commands that drive handlers in bulk)."""
    copy_config_to_registered_loggers(source_logger=logger, include={"archive"}, log_level=level)
    logger.setLevel(level)

"""Time as the pipeline keeps it: naive datetimes in UTC, and epoch seconds for DynamoDB TTLs.

Postgres stores `timestamp without time zone` (docs/contracts.md §2), so the core passes naive UTC datetimes
around; this module is the one place that turns "now" and such datetimes into those shapes.
"""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """Now, as a naive UTC datetime."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def epoch_seconds(moment: dt.datetime) -> float:
    """Seconds since the epoch; a naive datetime is taken as UTC (the pipeline's convention)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()

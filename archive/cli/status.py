"""`python -m archive status`: what the archive has been doing, from the tables and queues.

Counts of logged attempts per site and status (the `recent-uploads-log` table, so the last 48 hours by
default), the latest attempts (newest first, by when they ran) with their reasons, the dashboard's
metrics (on the local stack: uploads per site and outcome, ingest lag percentiles, render hit ratio and
times, from the functions' own metric lines), the depth of the ingest queue, its dead-letter queue and
the datastream queue, and the number of `images` rows per site when the database is reachable.
Works against the local stack (its `.archive/local.env`) or any AWS account.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select

import db
from archive import database
from archive.ingest.uploads_log import attempt_order, processed_seconds, scan_items
from archive.local.metrics_log import local_summary
from archive.local.target import add_env_file_argument, load_target
from archive.ops.queues import queue_depths
from archive.settings import get_settings
from archive.statuses import STATUSES


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain left-aligned text table (numbers right-aligned)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(row[i].isdigit() for row in cells[1:]) and len(cells) > 1 for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True))

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *(line(r) for r in cells[1:])]).rstrip()


def counts_by_site(items: Iterable[Mapping[str, Any]]) -> dict[str, Counter[str]]:
    """site → Counter of status over upload-log items (plain values)."""
    out: dict[str, Counter[str]] = {}
    for item in items:
        out.setdefault(str(item.get("site")), Counter())[str(item.get("status"))] += 1
    return out


def status_table(counts: Mapping[str, Counter[str]]) -> str:
    statuses = list(STATUSES) + sorted({s for c in counts.values() for s in c} - set(STATUSES))
    rows = [[site, *(counts[site][s] for s in statuses), sum(counts[site].values())] for site in sorted(counts)]
    return format_table(["site", *statuses, "total"], rows)


def recent(items: Iterable[Mapping[str, Any]], limit: int) -> list[Mapping[str, Any]]:
    """The `limit` latest attempts, newest first (the range key orders items by when the attempt ran)."""
    return sorted(items, key=attempt_order, reverse=True)[:limit]


def image_rows_per_site() -> str:
    if not (os.environ.get("DATABASE_URL") or os.environ.get("DATABASE_URL_SSM_PARAM")):
        return "images: no DATABASE_URL; skipped"
    try:

        with database.get_engine().connect() as conn:
            rows = conn.execute(
                select(db.images.c.site, func.count(), func.max(db.images.c.capture_date))
                .group_by(db.images.c.site)
                .order_by(db.images.c.site)
            ).all()
    except Exception as exc:  # noqa: BLE001 - status reports what it cannot reach and goes on
        return f"images: database unavailable ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    return format_table(["site", "rows", "latest capture"], [(s, n, latest) for s, n, latest in rows])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _distribution(d: Mapping[str, Any]) -> str:
    return f"p50 {_ms(d['p50'])}, p95 {_ms(d['p95'])}, max {_ms(d['max'])} ({d['count']} samples)"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def metrics_report(summary: Mapping[str, Any]) -> str:
    """The dashboard's numbers (archive.metrics.summarize) as text: uploads per site and outcome, lag and
    thumbnail percentiles, image API statuses, hit ratio and times, expiries and datastream messages."""
    uploads = {site: Counter(c) for site, c in summary["uploads"].items()}
    ratio = summary["render_hit_ratio"]
    times = summary["render_ms"]
    lines = [
        status_table(uploads) if uploads else "  no uploads yet",
        f"ingest lag (S3 event to row): {_distribution(summary['ingest_lag_ms'])}",
        f"thumbnail time: {_distribution(summary['thumbnail_ms'])}",
        f"image API answers: {_counts(summary['renders'])}",
        "image API cache hit ratio: " + ("-" if ratio is None else f"{ratio:.0%}")
        + f"; time hit {_distribution(times['hit'])}; miss {_distribution(times['miss'])}",
        f"expiries: {_counts(summary['expirations'])}; datastream messages: {_counts(summary['datastream'])}",
    ]
    return "\n".join(lines)


def metrics_section() -> str:
    summary = local_summary(get_settings().metrics_log)
    if summary is None:
        return (f"Metrics: on the CloudWatch dashboard photonranch-archive-{get_settings().stage} "
                "(this target keeps no local copy)")
    return "Metrics (the dashboard's, from the functions' metric lines since the stack started)\n" + \
        metrics_report(summary)


def _utc(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def run(args: argparse.Namespace) -> int:
    print(load_target(args.env_file))
    items = scan_items()
    print(f"\nUploads logged ({len(items)} items)")
    print(status_table(counts_by_site(items)) if items else "  none")
    if items and args.last:
        print(f"\nLast {min(args.last, len(items))} attempts (newest first)")
        rows = [
            (
                _utc(processed_seconds(i)),
                _utc(int(i.get("upload_timestamp_s", 0))),
                i.get("status", ""),
                i.get("filename", ""),
                str(i.get("reason", ""))[:60],
            )
            for i in recent(items, args.last)
        ]
        print(format_table(["processed (UTC)", "uploaded (UTC)", "status", "key", "reason"], rows))
    print()
    print(metrics_section())
    print("\nQueues")
    print(format_table(["queue", "waiting", "in flight", "error"], queue_depths()))
    print()
    print(image_rows_per_site())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status", help="uploads per site and status, the last uploads, queue depths", description=__doc__
    )
    parser.add_argument("--last", type=int, default=10, help="how many recent uploads to list (default: 10)")
    add_env_file_argument(parser)
    parser.set_defaults(func=run)

"""The local stack's copy of the functions' metrics: their EMF records, one JSON line each, in a file.

In AWS the functions print EMF lines to their logs and CloudWatch turns them into the dashboard's
metrics. Locally the stack registers a sink (archive.metrics.add_sink) that appends the same records
to `{state_dir}/metrics.jsonl` (ARCHIVE_METRICS_LOG); `python -m archive status`, in another process,
and the viewer read it back and summarise it with `archive.metrics.summarize`, the dashboard's
definitions. The file starts empty with each stack, as moto's tables do.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from archive import metrics


class MetricsLog:
    """Append EMF records to a JSON-lines file (the stack's worker and sweeper threads both write)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def __call__(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock, self.path.open("a") as out:
            out.write(line)

    def start(self) -> None:
        metrics.add_sink(self, instead_of_stdout=True)

    def stop(self) -> None:
        metrics.remove_sink(self)


def read_records(path: str | Path | None) -> list[dict[str, Any]]:
    """The EMF records in the file; none when there is no file (not the local stack) or it is unreadable.
    A line being written while it is read (the last one, partial) is skipped."""
    if not path:
        return []
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "_aws" in record:
            out.append(record)
    return out


def local_summary(path: str | Path | None) -> dict[str, Any] | None:
    """`archive.metrics.summarize` over the file; None when there is no file to read."""
    if not path or not Path(path).exists():
        return None
    return metrics.summarize(read_records(path))

"""The functions' metrics, from the outcomes the core returns (names and dimensions: archive/metrics.py).

The core never sees a metric: the handlers measure at their edge (an upload's lag is taken when
`ingest_upload` returns, its row committed and its upload log written; a render's time is the whole
request as the function answers it) and hand the figures here, which groups them into as few EMF
lines as the dimensions allow.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from archive import metrics
from archive.formats.filenames import FilenameError, file_role, parse_key, site_of
from archive.statuses import FAILED, INGESTED

if TYPE_CHECKING:  # the render and expire functions must not load the ingest pipeline for a type
    from archive.ingest.datastream import NotifyResult
    from archive.ingest.pipeline import Outcome, Upload


@dataclass(frozen=True, slots=True)
class Measured:
    """One upload's outcome and how long after its S3 event it was done (ms)."""

    outcome: Outcome
    lag_ms: float


def upload_role(key: str) -> str:
    """The file's role for the `role` dimension: its FileRole, `header` for a header text, else `other`."""
    try:
        name = parse_key(key).name
    except FilenameError:
        return "other"
    if name.ext == "txt":
        return "header"
    role = file_role(name)
    return role.name.lower() if role is not None else "other"


def record_uploads(measured: Iterable[Measured]) -> None:
    """`Uploads` per (site, role, outcome); `IngestLag` of the ingested ones; `ThumbnailTime`."""
    counts: Counter[tuple[str, str, str]] = Counter()
    lags: list[float] = []
    thumbnails: list[float] = []
    for m in measured:
        o = m.outcome
        counts[(o.site, upload_role(o.upload.key), o.status)] += 1
        if o.status == INGESTED:
            lags.append(m.lag_ms)
        if o.thumbnail_ms is not None:
            thumbnails.append(o.thumbnail_ms)
    for (site, role, outcome), n in sorted(counts.items()):
        metrics.count(metrics.UPLOADS, n, site=site, role=role, outcome=outcome)
    metrics.emit(metrics.INGEST_LAG, lags)
    metrics.emit(metrics.THUMBNAIL_TIME, thumbnails)


def record_retried_upload(upload: Upload) -> None:
    """An upload whose attempt raised (it will be retried): counted `failed`, as its upload-log item says."""
    metrics.count(metrics.UPLOADS, 1, site=site_of(upload.key), role=upload_role(upload.key), outcome=FAILED)


def record_datastream(result: NotifyResult) -> None:
    metrics.count(metrics.DATASTREAM_MESSAGES, result.sent, outcome="sent")
    metrics.count(metrics.DATASTREAM_MESSAGES, result.failed, outcome="failed")


def record_expirations(outcomes: Iterable[str]) -> None:
    for outcome, n in sorted(Counter(outcomes).items()):
        metrics.count(metrics.EXPIRATIONS, n, outcome=outcome)


class RenderTimer:
    """Times one image request; `done` records its status class and, when answered, its time by
    cache hit or miss and source kind."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def done(self, http_status: int, cached: bool | None = None, source: str | None = None) -> None:
        metrics.count(metrics.RENDERS, 1, status_class=metrics.status_class(http_status))
        if cached is not None and source:
            elapsed = (time.perf_counter() - self.started) * 1000
            metrics.emit(metrics.RENDER_TIME, [elapsed], cache="hit" if cached else "miss", source=source)

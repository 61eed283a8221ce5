"""The archive's CloudWatch metrics, defined once: names, units, dimensions, and how they are read back.

The Lambda faces (`handlers/`) emit these from the outcomes the core returns, as CloudWatch embedded
metric format (EMF) lines built by powertools' metrics: JSON printed to the function's log, which
CloudWatch turns into metrics with no API call and no latency in the function. The dashboard and the
alarms in serverless.yml read exactly these names and dimension sets (tests/packaging/test_template.py
holds them equal), and the local stack reads the same lines back (`summarize`) for
`python -m archive status` and the viewer's dev tools, so a number means the same thing everywhere.

Every metric carries `service` and `stage` (one value each per deployment, so they multiply nothing),
plus at most two more dimensions:

| metric               | unit         | dimension sets (besides service, stage)   | emitted                        |
|----------------------|--------------|-------------------------------------------|--------------------------------|
| `Uploads`            | Count        | (site, outcome), (role, outcome)          | per batch, per site/role/status|
| `IngestLag`          | Milliseconds | ()                                        | per ingested upload            |
| `ThumbnailTime`      | Milliseconds | ()                                        | per thumbnail written          |
| `Renders`            | Count        | (), (status_class,)                       | per image request              |
| `RenderTime`         | Milliseconds | (cache,), (cache, source)                 | per answered image request     |
| `Expirations`        | Count        | (outcome,)                                | per expiry stream record       |
| `DatastreamMessages` | Count        | (outcome,)                                | per ingest batch               |

What a month costs (us-east-1 list prices, 2026: custom metrics $0.30 per metric per month for the
first 10,000, pro-rated by the hour a metric receives data; EMF is billed as log ingestion, $0.50 per GB,
plus $0.03 per GB-month stored). A metric is one name with one combination of dimension values:
- `Uploads`: ~10 sites x 4 outcomes + 6 roles x 4 outcomes = 64 at most, 25 or so in a real night
  (most sites see only `ingested`, a few `ignored`); `IngestLag` 1, `ThumbnailTime` 1; `Renders` 5
  (2xx/3xx/4xx/5xx + total); `RenderTime` 2 + 2 x 4 sources = 10; `Expirations` 5; `DatastreamMessages` 2.
  Worst case 88 metrics x $0.30 = $26.40 a month if every one received data every hour of the month;
  metrics that only see data at night are charged for those hours, so ~$10 a month is the honest figure.
- Log bytes: one EMF line is ~400 bytes, and a batch writes one per (site, role, outcome) seen plus
  one each for lag, thumbnails and datastream. A busy night at one site is ~20,000 uploads; with no
  batching window (serverless.yml) uploads that trickle in come one per batch: worst case 20,000
  batches x ~3.5 lines x 400 B = 28 MB a night (in full batches of 10: ~2,000 x 8 lines = 6.4 MB).
  Ten such sites every night for a month: 8.4 GB, $4.20 of ingestion at worst. Each upload's own JSON
  log lines (~4 of ~500 B) cost more than its metrics.
The dimensions deliberately left out: the key, the exposure, the instrument (unbounded: every new value
would be a new billed metric), and the site on lag and render time (percentiles per site are rarely
acted on; the upload log has per-file times when a site is in question).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from archive.settings import get_settings
from archive.statuses import STATUSES

logger = logging.getLogger(__name__)

COMMON_DIMENSIONS = ("service", "stage")
MAX_VALUES_PER_LINE = 99  # powertools prints a line by itself at 100 values; stay under it


# The values each bounded dimension takes (anything else is a bug: it would be a new billed metric).
UPLOAD_OUTCOMES = STATUSES
ROLES = ("header", "fits_raw", "fits_reduced", "jpg_medium", "jpg_small", "other")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
CACHE = ("hit", "miss")
SOURCES = ("jpg", "small", "large", "colour")
EXPIRY_OUTCOMES = ("expired", "cancelled", "invalid", "failed", "ignored")
DATASTREAM_OUTCOMES = ("sent", "failed")


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # a CloudWatch unit, as EMF spells it
    # Besides COMMON_DIMENSIONS. The first is powertools' primary set, the only one that may be empty.
    dimension_sets: tuple[tuple[str, ...], ...]
    # The values a bounded dimension may take; `site` is bounded by the filename grammar and the sites.
    allowed: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def dimension_names(self) -> tuple[str, ...]:
        """Every dimension a line of this metric carries (besides the common ones), first-seen order."""
        return tuple(dict.fromkeys(name for names in self.dimension_sets for name in names))

    def full_dimension_sets(self) -> list[list[str]]:
        """The dimension sets as CloudWatch sees them (with `service` and `stage`)."""
        return [[*COMMON_DIMENSIONS, *names] for names in self.dimension_sets]

    def check(self, dimensions: Mapping[str, str]) -> None:
        """Raise ValueError for a missing or extra dimension, or a value outside the bounded set."""
        if set(dimensions) != set(self.dimension_names):
            raise ValueError(f"{self.name} takes dimensions {self.dimension_names}, got {sorted(dimensions)}")
        for name, values in self.allowed:
            if dimensions[name] not in values:
                raise ValueError(f"{self.name}: {name}={dimensions[name]!r} is not one of {values}")


UPLOADS = Metric("Uploads", "Count", (("site", "outcome"), ("role", "outcome")),
                 (("outcome", UPLOAD_OUTCOMES), ("role", ROLES)))
INGEST_LAG = Metric("IngestLag", "Milliseconds", ((),))
THUMBNAIL_TIME = Metric("ThumbnailTime", "Milliseconds", ((),))
RENDERS = Metric("Renders", "Count", ((), ("status_class",)), (("status_class", STATUS_CLASSES),))
RENDER_TIME = Metric("RenderTime", "Milliseconds", (("cache",), ("cache", "source")),
                     (("cache", CACHE), ("source", SOURCES)))
EXPIRATIONS = Metric("Expirations", "Count", (("outcome",),), (("outcome", EXPIRY_OUTCOMES),))
DATASTREAM_MESSAGES = Metric("DatastreamMessages", "Count", (("outcome",),), (("outcome", DATASTREAM_OUTCOMES),))
METRICS = (UPLOADS, INGEST_LAG, THUMBNAIL_TIME, RENDERS, RENDER_TIME, EXPIRATIONS, DATASTREAM_MESSAGES)


def status_class(http_status: int) -> str:
    return f"{http_status // 100}xx"


# --------------------------------------------------------------------------------------------------
# Emitting.

Sink = Callable[[dict[str, Any]], None]
_sinks: list[tuple[Sink, bool]] = []  # (sink, whether it replaces stdout)
_sinks_lock = threading.Lock()


def add_sink(sink: Sink, *, instead_of_stdout: bool = False) -> None:
    """Also hand every EMF record to `sink`. The local stack keeps them in a file for `status` and the
    viewer, and asks that they stay off stdout (its console is for people; in Lambda stdout is the log)."""
    with _sinks_lock:
        _sinks.append((sink, instead_of_stdout))


def remove_sink(sink: Sink) -> None:
    with _sinks_lock:
        _sinks[:] = [(s, quiet) for s, quiet in _sinks if s is not sink]


def records(metric: Metric, values: Sequence[float], **dimensions: str) -> list[dict[str, Any]]:
    """The EMF records (plain dicts) for these values of one metric with these dimension values."""
    metric.check(dimensions)
    settings = get_settings()
    out = []
    for start in range(0, len(values), MAX_VALUES_PER_LINE):
        emf = EphemeralMetrics(namespace=settings.metrics_namespace, service=settings.service_name)
        emf.set_default_dimensions(service=settings.service_name, stage=settings.stage)
        primary, *others = metric.dimension_sets
        for name in primary:
            emf.add_dimension(name=name, value=dimensions[name])
        for names in others:
            emf.add_dimensions(**{name: dimensions[name] for name in names})
        for value in values[start:start + MAX_VALUES_PER_LINE]:
            emf.add_metric(name=metric.name, unit=metric.unit, value=value)
        out.append(dict(emf.serialize_metric_set()))
    return out


def emit(metric: Metric, values: Sequence[float], **dimensions: str) -> None:
    """Print the metric's EMF line(s) to stdout (the function's log) and hand them to the sinks.

    Nothing when there are no values, or when powertools' metrics are switched off
    (POWERTOOLS_METRICS_DISABLED). A metric never fails the work it measures: errors are logged.
    """
    if not values or is_metrics_disabled():
        return
    try:
        lines = records(metric, values, **dimensions)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.exception("could not build the %s metric", metric.name)
        return
    with _sinks_lock:
        sinks = list(_sinks)
    to_stdout = not any(quiet for _, quiet in sinks)
    for record in lines:
        if to_stdout:
            print(json.dumps(record, separators=(",", ":")), flush=True)
        for sink, _ in sinks:
            sink(record)


def count(metric: Metric, n: int, **dimensions: str) -> None:
    """`n` of something, as one value (CloudWatch sums it); nothing for zero."""
    if n:
        emit(metric, [float(n)], **dimensions)


# --------------------------------------------------------------------------------------------------
# Reading back (the local stack): the dashboard's numbers from the same records.


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile (the value below which p% of the samples lie); None with no samples.

    CloudWatch's pNN over a period is the same definition on its own (approximate) distribution.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    """What the dashboard plots for a time: p50, p95, max, and how many samples."""
    return {"count": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "max": max(values) if values else None}


def _values(record: Mapping[str, Any], name: str) -> list[float]:
    raw = record.get(name)
    if raw is None:
        return []
    return [float(v) for v in (raw if isinstance(raw, list) else [raw])]


def _names(record: Mapping[str, Any]) -> set[str]:
    directives = (record.get("_aws") or {}).get("CloudWatchMetrics") or []
    return {m.get("Name") for d in directives for m in d.get("Metrics", [])}


def summarize(emf_records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-site upload counts, lag and thumbnail percentiles, render statuses, hit ratio and times,
    expiry and datastream outcomes: the dashboard's widgets, over every record given.

    The hit ratio is the dashboard's: renders answered from the cache over every answered render
    (`RenderTime` samples with cache=hit over all `RenderTime` samples); None before the first render.
    """
    uploads: dict[str, Counter[str]] = {}
    roles: dict[str, Counter[str]] = {}
    series: defaultdict[str, list[float]] = defaultdict(list)  # lag, thumbnail, and render times by hit/miss
    renders: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    expirations: Counter[str] = Counter()
    datastream: Counter[str] = Counter()
    for record in emf_records:
        names = _names(record)
        if UPLOADS.name in names:
            n = sum(_values(record, UPLOADS.name))
            uploads.setdefault(str(record.get("site")), Counter())[str(record.get("outcome"))] += int(n)
            roles.setdefault(str(record.get("role")), Counter())[str(record.get("outcome"))] += int(n)
        if INGEST_LAG.name in names:
            series["lag"] += _values(record, INGEST_LAG.name)
        if THUMBNAIL_TIME.name in names:
            series["thumbnail"] += _values(record, THUMBNAIL_TIME.name)
        if RENDERS.name in names:
            renders[str(record.get("status_class"))] += int(sum(_values(record, RENDERS.name)))
        if RENDER_TIME.name in names:
            times = _values(record, RENDER_TIME.name)
            series[str(record.get("cache"))] += times
            sources[str(record.get("source"))] += len(times)
        if EXPIRATIONS.name in names:
            expirations[str(record.get("outcome"))] += int(sum(_values(record, EXPIRATIONS.name)))
        if DATASTREAM_MESSAGES.name in names:
            datastream[str(record.get("outcome"))] += int(sum(_values(record, DATASTREAM_MESSAGES.name)))
    answered = len(series["hit"]) + len(series["miss"])
    return {
        "uploads": {site: dict(c) for site, c in sorted(uploads.items())},
        "roles": {role: dict(c) for role, c in sorted(roles.items())},
        "ingest_lag_ms": distribution(series["lag"]),
        "thumbnail_ms": distribution(series["thumbnail"]),
        "renders": dict(sorted(renders.items())),
        "render_hit_ratio": len(series["hit"]) / answered if answered else None,
        "render_ms": {"all": distribution(series["hit"] + series["miss"]), "hit": distribution(series["hit"]),
                      "miss": distribution(series["miss"])},
        "render_sources": dict(sorted(sources.items())),
        "expirations": dict(sorted(expirations.items())),
        "datastream": dict(sorted(datastream.items())),
    }

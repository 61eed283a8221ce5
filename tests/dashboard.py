"""What the dashboard and the alarms read: (metric name, dimension names) of one namespace.

Read from serverless.yml itself (its `custom.dashboard`, which deploy/dashboard.js turns into the body,
and the alarms in `resources`), with the few variables they use resolved the way `serverless package`
does for the default stage, or from a packaged template (tests/packaging/test_template.py). A dashboard
line is a metric array `[namespace, name, dim, value, …, {options}]` or a SEARCH expression whose schema
`{namespace,dim,…}` names the dimensions exactly, as CloudWatch matches them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVERLESS_YML = ROOT / "serverless.yml"

MetricRef = tuple[str, frozenset[str]]

_SEARCH = re.compile(r"\{([^}]*)\}\s+MetricName=\\?\"(\w+)\\?\"")


class _Loader(yaml.SafeLoader):
    """serverless.yml's CloudFormation tags (!Ref, !GetAtt, !Sub) read as plain values."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def serverless_config(stage: str = "dev") -> dict[str, Any]:
    """serverless.yml with `${param:…}`, `${sls:stage}`, `${self:service}` and the region resolved."""
    raw = yaml.load(SERVERLESS_YML.read_text(), Loader=_Loader)  # noqa: S506 - our own file, safe loader
    params = {**raw["params"]["default"], **(raw["params"].get(stage) or {})}
    values = {"sls:stage": stage, "self:service": raw["service"], "self:provider.region": "us-east-1"}

    def resolve(value: Any) -> Any:
        whole = re.fullmatch(r"\$\{self:(custom\.[\w.]+)\}", value) if isinstance(value, str) else None
        if whole:  # a reference to a block of the file, e.g. ${self:custom.errorRate.ingest}
            found: Any = raw
            for part in whole.group(1).split("."):
                found = found[part]
            return resolve(found)
        if isinstance(value, str):
            value = re.sub(r"\$\{param:(\w+)\}", lambda m: str(params[m.group(1)]), value)
            return re.sub(r"\$\{(sls:stage|self:service|self:provider\.region)\}", lambda m: values[m.group(1)], value)
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    return resolve(raw)


def dashboard_refs(body: dict[str, Any], namespace: str) -> set[MetricRef]:
    """Every (metric, dimension names) of `namespace` a dashboard body plots, arrays and SEARCHes alike."""
    refs: set[MetricRef] = set()
    for widget in body.get("widgets", []):
        for line in (widget.get("properties") or {}).get("metrics", []):
            if line and isinstance(line[0], dict):
                expression = line[0].get("expression", "")
                for schema, name in _SEARCH.findall(expression):
                    parts = [p.strip() for p in schema.split(",")]
                    if parts[0] == namespace:
                        refs.add((name, frozenset(parts[1:])))
                continue
            values = [v for v in line if not isinstance(v, dict)]
            if values and values[0] == namespace:
                refs.add((values[1], frozenset(values[2::2])))
    return refs


def _alarm_metrics(properties: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if properties.get("MetricName"):
        yield properties
    for query in properties.get("Metrics") or []:
        metric = (query.get("MetricStat") or {}).get("Metric")
        if metric:
            yield metric


def alarm_refs(resources: dict[str, Any], namespace: str) -> set[MetricRef]:
    """Every (metric, dimension names) of `namespace` the template's alarms watch."""
    refs: set[MetricRef] = set()
    for resource in resources.values():
        if resource.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        for metric in _alarm_metrics(resource.get("Properties") or {}):
            if metric.get("Namespace") == namespace:
                refs.add((metric["MetricName"], frozenset(d["Name"] for d in metric.get("Dimensions") or [])))
    return refs


def serverless_refs(stage: str = "dev") -> tuple[str, set[MetricRef]]:
    """(the metrics namespace, what serverless.yml's dashboard and alarms read from it)."""
    config = serverless_config(stage)
    namespace = config["params"]["default"]["metricsNamespace"]
    refs = dashboard_refs(config["custom"]["dashboard"], namespace)
    return namespace, refs | alarm_refs(config["resources"]["Resources"], namespace)


def emitted_refs(emf_records: Iterable[dict[str, Any]]) -> dict[MetricRef, set[str]]:
    """(metric, dimension names) → the units the EMF records give it."""
    out: dict[MetricRef, set[str]] = {}
    for record in emf_records:
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    out.setdefault((metric["Name"], frozenset(dimensions)), set()).add(metric["Unit"])
    return out


def parse_body(text: str) -> dict[str, Any]:
    return json.loads(text)

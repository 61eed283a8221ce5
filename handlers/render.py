"""Lambda entry point for the image API (API Gateway HTTP API, payload format 2.0).

Routes, by the event's `routeKey` (the same keys serverless.yml declares; the local stack's HTTP
front derives them from its route patterns):

- `GET /health`: liveness, touches nothing, never cached;
- `GET /health/ready`: database, bucket, ingest queue and dead letters (archive.health); 503 naming
  what fails.

The local stack serves this same handler on loopback (archive/local/api.py), so both answer alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from archive import health
from archive.settings import get_settings
from handlers.observability import logger, start_invocation

NO_STORE = {"cache-control": "no-store"}


def respond(status: int, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(payload),
        "isBase64Encoded": False,
    }


def liveness(event: dict[str, Any]) -> dict[str, Any]:
    return respond(200, {"status": "ok", "stage": get_settings().stage}, NO_STORE)


def ready(event: dict[str, Any]) -> dict[str, Any]:
    checks = health.readiness()
    failing = [c.name for c in checks if not c.ok]
    body = {"status": "not ready" if failing else "ready", "failing": failing,
            "checks": {c.name: c.as_dict() for c in checks}}
    if failing:
        logger.warning("not ready", extra={"failing": failing, "checks": body["checks"]})
    return respond(503 if failing else 200, body, NO_STORE)


ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "GET /health": liveness,
    "GET /health/ready": ready,
}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    start_invocation("render", context)
    route = ROUTES.get(event.get("routeKey", ""))
    if route is None:
        return respond(404, {"message": "Not Found"})
    return route(event)

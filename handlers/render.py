"""Lambda entry point for the image API (API Gateway HTTP API, payload format 2.0).

Routes, by the event's `routeKey` (the same keys serverless.yml declares; the local stack's HTTP
front derives them from its route patterns):

- `GET /health`: liveness, touches nothing, never cached;
- `GET /health/ready`: database, bucket, ingest queue and dead letters (archive.ops.health); 503 naming
  what fails;
- `GET /thumbnails/{base_filename}`: an exposure rendered at the size asked (archive.render.api). JSON
  `{url, expires_at, width, height, cached}`, or with `image=true` a 302 to the picture. Errors are
  JSON `{message, …}` with their status (400 naming the parameter, 404, 413, 422, 429, 502, 504).

The local stack serves this same handler on loopback (archive/local/api.py), so both answer alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from archive.ops import health
from archive.render import api as render
from archive.render.params import RenderError
from archive.settings import get_settings
from handlers.metrics import RenderTimer
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


def thumbnail(event: dict[str, Any]) -> dict[str, Any]:
    """The image request; counted by status class and, when answered, timed by cache hit and source kind."""
    timer = RenderTimer()
    target = (event.get("pathParameters") or {}).get("base_filename", "")
    query = event.get("queryStringParameters") or {}
    try:
        result = render.render_request(target, query)
    except RenderError as exc:
        timer.done(exc.http_status)
        level = logger.warning if exc.http_status >= 500 else logger.info
        level("render refused", extra={"status": exc.http_status, "target": target, "query": query,
                                       "reason": exc.message, "details": exc.details})
        headers = dict(NO_STORE)
        if "retry_after" in exc.details:
            headers["retry-after"] = str(exc.details["retry_after"])
        return respond(exc.http_status, exc.payload(), headers)
    except Exception:
        timer.done(500)  # the handler answers 500 for it
        raise
    logger.info("render", extra={"target": target, "key": result.key, "cached": result.cached})
    if result.redirect:
        timer.done(302, result.cached, result.source)
        return {"statusCode": 302, "headers": {"location": result.url, **NO_STORE}, "body": "",
                "isBase64Encoded": False}
    timer.done(200, result.cached, result.source)
    # The link in the answer expires; the stable address a client keeps is this endpoint's.
    return respond(200, result.as_json(), NO_STORE)


ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "GET /health": liveness,
    "GET /health/ready": ready,
    "GET /thumbnails/{base_filename}": thumbnail,
}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    start_invocation("render", context)
    route = ROUTES.get(event.get("routeKey", ""))
    if route is None:
        return respond(404, {"message": "Not Found"})
    try:
        return route(event)
    except Exception:
        logger.exception("unexpected failure", extra={"route": event.get("routeKey"), "path": event.get("rawPath")})
        return respond(500, {"message": "internal error; it is logged"}, NO_STORE)

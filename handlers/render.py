"""Lambda entry point for the image API (API Gateway HTTP API, payload format 2.0).

Routes, by the event's `routeKey` (the same keys serverless.yml declares; the local stack's HTTP
front derives them from its route patterns):

- `GET /health`: liveness, touches nothing, never cached;
- `GET /health/ready`: what rendering needs, the database and the bucket (archive.ops.health); 503
  naming what fails. The ingest queue and its dead letters are reported in the body as warnings,
  never a 503: a stuck upload does not stop the image API from drawing what is archived;
- `GET /thumbnails/{base_filename}`: an exposure rendered at the size asked (archive.render.api). JSON
  `{url, expires_at, width, height, cached}`, or with `image=true` a 302 to the picture. Errors are
  JSON `{message, …}` with their status (400 naming the parameter, 404, 413, 422, 429, 502, 504).
  A trailing slash (`/thumbnails/{name}/`, the reference service's URL shape) is the same request:
  API Gateway routes it here, and the local front likewise;
- `GET /favicon.ico` (204) and `GET /robots.txt` (`Disallow: /`): what browsers and crawlers ask
  for, answered without importing or rendering anything;
- `HEAD` of each: the GET's status and headers without a body;
- `OPTIONS` (a CORS preflight), whatever the path: 204, with the CORS headers when the `Origin` is one
  of CORS_ORIGINS (archive.render.cors). Deployed, API Gateway answers preflights itself from the same
  origins; every answer here carries `Access-Control-Allow-Origin` for an allowed origin and
  `Vary: Origin`, as API Gateway's are.

The local stack serves this same handler on loopback (archive/local/api.py), so both answer alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from archive import snapstart
from archive.ops import health
from archive.render import api as render
from archive.render import cors
from archive.render.params import RenderError
from archive.settings import get_settings
from handlers.metrics import RenderTimer
from handlers.observability import logger, start_invocation

NO_STORE = {"cache-control": "no-store"}
ROBOTS = "User-agent: *\nDisallow: /\n"
# Browsers ask for /favicon.ico on their own; a day's answer keeps them from asking on every page.
STATIC_CACHE = {"cache-control": "public, max-age=86400"}

# With SnapStart: numpy, astropy and Pillow imported and a tiny picture rendered before the snapshot;
# clients, engines and random seeds renewed after each restore (archive/snapstart.py).
snapstart.install(render.rehearse)


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
    failing = [c.name for c in checks if not c.ok and c.name in health.REQUIRED]
    warnings = [c.name for c in checks if not c.ok and c.name not in health.REQUIRED]
    body = {"status": "not ready" if failing else "ready", "failing": failing, "warnings": warnings,
            "checks": {c.name: c.as_dict() for c in checks}}
    if failing or warnings:
        logger.warning("not ready" if failing else "ready, with warnings",
                       extra={"failing": failing, "warnings": warnings, "checks": body["checks"]})
    return respond(503 if failing else 200, body, NO_STORE)


def favicon(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 204, "headers": dict(STATIC_CACHE), "body": "", "isBase64Encoded": False}


def robots(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200, "headers": {"content-type": "text/plain; charset=utf-8", **STATIC_CACHE},
            "body": ROBOTS, "isBase64Encoded": False}


def thumbnail(event: dict[str, Any]) -> dict[str, Any]:
    """The image request; counted by status class and, when answered, timed by cache hit and source kind."""
    timer = RenderTimer()
    target = (event.get("pathParameters") or {}).get("base_filename", "").rstrip("/")
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


_GET_ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "/health": liveness,
    "/health/ready": ready,
    "/thumbnails/{base_filename}": thumbnail,
    "/favicon.ico": favicon,
    "/robots.txt": robots,
}
# The route keys serverless.yml declares (tests/packaging/test_template.py compares them): each path
# for GET and for HEAD. No OPTIONS routes: API Gateway answers preflights from its CORS configuration.
ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    f"{method} {path}": route for method in ("GET", "HEAD") for path, route in _GET_ROUTES.items()
}


def method_of(event: dict[str, Any]) -> str:
    method = ((event.get("requestContext") or {}).get("http") or {}).get("method")
    return str(method or event.get("routeKey", "").partition(" ")[0]).upper()


def preflight(event: dict[str, Any]) -> dict[str, Any]:
    headers = cors.preflight_headers(event.get("headers"), get_settings().cors_origins)
    return {"statusCode": 204, "headers": headers, "body": "", "isBase64Encoded": False}


def dispatch(event: dict[str, Any]) -> dict[str, Any]:
    route = ROUTES.get(event.get("routeKey", ""))
    if route is None:
        return respond(404, {"message": "Not Found"})
    try:
        return route(event)
    except Exception:
        logger.exception("unexpected failure", extra={"route": event.get("routeKey"), "path": event.get("rawPath")})
        return respond(500, {"message": "internal error; it is logged"}, NO_STORE)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    start_invocation("render", context)
    method = method_of(event)
    if method == "OPTIONS":
        return preflight(event)
    response = dispatch(event)
    response["headers"] = {**(response.get("headers") or {}),
                           **cors.answer_headers(event.get("headers"), get_settings().cors_origins)}
    if method == "HEAD":
        response["body"] = ""
        response["isBase64Encoded"] = False
    return response

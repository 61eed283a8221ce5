"""The local HTTP front: what API Gateway's HTTP API does for the deployed functions, on loopback.

Each request is matched against a list of `Route`s (method + a regular expression fully matched
against the raw path), turned into the payload-format-2.0 event API Gateway would send the Lambda
(rawPath, rawQueryString, queryStringParameters, pathParameters from the pattern's named groups,
lower-cased headers, requestContext.http, body/isBase64Encoded), handed to the route's handler, and
the handler's 2.0 response dict (statusCode, headers, cookies, body, isBase64Encoded) written back.
The handlers are the very functions the Lambdas run, so a client sees the same answers locally and
deployed. Like API Gateway, a path no route matches is a 404 `{"message": "Not Found"}`, and a
handler that raises is a 500 `{"message": "Internal Server Error"}` (logged here with its traceback).
Like API Gateway's HTTP API with the `cors` block of serverless.yml, an `OPTIONS` preflight of a path
some route serves is answered here (204, archive.render.cors, from `Settings.cors_origins`) without
calling a handler, and a path with a trailing slash is routed as the path without it.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from archive.local.events import LambdaContext
from archive.render import cors
from archive.settings import get_settings
from handlers.responses import json_response

logger = logging.getLogger(__name__)

Event = dict[str, Any]
Response = dict[str, Any]
MAX_BODY_BYTES = 10 * 2**20  # API Gateway's payload limit
CLIENT_TIMEOUT_SECONDS = 30  # a client that sends nothing for this long is dropped (its thread freed)
_CONTENT_LENGTH = re.compile(r"[0-9]{1,12}")
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>(?:[^()\\]|\\.)*\)")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # regex with named groups, fully matched against the raw path
    handle: Callable[[dict[str, Any]], dict[str, Any]]
    key: str | None = None  # the route key it was made from (lambda_routes), if any

    @property
    def route_key(self) -> str:
        """API Gateway's name for the route, e.g. `GET /thumbnails/{base_filename}`."""
        if self.key is not None:
            return self.key
        return f"{self.method} {_NAMED_GROUP.sub(lambda m: '{' + m.group(1) + '}', self.pattern)}"


def lambda_routes(route_keys: Sequence[str], handler: Callable[[Event, Any], Any], function_name: str) -> list[Route]:
    """Routes that hand their events to a Lambda handler, from API Gateway route keys such as
    `GET /thumbnails/{base_filename}` (a `{name}` segment matches one path segment)."""

    def call(event: Event) -> Response:
        return handler(event, LambdaContext(function_name))

    routes = []
    for key in route_keys:
        method, _, path = key.partition(" ")
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
        routes.append(Route(method, pattern, call, key))
    return routes


def match(routes: Sequence[Route], method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
    """The first route for this method whose pattern matches the whole path, with its path parameters;
    failing that, the same for the path without a trailing slash (as API Gateway routes it)."""
    paths = [raw_path] + ([raw_path[:-1]] if raw_path.endswith("/") and len(raw_path) > 1 else [])
    for path in paths:
        for route in routes:
            if route.method != method:
                continue
            found = re.fullmatch(route.pattern, path)
            if found:
                return route, {name: unquote(value) for name, value in found.groupdict().items() if value is not None}
    return None


def preflight(routes: Sequence[Route], target: str, headers: Sequence[tuple[str, str]]) -> Response | None:
    """API Gateway's answer to an `OPTIONS` request for a path some route serves (None for other paths)."""
    path = urlsplit(target).path or "/"
    if not any(match(routes, method, path) for method in {route.method for route in routes}):
        return None
    answer = cors.preflight_headers(dict(headers), get_settings().cors_origins)
    return {"statusCode": 204, "headers": answer, "body": "", "isBase64Encoded": False}


def _joined(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """API Gateway's 2.0 format joins repeated query parameters and headers with commas."""
    out: dict[str, str] = {}
    for name, value in pairs:
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


def http_event(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    route_key: str = "$default",
    path_parameters: dict[str, str] | None = None,
    source_ip: str = "127.0.0.1",
) -> Event:
    """The API Gateway HTTP API (payload format 2.0) event for a request line and its headers."""
    parts = urlsplit(target)
    lowered = [(name.lower(), value) for name, value in headers]
    cookies = [c.strip() for name, value in lowered if name == "cookie" for c in value.split(";") if c.strip()]
    header_map = _joined([(n, v) for n, v in lowered if n != "cookie"])
    now = time.time()
    event: Event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": header_map,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": header_map.get("host", "localhost"),
            "domainPrefix": header_map.get("host", "localhost").split(".")[0],
            "http": {
                "method": method,
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": header_map.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    query = parse_qsl(parts.query, keep_blank_values=True)
    if query:
        event["queryStringParameters"] = _joined(query)
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def normalise_response(response: Any) -> Response:
    """What API Gateway makes of a handler's return value: a dict without statusCode (or any other
    value) is a 200 with that value as JSON; a string body is sent as is."""
    if not isinstance(response, dict) or "statusCode" not in response:
        return json_response(200, response)
    return response


def response_bytes(response: Response) -> bytes:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def dispatch(routes: Sequence[Route], method: str, target: str, headers: Sequence[tuple[str, str]] = (),
             body: bytes = b"", source_ip: str = "127.0.0.1") -> Response:
    """Route one request and return the handler's response as API Gateway would pass it on."""
    path = urlsplit(target).path or "/"
    found = match(routes, method, path)
    if found is None and method == "OPTIONS":
        answer = preflight(routes, target, headers)
        if answer is not None:
            return answer
    if found is None:
        return json_response(404, {"message": "Not Found"})
    route, parameters = found
    event = http_event(method, target, headers, body, route_key=route.route_key, path_parameters=parameters,
                       source_ip=source_ip)
    try:
        return normalise_response(route.handle(event))
    except Exception:
        logger.exception("handler for %s raised", route.route_key)
        return json_response(500, {"message": "Internal Server Error"})


def content_length(raw: str | None) -> int | None:
    """A request's body length: absent is 0; anything but ASCII digits (`-1`, `abc`, `+5`) is None."""
    if raw is None or raw.strip() == "":
        return 0
    return int(raw.strip()) if _CONTENT_LENGTH.fullmatch(raw.strip()) else None


class _RequestHandler(BaseHTTPRequestHandler):
    server: LocalApiServer
    protocol_version = "HTTP/1.1"
    timeout = CLIENT_TIMEOUT_SECONDS  # socket timeout: a slow or silent client cannot hold a thread forever

    def _serve(self) -> None:
        length = content_length(self.headers.get("Content-Length"))
        if length is None:
            self.close_connection = True  # the body's end is unknown: nothing after it can be read
            self._write(json_response(400, {"message": "Bad Request: malformed Content-Length"}))
            return
        if length > MAX_BODY_BYTES:
            self._write(json_response(413, {"message": "Request Entity Too Large"}))
            return
        body = self.rfile.read(length) if length else b""
        response = dispatch(self.server.routes, self.command, self.path, list(self.headers.items()), body,
                            self.client_address[0])
        self._write(response)

    def _write(self, response: Response) -> None:
        payload = response_bytes(response)
        self.send_response(int(response.get("statusCode", 200)))
        headers = {k.lower(): str(v) for k, v in (response.get("headers") or {}).items()}
        headers.setdefault("content-type", "application/json")
        for name, value in headers.items():
            if name not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        for cookie in response.get("cookies") or []:
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        logger.debug("%s %s", self.address_string(), format % args)


class LocalApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], routes: Sequence[Route]) -> None:
        super().__init__(address, _RequestHandler)
        self.routes = list(routes)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut the kept-alive connections too: a stopped front answers nobody, as a stopped stack would
        (serve_forever's shutdown only stops accepting new ones)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class LocalApi:
    """The front on `host:port` (0 = any free port) in a background thread; `url` once started."""

    def __init__(self, routes: Sequence[Route], host: str = "127.0.0.1", port: int = 0) -> None:
        self.routes = list(routes)
        self.host, self.port = host, port
        self._server: LocalApiServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local API is not running")
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        reachable = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{reachable}:{port}"

    def start(self) -> LocalApi:
        self._server = LocalApiServer((self.host, self.port), self.routes)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LocalApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Cross-origin access to the image API: which web pages may read its answers, and what they are told.

Why: the web app at www.photonranch.org fetches `/thumbnails/…` JSON from another origin, and a browser
hands that JSON to the page only when the answer carries `Access-Control-Allow-Origin` for the page's
origin (and asks first, with an `OPTIONS` preflight, before any request it does not consider simple).

Deployed, API Gateway's HTTP API does this itself from the `cors` block of serverless.yml (built from the
`corsOrigins` stage parameter, which also sets CORS_ORIGINS for the function): it answers preflights
without invoking the function and puts its own headers on the function's answers. The handler
(handlers/render.py) and the local stack's HTTP front (archive/local/api.py) answer alike from
`Settings.cors_origins` through this module, so a page served by a development server sees locally
what it will see deployed. The constants below are the ones serverless.yml declares
(tests/packaging/test_template.py compares them).

Origins are compared exactly (scheme, host and port); the allowed origin is echoed back, never `*`,
and every answer says `Vary: Origin`, so a shared cache keeps one copy per origin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

ALLOWED_METHODS = ("GET", "HEAD", "OPTIONS")
ALLOWED_HEADERS = ("content-type", "cache-control", "x-requested-with")
MAX_AGE_SECONDS = 86400  # the longest API Gateway's HTTP API allows; browsers cap it lower anyway


def request_origin(headers: Mapping[str, str] | None) -> str | None:
    """The request's `Origin` (header names are lower case in API Gateway 2.0 events; any case here)."""
    for name, value in (headers or {}).items():
        if name.lower() == "origin":
            return value.strip()
    return None


def allowed_origin(headers: Mapping[str, str] | None, origins: Sequence[str]) -> str | None:
    """The request's origin when it may read answers, else None."""
    origin = request_origin(headers)
    return origin if origin and origin in origins else None


def answer_headers(headers: Mapping[str, str] | None, origins: Sequence[str]) -> dict[str, str]:
    """Headers every answer (GET, HEAD, errors included) carries for this request."""
    origin = allowed_origin(headers, origins)
    if origin is None:
        return {"vary": "Origin"}
    return {"access-control-allow-origin": origin, "vary": "Origin"}


def preflight_headers(headers: Mapping[str, str] | None, origins: Sequence[str]) -> dict[str, str]:
    """Headers of the 204 answering an `OPTIONS` preflight: none of the CORS ones for an origin that is
    not allowed (the browser then refuses the request it was asking about)."""
    out = answer_headers(headers, origins)
    if "access-control-allow-origin" in out:
        out.update({
            "access-control-allow-methods": ", ".join(ALLOWED_METHODS),
            "access-control-allow-headers": ", ".join(ALLOWED_HEADERS),
            "access-control-max-age": str(MAX_AGE_SECONDS),
        })
    return out

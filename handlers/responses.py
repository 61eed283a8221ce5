"""API Gateway HTTP API (payload 2.0) JSON answers, shared by the image API and the local stack's front.

One spelling of a JSON response, so the Lambda and the local HTTP server (archive/local/api.py, the
viewer) answer with the same headers and body encoding.
"""

from __future__ import annotations

import json
from typing import Any

NO_STORE = {"cache-control": "no-store"}  # answers about the archive as it is now, never cached


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """`payload` as a JSON answer with `status`, plus any extra headers."""
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(payload),
        "isBase64Encoded": False,
    }

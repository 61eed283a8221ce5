"""API Gateway HTTP API (payload format 2.0) events as AWS sends them, written out by hand.

Deliberately independent of archive/local/api.py (which builds the same shape for the local stack), so
a test comparing the two paths compares the local front with AWS's format, not with itself.
"""

from __future__ import annotations

from urllib.parse import urlencode


def apigw_event(route_key: str, path: str, query: dict[str, str] | None = None,
                path_parameters: dict[str, str] | None = None) -> dict:
    method = route_key.split(" ", 1)[0]
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": {"accept": "*/*", "host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "curl/8.5.0",
                    "x-forwarded-for": "203.0.113.7", "x-forwarded-port": "443", "x-forwarded-proto": "https"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7",
                     "userAgent": "curl/8.5.0"},
            "requestId": "JKJaXmPLvHcESHA=", "routeKey": route_key, "stage": "$default",
            "time": "10/Mar/2026:00:00:00 +0000", "timeEpoch": 1773100800000,
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    return event

"""The local HTTP front's translation of requests into API Gateway 2.0 events and back (no server)."""

from __future__ import annotations

import base64
import json

from archive.local.api import Route, dispatch, http_event, lambda_routes, match, normalise_response


def echo(event: dict) -> dict:
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}


ROUTES = [
    Route("GET", r"/health", echo),
    Route("GET", r"/thumbnails/(?P<base_filename>[^/]+)", echo),
]


def test_route_keys_are_api_gateway_route_keys():
    assert [r.route_key for r in ROUTES] == ["GET /health", "GET /thumbnails/{base_filename}"]


def test_a_route_matches_the_whole_path_and_only_its_method():
    route, params = match(ROUTES, "GET", "/thumbnails/sro-kb001ms-20220629-00010442")
    assert route is ROUTES[1] and params == {"base_filename": "sro-kb001ms-20220629-00010442"}
    assert match(ROUTES, "GET", "/thumbnails/a/b") is None
    assert match(ROUTES, "GET", "/healthz") is None
    assert match(ROUTES, "POST", "/health") is None


def test_the_event_has_the_v2_shape_with_joined_repeats_and_decoded_values():
    event = http_event(
        "GET", "/thumbnails/x%2Dy?width=300&label=M+42&label=two&flag=",
        [("Host", "127.0.0.1:4567"), ("User-Agent", "t"), ("X-Many", "a"), ("x-many", "b"), ("Cookie", "a=1; b=2")],
        route_key="GET /thumbnails/{base_filename}", path_parameters={"base_filename": "x-y"},
    )
    assert event["version"] == "2.0" and event["routeKey"] == "GET /thumbnails/{base_filename}"
    assert event["rawPath"] == "/thumbnails/x%2Dy"
    assert event["rawQueryString"] == "width=300&label=M+42&label=two&flag="
    assert event["queryStringParameters"] == {"width": "300", "label": "M 42,two", "flag": ""}
    assert event["pathParameters"] == {"base_filename": "x-y"}
    assert event["headers"] == {"host": "127.0.0.1:4567", "user-agent": "t", "x-many": "a,b"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["requestContext"]["http"] == {
        "method": "GET", "path": "/thumbnails/x%2Dy", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
        "userAgent": "t"}
    assert event["isBase64Encoded"] is False and "body" not in event


def test_no_query_and_no_path_parameters_leave_their_keys_out_as_api_gateway_does():
    event = http_event("GET", "/health")
    assert "queryStringParameters" not in event and "pathParameters" not in event
    assert event["rawQueryString"] == ""


def test_a_binary_body_is_base64_encoded():
    event = http_event("POST", "/x", body=b"\xff\x00")
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\x00"
    assert http_event("POST", "/x", body=b"text")["body"] == "text"


def test_unknown_paths_are_404_json_and_a_raising_handler_is_500_json():
    def broken(event: dict) -> dict:
        raise RuntimeError("boom")

    assert json.loads(dispatch(ROUTES, "GET", "/nope")["body"]) == {"message": "Not Found"}
    assert dispatch(ROUTES, "GET", "/nope")["statusCode"] == 404
    failed = dispatch([Route("GET", "/x", broken)], "GET", "/x")
    assert failed["statusCode"] == 500 and json.loads(failed["body"]) == {"message": "Internal Server Error"}


def test_dispatch_passes_the_route_key_and_path_parameters_to_the_handler():
    response = dispatch(ROUTES, "GET", "/thumbnails/abc?width=10")
    event = json.loads(response["body"])
    assert event["routeKey"] == "GET /thumbnails/{base_filename}"
    assert event["pathParameters"] == {"base_filename": "abc"}
    assert event["queryStringParameters"] == {"width": "10"}


def test_a_plain_dict_answer_becomes_a_200_json_response():
    assert normalise_response({"a": 1}) == {
        "statusCode": 200, "headers": {"content-type": "application/json"}, "body": '{"a": 1}',
        "isBase64Encoded": False}


def test_lambda_routes_turn_route_keys_into_patterns_that_call_the_handler_with_a_context():
    seen = []

    def handler(event: dict, context: object) -> dict:
        seen.append((event["routeKey"], event.get("pathParameters"), context.function_name))
        return {"statusCode": 204, "body": ""}

    routes = lambda_routes(["GET /health/ready", "GET /thumbnails/{base_filename}"], handler, "render")
    assert [r.route_key for r in routes] == ["GET /health/ready", "GET /thumbnails/{base_filename}"]
    assert dispatch(routes, "GET", "/thumbnails/a-b.c")["statusCode"] == 204
    assert dispatch(routes, "GET", "/health/readyX")["statusCode"] == 404
    assert seen == [("GET /thumbnails/{base_filename}", {"base_filename": "a-b.c"}, "render")]


def test_route_keys_with_dots_reach_the_handler_as_declared():
    seen = []

    def handler(event: dict, context: object) -> dict:
        seen.append(event["routeKey"])
        return {"statusCode": 204, "body": ""}

    routes = lambda_routes(["GET /favicon.ico"], handler, "render")
    assert dispatch(routes, "GET", "/favicon.ico")["statusCode"] == 204
    assert dispatch(routes, "GET", "/faviconXico")["statusCode"] == 404
    assert seen == ["GET /favicon.ico"]


def test_a_trailing_slash_is_routed_as_the_path_without_it():
    route, params = match(ROUTES, "GET", "/thumbnails/sro-kb001ms-20220629-00010442/")
    assert route is ROUTES[1] and params == {"base_filename": "sro-kb001ms-20220629-00010442"}
    assert match(ROUTES, "GET", "/health//") is None

"""Foreign failures become the image API's statuses, once, where the core meets AWS and the database."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from archive.database import DatabaseConfigError
from archive.errors import PermanentError, TemporaryError
from archive.render.api import upstream_errors
from archive.render.params import BadParameter, NotFound, Throttled, UpstreamFailed, UpstreamTimeout


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize("raised,expected,status", [
    (client_error("SlowDown", 503), Throttled, 429),
    (client_error("ThrottlingException", 400), Throttled, 429),
    (client_error("AccessDenied", 403), UpstreamFailed, 502),
    (client_error("InternalError", 500), UpstreamFailed, 502),
    (client_error("NoSuchKey", 404), NotFound, 404),
    (EndpointConnectionError(endpoint_url="https://s3"), UpstreamFailed, 502),
    (ReadTimeoutError(endpoint_url="https://s3"), UpstreamTimeout, 504),
    (OperationalError("SELECT 1", {}, Exception("could not connect")), UpstreamFailed, 502),
    (PoolTimeout("QueuePool limit reached, connection timed out"), UpstreamTimeout, 504),
    (DatabaseConfigError("set DATABASE_URL"), UpstreamFailed, 502),
])
def test_aws_and_database_failures_become_statuses(raised, expected, status):
    with pytest.raises(expected) as caught, upstream_errors():
        raise raised
    assert caught.value.http_status == status
    assert caught.value.__cause__ is raised


def test_throttling_asks_the_client_to_retry_and_outages_are_temporary_while_refusals_are_permanent():
    with pytest.raises(Throttled) as caught, upstream_errors():
        raise client_error("SlowDown", 503)
    assert caught.value.payload()["retry_after"] == 1 and isinstance(caught.value, TemporaryError)
    assert isinstance(BadParameter("width", "x"), PermanentError) and isinstance(NotFound("x"), PermanentError)


def test_the_apis_own_errors_and_bugs_pass_through_unchanged():
    with pytest.raises(BadParameter), upstream_errors():
        raise BadParameter("width", "too small")
    with pytest.raises(ZeroDivisionError), upstream_errors():
        raise ZeroDivisionError

"""The one place that builds AWS clients.

Clients are cached per process (Lambda reuses them across invocations) and honour `AWS_ENDPOINT_URL`
through settings, so the same code talks to AWS, to moto's server, or to moto in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ParamValidationError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError

from archive.settings import get_settings

T = TypeVar("T")
# botocore event handlers every client built here carries (on_client_event).
_event_handlers: list[tuple[str, Callable[..., Any]]] = []
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_dynamodb(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values (str, int, bool, dict) as the low-level client's DynamoDB JSON."""
    return {name: _serializer.serialize(value) for name, value in item.items()}


def from_dynamodb(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB JSON (a low-level client's item, a stream image) as plain Python values."""
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size`: AWS batch APIs cap how many entries one call takes."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@cache
def _session() -> Any:
    # One session for every client: each new session loads botocore's endpoint data again (~50 ms).
    session = boto3.session.Session()
    for event, handler in _event_handlers:
        session.events.register(event, handler)
    return session


@cache
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    config = Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=5, read_timeout=30)
    if service == "s3":  # presigned links in SigV4 (botocore would sign them with the legacy V2 in us-east-1)
        config = config.merge(Config(signature_version="s3v4"))
    return _session().client(service, region_name=region, endpoint_url=endpoint_url, config=config)


def client(service: str) -> Any:
    """A cached boto3 client for `service`, configured from settings."""
    settings = get_settings()
    return _client(service, settings.region, settings.aws_endpoint_url)


def credentials() -> Any:
    """The credentials the clients sign with (botocore's object: `.token`, and `_expiry_time` when
    they are refreshable), or None when none were found."""
    return _session().get_credentials()


def clear_clients() -> None:
    """Forget cached clients (tests switch endpoints and credentials; a SnapStart restore gets new ones)."""
    _client.cache_clear()
    _session.cache_clear()


def warm_clients(services: Sequence[str] = ("s3", "sqs", "dynamodb", "ssm")) -> None:
    """Build the clients now: the session loads each service's model and the endpoint rules once
    (~0.1-0.3 s), which a SnapStart snapshot then holds (archive/snapstart.py)."""
    for service in services:
        client(service)


def forget_credentials() -> None:
    """Drop the clients and the credentials the session resolved, keeping what it loaded (service models,
    endpoint rules): the next client signs with credentials resolved afresh. After a SnapStart restore,
    the snapshot's credentials are not the restored environment's to use."""
    _client.cache_clear()
    _session()._session._credentials = None  # botocore resolves them again for the next client


def on_client_event(event: str, handler: Callable[..., Any]) -> Callable[[], None]:
    """Have every client built from now on call `handler` on botocore's `event` (`before-parameter-build`,
    `after-call`…), and return the undo. Cached clients are dropped, so none is left without it.

    What sees every AWS call the code makes: tests/integration/test_least_privilege.py records each
    function's calls with it and evaluates them against the function's IAM policy.
    """
    entry = (event, handler)
    _event_handlers.append(entry)
    clear_clients()

    def undo() -> None:
        _event_handlers.remove(entry)
        clear_clients()

    return undo


# AWS telling us to slow down (S3 says SlowDown with a 503): the caller should come back in a moment.
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "SlowDown",
})
# Other answers that a later attempt can fix.
TRANSIENT_CODES = frozenset({"RequestTimeout", "ServiceUnavailable", "InternalError", "TransactionConflictException"})


def _code(exc: BaseException) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


def is_throttling(exc: BaseException) -> bool:
    """True for AWS asking us to slow down."""
    return _code(exc) in THROTTLING_CODES


def is_timeout(exc: BaseException) -> bool:
    """True for an AWS endpoint that did not connect or answer in time."""
    return isinstance(exc, ConnectTimeoutError | ReadTimeoutError)


def is_transient(exc: BaseException) -> bool:
    """True for AWS errors that a later retry can fix (throttling, 5xx, connection trouble)."""
    if isinstance(exc, BotoConnectionError) or is_throttling(exc):
        return True
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return status >= 500 or _code(exc) in TRANSIENT_CODES
    return False


def is_aws_error(exc: BaseException) -> bool:
    """Any error raised by botocore (a refusal, a connection or timeout, a request it would not send)."""
    return isinstance(exc, ClientError | BotoCoreError)


def is_condition_failure(exc: BaseException) -> bool:
    """True for DynamoDB's refusal of a conditional write whose condition did not hold."""
    code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
    return code == "ConditionalCheckFailedException"


def is_missing_object(exc: BaseException) -> bool:
    """True for S3's answer to a key that does not exist (404; the role may list the bucket)."""
    if not isinstance(exc, ClientError):
        return False
    return str(exc.response.get("Error", {}).get("Code", "")) in {"NoSuchKey", "404", "NotFound"}


def is_invalid_request(exc: BaseException) -> bool:
    """True for a request AWS (or botocore, before sending) refuses as invalid: an item over DynamoDB's
    size limit, a value out of range. The same request is refused again, so it is never retried."""
    if isinstance(exc, ParamValidationError):
        return True
    return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code", "")) == "ValidationException"

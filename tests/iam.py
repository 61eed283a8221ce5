"""Each function's AWS calls as the IAM requests AWS authorizes, and their evaluation against a policy.

Recording: every client archive/aws.py builds carries two botocore hooks (`aws.on_client_event`); each
call made while a function is "running" (`Recorder.running`) is kept with its parameters and HTTP
status, presigned links included (the client that follows one is authorized as the function's role).

Translating: a call becomes the requests AWS authorizes for it, per the Service Authorization Reference:
HeadObject is s3:GetObject on the object, ListObjectsV2 is s3:ListBucket on the bucket with the
`s3:prefix` key, DeleteObjects is one s3:DeleteObject per key, a GET answered 404 also needs s3:ListBucket
(without it S3 answers 403), GetParameter of a SecureString is also kms:Decrypt through SSM with the
parameter's ARN in the encryption context (`kms:EncryptionContext:PARAMETER_ARN`). A call this table
does not know fails the test by name, so a new kind of call cannot slip past.

Evaluating: moto's IAM policy evaluator (`moto.iam.access_control.IAMPolicyStatement`) matches each
statement's actions and resources (wildcards as IAM reads them). moto only evaluates `StringEquals`
conditions, and lets a condition whose key the request lacks pass, so conditions are checked here
with IAM's rules: a missing key fails every operator but the `…IfExists` ones. Explicit denies win.
moto's server-side enforcement (`INITIAL_NO_AUTH_ACTION_COUNT`) is not used: it resolves resources for
S3 and SQS only, so every DynamoDB, SSM and KMS call would be judged against `*` and refused.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from moto.iam.access_control import IAMPolicyStatement, PermissionResult

from archive import aws

# The key SSM encrypts SecureStrings with (its AWS managed key or a customer's): any key id.
SSM_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
# SQS calls that IAM authorizes as another action.
SQS_ACTIONS = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
               "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}


class UnknownCall(LookupError):
    """A call the translation table does not know; add how IAM authorizes it."""


@dataclass(frozen=True, order=True)
class Request:
    """One authorization AWS makes: an action on a resource, with the request's condition keys."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    call: str = field(default="", compare=False)

    def __str__(self) -> str:
        keys = "".join(f" [{k}={v}]" for k, v in self.context)
        return f"{self.action} on {self.resource}{keys} (for {self.call})"


def _s3(operation: str, params: dict[str, Any], status: int | None, call: str) -> list[Request] | None:
    bucket = f"arn:aws:s3:::{params['Bucket']}"
    if operation in ("GetObject", "HeadObject"):
        out = [Request("s3:GetObject", f"{bucket}/{params['Key']}", call=call)]
        if status == 404:  # only a role that may list the bucket is told a key is missing
            out.append(Request("s3:ListBucket", bucket, call=f"{call} answered 404"))
        return out
    if operation in ("PutObject", "DeleteObject"):
        return [Request(f"s3:{operation}", f"{bucket}/{params['Key']}", call=call)]
    if operation in ("ListObjectsV2", "ListObjects"):
        context = (("s3:prefix", params["Prefix"]),) if "Prefix" in params else ()
        return [Request("s3:ListBucket", bucket, context, call=call)]
    if operation == "HeadBucket":
        return [Request("s3:ListBucket", bucket, call=call)]
    if operation == "DeleteObjects":
        return [Request("s3:DeleteObject", f"{bucket}/{o['Key']}", call=call) for o in params["Delete"]["Objects"]]
    return None


def _sqs(operation: str, params: dict[str, Any], region: str, account: str, call: str) -> list[Request] | None:
    if operation == "GetQueueUrl":
        owner = params.get("QueueOwnerAWSAccountId", account)
        return [Request("sqs:GetQueueUrl", f"arn:aws:sqs:{region}:{owner}:{params['QueueName']}", call=call)]
    if "QueueUrl" in params:
        owner, name = urlsplit(params["QueueUrl"]).path.strip("/").split("/")[-2:]
        action = f"sqs:{SQS_ACTIONS.get(operation, operation)}"
        return [Request(action, f"arn:aws:sqs:{region}:{owner}:{name}", call=call)]
    return None


def _dynamodb(operation: str, params: dict[str, Any], region: str, account: str, call: str) -> list[Request] | None:
    table = f"arn:aws:dynamodb:{region}:{account}:table/"
    if "TableName" in params:
        return [Request(f"dynamodb:{operation}", table + params["TableName"], call=call)]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        names = sorted(params["RequestItems"])
        return [Request(f"dynamodb:{operation}", table + name, call=call) for name in names]
    return None


def _ssm(operation: str, params: dict[str, Any], region: str, account: str, call: str) -> list[Request] | None:
    if operation != "GetParameter":
        return None
    name = params["Name"] if params["Name"].startswith("/") else "/" + params["Name"]
    parameter = f"arn:aws:ssm:{region}:{account}:parameter{name}"
    out = [Request("ssm:GetParameter", parameter, call=call)]
    if params.get("WithDecryption"):
        context = (("kms:EncryptionContext:PARAMETER_ARN", parameter),
                   ("kms:ViaService", f"ssm.{region}.amazonaws.com"))
        out.append(Request("kms:Decrypt", f"arn:aws:kms:{region}:{account}:key/{SSM_KEY_ID}", context,
                           call=f"{call} of a SecureString, decrypted by SSM"))
    return out


def requests_for(service: str, operation: str, params: dict[str, Any], status: int | None,
                 region: str, account: str) -> list[Request]:
    """What IAM authorizes for one API call (`status` is the HTTP answer, None for a presigned link)."""
    call = f"{service}.{operation}" + (" (presigned)" if status is None else "")
    found = {
        "s3": lambda: _s3(operation, params, status, call),
        "sqs": lambda: _sqs(operation, params, region, account, call),
        "dynamodb": lambda: _dynamodb(operation, params, region, account, call),
        "ssm": lambda: _ssm(operation, params, region, account, call),
    }.get(service, lambda: None)()
    if found is None:
        raise UnknownCall(f"{call}: add how IAM authorizes it to tests/iam.py")
    return found


# --- conditions (IAM's rules for the operators our policies use) -------------------------------------


def _like(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda expected, value: expected == value,
    "StringLike": _like,
    "ArnEquals": lambda expected, value: expected == value,
    "ArnLike": _like,
}


def conditions_hold(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    """Every operator and every key must hold; a key holds when the request's value matches any of the
    statement's values. A key the request lacks fails, unless the operator ends in IfExists."""
    for operator, keys in condition.items():
        base = operator.removesuffix("IfExists")
        if base not in _OPERATORS:
            raise ValueError(f"condition operator {operator} is not evaluated by tests/iam.py")
        for key, expected in keys.items():
            if key not in context:
                if operator.endswith("IfExists"):
                    continue
                return False
            values = expected if isinstance(expected, list) else [expected]
            if not any(_OPERATORS[base](str(v), context[key]) for v in values):
                return False
    return True


# --- statements --------------------------------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Grant:
    """One action on one resource pattern of a statement: the unit that is used, or not."""

    sid: str
    action: str
    resource: str

    def __str__(self) -> str:
        return f"{self.sid}: {self.action} on {self.resource}"


def grants_of(statements: list[dict[str, Any]]) -> list[Grant]:
    return [Grant(s.get("Sid", f"#{i}"), action, resource)
            for i, s in enumerate(statements) if s.get("Effect") == "Allow"
            for action in as_list(s["Action"]) for resource in as_list(s["Resource"])]


def _matches(statement: dict[str, Any], action: str, resource: str, request: Request) -> bool:
    """Does this (action, resource) part of the statement apply to the request? moto's evaluator
    matches the action and resource; the conditions are ours (see the module docstring)."""
    bare = {"Effect": "Allow", "Action": action, "Resource": resource}
    if IAMPolicyStatement(bare).is_action_permitted(request.action, request.resource) != PermissionResult.PERMITTED:
        return False
    return conditions_hold(statement.get("Condition") or {}, dict(request.context))


@dataclass
class Evaluation:
    denied: list[Request]
    used: set[Grant]


def evaluate(statements: list[dict[str, Any]], requests: list[Request]) -> Evaluation:
    """Which requests the statements do not allow, and which grants allowed at least one request."""
    denied, used = [], set()
    for request in requests:
        allowing, denying = set(), False
        for i, statement in enumerate(statements):
            for action in as_list(statement.get("Action", [])):
                for resource in as_list(statement.get("Resource", [])):
                    if _matches(statement, action, resource, request):
                        if statement.get("Effect") == "Deny":
                            denying = True
                        else:
                            allowing.add(Grant(statement.get("Sid", f"#{i}"), action, resource))
        if denying or not allowing:
            denied.append(request)
        else:
            used |= allowing
    return Evaluation(denied, used)


# --- recording ---------------------------------------------------------------------------------------


class Recorder:
    """The requests each function's calls need, recorded while `running(function)` is open."""

    def __init__(self, region: str, account: str) -> None:
        self.region, self.account = region, account
        self.requests: dict[str, set[Request]] = defaultdict(set)
        self.unknown: list[str] = []
        self.function: str | None = None  # not a context variable: health checks run on other threads

    @contextmanager
    def running(self, function: str) -> Iterator[None]:
        previous, self.function = self.function, function
        try:
            yield
        finally:
            self.function = previous

    def _add(self, model: Any, params: dict[str, Any], status: int | None) -> None:
        if self.function is None:
            return
        try:
            found = requests_for(model.service_model.signing_name, model.name, params, status,
                                 self.region, self.account)
        except UnknownCall as exc:
            self.unknown.append(f"{self.function}: {exc}")
            return
        self.requests[self.function].update(found)

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if context.get("is_presign_request"):
            self._add(model, dict(params), None)
        else:
            context["iam_test_params"] = dict(params)

    def _after(self, http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        if "iam_test_params" in context:
            self._add(model, context["iam_test_params"], http_response.status_code)

    @contextmanager
    def installed(self) -> Iterator[Recorder]:
        undo = [aws.on_client_event("before-parameter-build", self._before),
                aws.on_client_event("after-call", self._after)]
        try:
            yield self
        finally:
            for step in reversed(undo):
                step()

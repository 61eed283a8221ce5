"""serverless.yml read the way the deployment resolves it, so the local stack and the tests share its
one definition of the queues, tables, environment and roles.

`make package` turns serverless.yml into CloudFormation, but needs npm and a Python 3.12; this reads the
file itself: the stage's params (`params.default` overlaid by `params.<stage>`), `${sls:stage}`,
`${self:…}`, `${opt:…}`/`${env:…}` defaults, and the CloudFormation intrinsics the file uses (`!GetAtt`,
`!Ref`, `!Sub`) resolved to the names and ARNs AWS would give them in one region and account (moto's
account by default). What needs a real deployment (a stream's label) gets a stand-in that says so.

Used by archive/local/provision.py (the local queues and tables get the template's properties) and
tests/integration/test_least_privilege.py (each function's role evaluated against its calls).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SERVICE_FILE = Path(__file__).resolve().parents[2] / "serverless.yml"
MOTO_ACCOUNT = "123456789012"
_VARIABLE = re.compile(r"\$\{((?:param|sls|self|opt|env):[^{}]*)\}")
_PSEUDO = re.compile(r"\$\{(AWS::[A-Za-z]+)\}")


class TemplateError(ValueError):
    """serverless.yml uses something this reader does not resolve; the message names it."""


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags, turned into their long form (`!Ref X` → `{"Ref": "X"}`)."""


def _intrinsic(name: str):  # noqa: ANN202 - a PyYAML constructor
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _tag, _name in {"!GetAtt": "Fn::GetAtt", "!Ref": "Ref", "!Sub": "Fn::Sub", "!Join": "Fn::Join",
                    "!If": "Fn::If", "!Select": "Fn::Select"}.items():
    _Loader.add_constructor(_tag, _intrinsic(_name))


def _lookup(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


@dataclass(frozen=True)
class Service:
    """serverless.yml resolved for one stage, region and account."""

    stage: str
    region: str
    account: str
    document: dict[str, Any] = field(repr=False)

    # -- the Serverless variables ---------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        params = self.document.get("params") or {}
        return {**(params.get("default") or {}), **(params.get(self.stage) or {})}

    def _variable(self, expression: str) -> Any:
        source, _, default = (part.strip() for part in expression.partition(","))
        kind, _, name = source.partition(":")
        try:
            if kind == "param":
                return self.params[name]
            if kind == "sls" and name == "stage":
                return self.stage
            if kind == "self":
                return _lookup(self.document, name)
            if kind == "opt" and name == "stage":
                return self.stage
            if kind == "opt" and name == "region":
                return self.region
        except KeyError:
            pass
        if default:
            return None if default == "null" else yaml.safe_load(default)
        if kind in ("opt", "env"):
            return None
        raise TemplateError(f"cannot resolve ${{{expression}}}")

    def resolve(self, value: Any) -> Any:
        """`value` with every Serverless variable replaced (whole-string variables keep their type)."""
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, str):
            return value
        for _ in range(10):  # innermost first: `${self:a.${self:b}}`
            whole = _VARIABLE.fullmatch(value)
            if whole:
                return self.resolve(self._variable(whole.group(1)))
            replaced = _VARIABLE.sub(lambda m: str(self._variable(m.group(1))), value)
            if replaced == value:
                return value
            value = replaced
        raise TemplateError(f"variables nest too deep in {value!r}")

    # -- CloudFormation's intrinsics ------------------------------------------------------------

    def _pseudo(self, name: str) -> str:
        known = {"AWS::Partition": "aws", "AWS::Region": self.region, "AWS::AccountId": self.account,
                 "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": f"{self.document['service']}-{self.stage}"}
        if name not in known:
            raise TemplateError(f"unknown pseudo parameter {name}")
        return known[name]

    def _attribute(self, logical_id: str, attribute: str) -> str:
        resource = self.resources[logical_id]
        kind, props = resource["Type"], resource.get("Properties") or {}
        if kind == "AWS::SQS::Queue":
            arn = f"arn:aws:sqs:{self.region}:{self.account}:{props['QueueName']}"
            return {"Arn": arn, "QueueName": props["QueueName"]}[attribute]
        if kind == "AWS::DynamoDB::Table":
            arn = f"arn:aws:dynamodb:{self.region}:{self.account}:table/{props['TableName']}"
            # The stream's label is the time it was created: known only once deployed.
            return {"Arn": arn, "StreamArn": f"{arn}/stream/*"}[attribute]
        raise TemplateError(f"cannot resolve {logical_id}.{attribute} ({kind})")

    def _ref(self, name: str) -> str:
        if name.startswith("AWS::"):
            return self._pseudo(name)
        resource = self.resources[name]
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{props['QueueName']}"
        if resource["Type"] == "AWS::DynamoDB::Table":
            return str(props["TableName"])
        raise TemplateError(f"cannot resolve Ref {name} ({resource['Type']})")

    def intrinsics(self, value: Any) -> Any:
        """`value` with `Ref`, `Fn::GetAtt`, `Fn::Sub` and `Fn::Join` replaced by what AWS would give."""
        if isinstance(value, list):
            return [self.intrinsics(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                return self._attribute(*(arg if isinstance(arg, list) else arg.split(".", 1)))
            if key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                return _PSEUDO.sub(lambda m: self._pseudo(m.group(1)), text)
            if key == "Fn::Join":
                return str(arg[0]).join(str(self.intrinsics(part)) for part in arg[1])
        return {key: self.intrinsics(item) for key, item in value.items()}

    # -- what the callers read ------------------------------------------------------------------

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """resources.Resources with the Serverless variables resolved (intrinsics kept)."""
        return dict(self.resolve((self.document.get("resources") or {}).get("Resources") or {}))

    def properties(self, logical_id: str) -> dict[str, Any]:
        """One resource's Properties, fully resolved."""
        return dict(self.intrinsics(self.resources[logical_id].get("Properties") or {}))

    def resource_ids(self, kind: str) -> list[str]:
        return [name for name, resource in self.resources.items() if resource["Type"] == kind]

    @property
    def functions(self) -> dict[str, dict[str, Any]]:
        return dict(self.resolve(self.document["functions"]))

    def role_statements(self, function: str) -> list[dict[str, Any]]:
        """The statements serverless-iam-roles-per-function gives the function's own role (its
        `iamRoleStatements`), fully resolved. The plugin adds the log and event-source statements."""
        return list(self.intrinsics(self.functions[function].get("iamRoleStatements") or []))

    def environment(self) -> dict[str, str]:
        """provider.environment as the functions see it (values as strings)."""
        env = self.intrinsics(self.resolve(self.document["provider"].get("environment") or {}))
        return {name: str(value) for name, value in env.items()}


@cache
def _document(path: Path) -> dict[str, Any]:
    return dict(yaml.load(path.read_text(), Loader=_Loader))  # noqa: S506 - SafeLoader plus CFN tags


def load(stage: str = "dev", region: str = "us-east-1", account: str = MOTO_ACCOUNT,
         path: Path = SERVICE_FILE) -> Service:
    """serverless.yml for `stage` (a copy: callers may change what they get)."""
    return Service(stage, region, account, copy.deepcopy(_document(path)))

"""serverless.yml read as the framework would resolve it for a stage, without running the framework.

Only what the offline checks need: the CloudFormation short tags (`!Ref`, `!GetAtt`, `!Sub`) are kept
as `Tagged` values, and `${sls:stage}`, `${param:…}` (the stage's params over `default`), `${opt:…, x}`
and `${self:…}` are substituted in strings. A `!Ref`/`!GetAtt` to a resource's name property resolves
to that name; anything only AWS can know (an account id in `!Sub`) resolves to None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVERLESS_YML = ROOT / "serverless.yml"
_VARIABLE = re.compile(r"\$\{([^{}]+)\}")
# The property holding a resource's name, by what `!GetAtt X.<attribute>` or `!Ref X` asks of it.
_NAME_PROPERTIES = {"AWS::DynamoDB::Table": "TableName", "AWS::SQS::Queue": "QueueName"}


@dataclass(frozen=True)
class Tagged:
    tag: str
    value: Any


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: YAML keeps the last silently, and the
    framework with it, so a second `package:` of a function would drop the first without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = sorted({str(key) for key in keys if keys.count(key) > 1})
        if repeated:
            raise yaml.constructor.ConstructorError(None, None, f"keys given twice: {repeated}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Tagged:
    if isinstance(node, yaml.ScalarNode):
        return Tagged(suffix, loader.construct_scalar(node))
    if isinstance(node, yaml.SequenceNode):
        return Tagged(suffix, loader.construct_sequence(node, deep=True))
    return Tagged(suffix, loader.construct_mapping(node, deep=True))


_Loader.add_multi_constructor("!", _tagged)


def load(path: Path = SERVERLESS_YML) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader with tags kept as data


class Resolver:
    """Substitutes the framework's variables for one stage."""

    def __init__(self, config: dict[str, Any], stage: str) -> None:
        self.config = config
        self.stage = stage
        params = config.get("params", {})
        self.params = {**params.get("default", {}), **params.get(stage, {})}

    def variable(self, expression: str) -> Any:
        source, _, rest = expression.partition(":")
        name, _, fallback = rest.partition(",")
        name, fallback = name.strip(), fallback.strip().strip("'\"")
        if source == "sls" and name == "stage":
            return self.stage
        if source == "opt":
            return {"stage": self.stage}.get(name, fallback or None)
        if source == "param":
            return self.params.get(name, fallback or None)
        if source == "self":
            value: Any = self.config
            for part in name.split("."):
                value = value[part]
            return value
        raise ValueError(f"cannot resolve ${{{expression}}}")

    def text(self, value: str) -> Any:
        while match := _VARIABLE.search(value):
            found = self.variable(match.group(1))
            if match.group(0) == value and not isinstance(found, (str, int, float)):
                return found  # a list or mapping param, e.g. alarmActions
            value = value[: match.start()] + str(found) + value[match.end():]
        return value

    def value_tree(self, value: Any) -> Any:
        """Strings substituted through lists (a `${self:…}` may stand for a whole list)."""
        if isinstance(value, str):
            found = self.text(value)
            return self.value_tree(found) if isinstance(found, list) else found
        if isinstance(value, list):
            out: list[Any] = []
            for item in value:
                found = self.value_tree(item)
                out += found if isinstance(item, str) and isinstance(found, list) else [found]
            return out
        return value

    def value(self, value: Any) -> Any:
        """A scalar as the deployed function would see it (None when only AWS can know it)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Tagged) and value.tag == "Join":
            separator, items = value.value
            parts = [self.value(item) for item in self.value_tree(items)]
            return None if None in parts else separator.join(parts)
        if isinstance(value, Tagged) and value.tag in ("Ref", "GetAtt"):
            logical_id = str(value.value).split(".")[0]
            resource = self.config["resources"]["Resources"].get(logical_id, {})
            prop = _NAME_PROPERTIES.get(resource.get("Type", ""))
            return self.value(resource["Properties"][prop]) if prop else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return None


def _glob(pattern: str) -> re.Pattern[str]:
    """A micromatch glob (what the framework matches package patterns with) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def function_patterns(config: dict[str, Any], function: str, stage: str = "dev") -> list[str]:
    """The service's package patterns, then the function's, without repeats (as the framework joins them)."""
    resolver = Resolver(config, stage)
    service = resolver.value_tree(config.get("package", {}).get("patterns", []))
    own = resolver.value_tree(config["functions"][function].get("package", {}).get("patterns", []))
    return list(dict.fromkeys([*service, *own]))


def packaged(paths: list[str], patterns: list[str]) -> set[str]:
    """The paths a zip built with `patterns` holds: every path starts in, the last matching pattern decides."""
    state = dict.fromkeys(paths, True)
    for pattern in patterns:
        exclude = pattern.startswith("!")
        regex = _glob(pattern.removeprefix("!"))
        for path in paths:
            if regex.fullmatch(path):
                state[path] = not exclude
    return {path for path, included in state.items() if included}


def function_environment(config: dict[str, Any], stage: str) -> dict[str, str | None]:
    """provider.environment for `stage`: variable -> value (None where only AWS can know it)."""
    resolver = Resolver(config, stage)
    return {name: resolver.value(value) for name, value in config["provider"]["environment"].items()}

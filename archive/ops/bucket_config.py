"""`python -m archive bucket configure --stage …`: point the upload bucket at the ingest queue.

The bucket predates the serverless stack (production has held data in it for years), so CloudFormation
does not own it and `serverless deploy` cannot set its notifications or lifecycle rules. This command
does, after a deploy, and is safe to run again and again:

- S3 replaces a bucket's whole notification (or lifecycle) configuration on every write, so we read
  the current one, replace only the entries we own (recognised by their `photonranch-archive-` ids)
  and write back everything else unchanged: other teams' notifications and rules survive.
- Nothing is written when our entries are already in place, so a rerun is a no-op.
- S3 refuses two notifications whose event types and prefixes overlap. An existing one that overlaps
  ours (typically the pre-queue Lambda trigger) is reported and the command stops, unless the operator
  passes `--replace-overlapping`, which removes it in the same write: no window without notifications.
- `--dry-run` prints the change as a diff of the configurations and writes nothing.
"""

from __future__ import annotations

import copy
import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from archive.aws import client

OWNER = "photonranch-archive-"
NOTIFIED_PREFIXES = ("data/", "info-images/", "allsky/")
NOTIFIED_EVENTS = ["s3:ObjectCreated:*"]
THUMBNAIL_CACHE_DAYS = 30
NOTIFICATION_KINDS = ("QueueConfigurations", "TopicConfigurations", "LambdaFunctionConfigurations")

LIFECYCLE_RULES: list[dict[str, Any]] = [
    {
        "ID": f"{OWNER}data-to-standard-ia",
        "Filter": {"Prefix": "data/"},
        "Status": "Enabled",
        "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
    },
    {
        "ID": f"{OWNER}info-images-expire",
        "Filter": {"Prefix": "info-images/"},
        "Status": "Enabled",
        "Expiration": {"Days": 2},
    },
    {
        "ID": f"{OWNER}downloads-expire",
        "Filter": {"Prefix": "downloads/"},
        "Status": "Enabled",
        "Expiration": {"Days": 2},
    },
    # The image API's cache (archive/render/api.py): anything expired is rendered again on the next request.
    {
        "ID": f"{OWNER}thumbnails-expire",
        "Filter": {"Prefix": "thumbnails/"},
        "Status": "Enabled",
        "Expiration": {"Days": THUMBNAIL_CACHE_DAYS},
    },
]


class BucketConfigError(Exception):
    """The bucket cannot be configured as asked; the message says why and what to do."""


def queue_notifications(queue_arn: str) -> list[dict[str, Any]]:
    return [
        {
            "Id": f"{OWNER}ingest-{prefix.rstrip('/')}",
            "QueueArn": queue_arn,
            "Events": list(NOTIFIED_EVENTS),
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
        }
        for prefix in NOTIFIED_PREFIXES
    ]


def _filter_values(entry: dict[str, Any], name: str) -> str:
    rules = ((entry.get("Filter") or {}).get("Key") or {}).get("FilterRules") or []
    return next((r.get("Value", "") for r in rules if str(r.get("Name", "")).lower() == name), "")


def _normalised(entry: Any) -> Any:
    """S3 spells filter rule names `Prefix` or `prefix` depending on who wrote them; compare without case."""
    entry = copy.deepcopy(entry)
    if isinstance(entry, dict):
        for rule in ((entry.get("Filter") or {}).get("Key") or {}).get("FilterRules") or []:
            rule["Name"] = str(rule.get("Name", "")).lower()
    return entry


def _contains(actual: Any, wanted: Any) -> bool:
    """Every field we set is there with our value (S3 may add fields of its own)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(_contains(actual.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(actual, list) and len(actual) == len(wanted) and all(map(_contains, actual, wanted))
    return actual == wanted


def _events_overlap(a: list[str], b: list[str]) -> bool:
    def family(event: str) -> str:
        return event.split(":")[1] if event.count(":") >= 1 else event

    return any(family(x) == family(y) for x in a for y in b)


def _overlaps(existing: dict[str, Any], ours: dict[str, Any]) -> bool:
    """S3's rule: same event type and prefixes where one starts the other, with suffixes that could meet."""
    if not _events_overlap(existing.get("Events", []), ours["Events"]):
        return False
    p1, p2 = _filter_values(existing, "prefix"), _filter_values(ours, "prefix")
    s1, s2 = _filter_values(existing, "suffix"), _filter_values(ours, "suffix")
    return (p1.startswith(p2) or p2.startswith(p1)) and (s1.endswith(s2) or s2.endswith(s1))


@dataclass
class Plan:
    """The configurations as they are and as they will be, and what had to be decided on the way."""

    current_notifications: dict[str, Any]
    notifications: dict[str, Any]
    current_rules: list[dict[str, Any]]
    rules: list[dict[str, Any]]
    overlapping: list[dict[str, Any]] = field(default_factory=list)

    @property
    def notifications_change(self) -> bool:
        return self.notifications != self.current_notifications

    @property
    def lifecycle_changes(self) -> bool:
        return self.rules != self.current_rules

    def diff(self, bucket: str) -> str:
        def lines(value: Any) -> list[str]:
            return json.dumps(value, indent=2, sort_keys=True, default=str).splitlines(keepends=True)

        out = []
        for name, before, after in (
            ("notification", self.current_notifications, self.notifications),
            ("lifecycle", {"Rules": self.current_rules}, {"Rules": self.rules}),
        ):
            if before == after:
                out.append(f"s3://{bucket} {name}: no change\n")
            else:
                out += difflib.unified_diff(lines(before), lines(after), f"{name} (now)", f"{name} (after configure)")
        return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def plan(current_notifications: dict[str, Any], current_rules: list[dict[str, Any]], queue_arn: str,
         replace_overlapping: bool = False) -> Plan:
    """What to write so that our notifications and rules are in place and nothing else is lost."""
    ours = queue_notifications(queue_arn)
    notifications = {k: v for k, v in current_notifications.items() if k != "ResponseMetadata"}
    current_notifications = copy.deepcopy(notifications)
    overlapping = []
    for kind in NOTIFICATION_KINDS:
        kept = []
        for entry in notifications.get(kind, []):
            if str(entry.get("Id", "")).startswith(OWNER):
                continue
            if any(_overlaps(_normalised(entry), o) for o in ours):
                overlapping.append(entry)
                if replace_overlapping:
                    continue
            kept.append(entry)
        if kept:
            notifications[kind] = kept
        else:
            notifications.pop(kind, None)
    if overlapping and not replace_overlapping:
        raise BucketConfigError(
            "these notifications overlap the ingest queue's (same events, overlapping prefixes) and S3 "
            "would refuse both; rerun with --replace-overlapping to remove them in the same write:\n"
            + json.dumps(overlapping, indent=2, default=str)
        )
    existing_ours = {
        e.get("Id"): e for e in current_notifications.get("QueueConfigurations", [])
        if str(e.get("Id", "")).startswith(OWNER)
    }
    if (
        not overlapping
        and set(existing_ours) == {o["Id"] for o in ours}
        and all(_contains(_normalised(existing_ours[o["Id"]]), _normalised(o)) for o in ours)
    ):
        notifications = current_notifications  # already in place: leave S3's spelling alone
    else:
        notifications["QueueConfigurations"] = notifications.get("QueueConfigurations", []) + ours

    by_id = {r.get("ID"): r for r in current_rules}
    rules = [r for r in current_rules if not str(r.get("ID", "")).startswith(OWNER)]
    if {r["ID"] for r in LIFECYCLE_RULES} == {i for i in by_id if str(i).startswith(OWNER)} and all(
        _contains(by_id[r["ID"]], r) for r in LIFECYCLE_RULES
    ):
        rules = list(current_rules)
    else:
        rules += copy.deepcopy(LIFECYCLE_RULES)
    return Plan(current_notifications, notifications, list(current_rules), rules, overlapping)


def read_bucket(bucket: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    s3 = client("s3")
    notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    return notifications, rules


def apply(bucket: str, change: Plan) -> None:
    s3 = client("s3")
    if change.notifications_change:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=change.notifications)
    if change.lifecycle_changes:
        if change.rules:
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": change.rules})
        else:
            s3.delete_bucket_lifecycle(Bucket=bucket)

"""The bucket configuration plan on its own: how S3 spells a filter rule is no change to make."""

from __future__ import annotations

import pytest

from archive.ops.bucket_config import plan


@pytest.mark.parametrize("name", ["prefix", "Prefix"])
def test_filter_rule_spelling_does_not_count_as_a_change(name):
    arn = "arn:aws:sqs:us-east-1:123456789012:photonranch-archive-ingest-dev"
    first = plan({}, [], arn)
    for entry in first.notifications["QueueConfigurations"]:
        entry["Filter"]["Key"]["FilterRules"][0]["Name"] = name
    again = plan(first.notifications, first.rules, arn)
    assert not again.notifications_change and not again.lifecycle_changes

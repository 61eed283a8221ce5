"""`python -m archive bucket configure`: notifications and lifecycle on the existing bucket, against moto."""

from __future__ import annotations

import json

from archive import aws
from archive.cli import main
from archive.ops.bucket_config import LIFECYCLE_RULES
from archive.settings import get_settings


def configure(*extra: str) -> int:
    return main(["bucket", "configure", "--stage", get_settings().stage, *extra])


def notifications(bucket: str) -> dict:
    config = aws.client("s3").get_bucket_notification_configuration(Bucket=bucket)
    config.pop("ResponseMetadata", None)
    return config


def lifecycle(bucket: str) -> list[dict]:
    s3 = aws.client("s3")
    try:
        return s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except s3.exceptions.ClientError:
        return []


def queue_arn(url: str) -> str:
    return aws.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def prefixes_to(config: dict, arn: str) -> set[str]:
    return {
        rule["Value"]
        for entry in config.get("QueueConfigurations", []) if entry["QueueArn"] == arn
        for rule in entry["Filter"]["Key"]["FilterRules"] if rule["Name"].lower() == "prefix"
    }


def received(url: str) -> list[str]:
    messages = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    keys = []
    for message in messages.get("Messages", []):
        body = json.loads(message["Body"])
        keys += [r["s3"]["object"]["key"] for r in body.get("Records", [])]
    return keys


def test_uploads_under_the_three_prefixes_reach_the_ingest_queue(aws_stack, bucket, capsys):
    assert configure() == 0
    s3 = aws.client("s3")
    for key in ("data/a.txt", "info-images/b.txt", "allsky/c.txt", "downloads/d.zip", "other/e.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    keys = {k.replace("%2F", "/") for k in received(aws_stack.ingest_queue_url)}
    assert keys == {"data/a.txt", "info-images/b.txt", "allsky/c.txt"}
    config = notifications(bucket)
    (entry, *_) = config["QueueConfigurations"]
    assert entry["Events"] == ["s3:ObjectCreated:*"]
    assert "now sends" in capsys.readouterr().out


def test_lifecycle_rules_move_data_to_infrequent_access_and_expire_info_images_downloads_and_renders(
    aws_stack, bucket
):
    assert configure() == 0
    rules = {r["Filter"]["Prefix"]: r for r in lifecycle(bucket)}
    assert rules["data/"]["Transitions"] == [{"Days": 30, "StorageClass": "STANDARD_IA"}]
    assert rules["info-images/"]["Expiration"] == {"Days": 2}
    assert rules["downloads/"]["Expiration"] == {"Days": 2}
    assert rules["thumbnails/"]["Expiration"] == {"Days": 30}, "the image API's cache cleans itself"
    assert all(r["Status"] == "Enabled" for r in rules.values())


def test_a_second_run_changes_nothing(aws_stack, bucket, capsys):
    assert configure() == 0
    before = (notifications(bucket), lifecycle(bucket))
    capsys.readouterr()
    assert configure() == 0
    out = capsys.readouterr().out
    assert "notification: no change" in out and "lifecycle: no change" in out and "already sends" in out
    assert (notifications(bucket), lifecycle(bucket)) == before


def test_unrelated_notifications_and_rules_survive(aws_stack, bucket):
    s3 = aws.client("s3")
    other_queue = aws.client("sqs").create_queue(QueueName="audit")["QueueUrl"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [{
        "Id": "audit-deletes", "QueueArn": queue_arn(other_queue), "Events": ["s3:ObjectRemoved:*"],
    }]})
    logs_rule = {"ID": "old-logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 90}}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [logs_rule]})

    assert configure() == 0

    config = notifications(bucket)
    assert [e["Id"] for e in config["QueueConfigurations"] if e["QueueArn"] == queue_arn(other_queue)] == [
        "audit-deletes"]
    assert prefixes_to(config, queue_arn(aws_stack.ingest_queue_url)) == {"data/", "info-images/", "allsky/"}
    assert {r["ID"] for r in lifecycle(bucket)} == {"old-logs", *(r["ID"] for r in LIFECYCLE_RULES)}


def test_dry_run_prints_the_change_and_writes_nothing(aws_stack, bucket, capsys):
    assert configure("--dry-run") == 0
    out = capsys.readouterr().out
    assert '+      "Id": "photonranch-archive-ingest-data"' in out
    assert '+      "ID": "photonranch-archive-downloads-expire"' in out
    assert "nothing written" in out
    assert notifications(bucket).get("QueueConfigurations") is None
    assert lifecycle(bucket) == []


def test_a_drifted_rule_of_ours_is_put_back(aws_stack, bucket):
    assert configure() == 0
    s3 = aws.client("s3")
    rules = lifecycle(bucket)
    for rule in rules:
        if rule["ID"] == "photonranch-archive-info-images-expire":
            rule["Expiration"] = {"Days": 30}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})

    assert configure() == 0

    rules = {r["ID"]: r for r in lifecycle(bucket)}
    assert rules["photonranch-archive-info-images-expire"]["Expiration"] == {"Days": 2}
    assert len(rules) == len(LIFECYCLE_RULES)


def test_an_overlapping_trigger_is_refused_unless_replacement_is_asked_for(aws_stack, bucket, capsys):
    s3 = aws.client("s3")
    old_queue = aws.client("sqs").create_queue(QueueName="old-trigger")["QueueUrl"]
    old = {"QueueConfigurations": [{
        "Id": "legacy-data", "QueueArn": queue_arn(old_queue), "Events": ["s3:ObjectCreated:Put"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "data/raw"}]}},
    }]}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=old)
    before = notifications(bucket)

    assert configure() == 1
    assert "--replace-overlapping" in capsys.readouterr().out
    assert notifications(bucket) == before

    assert configure("--replace-overlapping") == 0
    config = notifications(bucket)
    assert prefixes_to(config, queue_arn(old_queue)) == set()
    assert prefixes_to(config, queue_arn(aws_stack.ingest_queue_url)) == {"data/", "info-images/", "allsky/"}


def test_a_missing_ingest_queue_says_to_deploy_first(aws_stack, bucket, capsys):
    assert main(["bucket", "configure", "--stage", "nosuchstage"]) == 1
    assert "deploy the stack first" in capsys.readouterr().out
    assert notifications(bucket).get("QueueConfigurations") is None



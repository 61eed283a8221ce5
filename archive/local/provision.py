"""Create the AWS resources the pipeline uses, for the local stack and the tests.

In AWS these come from serverless.yml; locally (moto) they are made here from the same definitions:
each table and queue gets its template resource's properties (archive/local/template.py reads them), so
the keys, TTL attributes, the tracker's stream, billing, point-in-time recovery, visibility timeout,
retention, encryption and the redrive to the dead-letter queue cannot drift apart. Only the names come
from settings (a test or a local stage may rename them). The datastream queue belongs to another
service and is created plain. tests/integration/test_provision_matches_template.py reads every property
back from moto and compares it with the template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from archive.aws import client
from archive.local import template
from archive.settings import Settings, get_settings

# Setting that names the table -> its resource in serverless.yml.
TABLES = {"uploads_log_table": "UploadsLogTable", "info_images_table": "InfoImagesTable",
          "expiration_table": "ExpirationTable"}
INGEST_QUEUE = "IngestQueue"
INGEST_DLQ = "IngestDeadLetterQueue"
# Table properties handed to CreateTable as they are; the others are applied below.
_CREATE_TABLE = ("KeySchema", "AttributeDefinitions", "BillingMode")
_TABLE_APPLIED = {*_CREATE_TABLE, "TableName", "StreamSpecification", "TimeToLiveSpecification",
                  "PointInTimeRecoverySpecification"}


@dataclass(frozen=True)
class Provisioned:
    ingest_queue_url: str
    ingest_dlq_url: str
    datastream_queue_url: str


def service_for(settings: Settings) -> template.Service:
    """serverless.yml for the settings' stage and region."""
    return template.load(settings.stage, settings.region)


def ensure_table(name: str, props: dict[str, Any]) -> None:
    unknown = sorted(set(props) - _TABLE_APPLIED)
    if unknown:
        raise template.TemplateError(f"table property {unknown} is not applied locally (archive/local/provision.py)")
    ddb = client("dynamodb")
    kwargs: dict[str, Any] = {"TableName": name, **{key: props[key] for key in _CREATE_TABLE if key in props}}
    if "StreamSpecification" in props:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    try:
        ddb.create_table(**kwargs)
    except ddb.exceptions.ResourceInUseException:
        return
    if "TimeToLiveSpecification" in props:
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"])
    if "PointInTimeRecoverySpecification" in props:
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification=props["PointInTimeRecoverySpecification"])


def provision_tables(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    service = service_for(settings)
    for setting, logical_id in TABLES.items():
        ensure_table(getattr(settings, setting), service.properties(logical_id))


def queue_attributes(props: dict[str, Any]) -> dict[str, str]:
    """A queue resource's properties as CreateQueue attributes (the redrive policy is the caller's)."""
    return {key: (str(value).lower() if isinstance(value, bool) else str(value))
            for key, value in props.items() if key not in ("QueueName", "RedrivePolicy")}


def provision_queues(settings: Settings | None = None, max_receive_count: int | None = None) -> Provisioned:
    """The ingest queue and its dead-letter queue as the template defines them (`max_receive_count`
    overrides the template's, for tests of the redrive), and the datastream queue."""
    settings = settings or get_settings()
    service = service_for(settings)
    sqs = client("sqs")
    name = settings.ingest_queue_name
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq", Attributes=queue_attributes(service.properties(INGEST_DLQ)))[
        "QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    props = service.properties(INGEST_QUEUE)
    receives = max_receive_count if max_receive_count is not None else props["RedrivePolicy"]["maxReceiveCount"]
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            **queue_attributes(props),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(receives)}),
        },
    )["QueueUrl"]
    datastream_url = sqs.create_queue(QueueName=settings.datastream_queue_name)["QueueUrl"]
    return Provisioned(queue_url, dlq_url, datastream_url)


def provision_bucket(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    s3 = client("s3")
    try:
        if settings.region == "us-east-1":
            s3.create_bucket(Bucket=settings.bucket)
        else:
            s3.create_bucket(
                Bucket=settings.bucket, CreateBucketConfiguration={"LocationConstraint": settings.region}
            )
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        pass


def provision_all(settings: Settings | None = None) -> Provisioned:
    """Bucket, tables and queues; idempotent."""
    settings = settings or get_settings()
    provision_bucket(settings)
    provision_tables(settings)
    return provision_queues(settings)

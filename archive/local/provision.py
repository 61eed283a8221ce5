"""Create the AWS resources the pipeline uses, for the local stack and the tests.

In AWS these come from serverless.yml; locally (moto) they are made here with the same shapes:
the tables' keys, TTL attributes and the tracker's stream, the ingest queue with its dead-letter
queue, and the datastream queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from archive.aws import client
from archive.settings import Settings, get_settings


@dataclass(frozen=True)
class Provisioned:
    ingest_queue_url: str
    ingest_dlq_url: str
    datastream_queue_url: str


def _ensure_table(name: str, key_schema: list[dict], attributes: list[dict], ttl: str, stream: bool) -> None:
    ddb = client("dynamodb")
    try:
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": key_schema,
            "AttributeDefinitions": attributes,
            "BillingMode": "PAY_PER_REQUEST",
        }
        if stream:
            kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        ddb.create_table(**kwargs)
    except ddb.exceptions.ResourceInUseException:
        return
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl})


def provision_tables(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    _ensure_table(
        settings.uploads_log_table,
        [{"AttributeName": "site", "KeyType": "HASH"}, {"AttributeName": "upload_id", "KeyType": "RANGE"}],
        [{"AttributeName": "site", "AttributeType": "S"}, {"AttributeName": "upload_id", "AttributeType": "S"}],
        "expire_timestamp_s",
        stream=False,
    )
    _ensure_table(
        settings.info_images_table,
        [{"AttributeName": "pk", "KeyType": "HASH"}],
        [{"AttributeName": "pk", "AttributeType": "S"}],
        "expiration_timestamp",
        stream=False,
    )
    _ensure_table(
        settings.expiration_table,
        [{"AttributeName": "pk", "KeyType": "HASH"}],
        [{"AttributeName": "pk", "AttributeType": "S"}],
        "expiration_timestamp_s",
        stream=True,
    )


def provision_queues(settings: Settings | None = None, max_receive_count: int = 5) -> Provisioned:
    settings = settings or get_settings()
    sqs = client("sqs")
    name = settings.ingest_queue_name
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}),
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

"""`python -m archive bucket configure --stage …`: point the upload bucket at the ingest queue.

What the bucket must hold, and how a change is planned safely, is `archive.ops.bucket_config`.
"""

from __future__ import annotations

import argparse
import os

from archive.aws import client
from archive.ops.bucket_config import NOTIFIED_PREFIXES, BucketConfigError, apply, plan, read_bucket
from archive.settings import load_settings


def ingest_queue_arn(queue_name: str) -> str:
    sqs = client("sqs")
    try:
        url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        raise BucketConfigError(
            f"queue {queue_name} does not exist: deploy the stack first (serverless deploy --stage …)"
        ) from None
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def configure(args: argparse.Namespace) -> int:
    settings = load_settings({**os.environ, "STAGE": args.stage})
    bucket = args.bucket or settings.bucket
    try:
        queue_arn = args.queue_arn or ingest_queue_arn(settings.ingest_queue_name)
        notifications, rules = read_bucket(bucket)
        change = plan(notifications, rules, queue_arn, replace_overlapping=args.replace_overlapping)
    except BucketConfigError as exc:
        print(f"s3://{bucket}: {exc}")
        return 1
    print(change.diff(bucket), end="")
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    if not (change.notifications_change or change.lifecycle_changes):
        print(f"s3://{bucket} already sends {', '.join(NOTIFIED_PREFIXES)} uploads to {queue_arn}")
        return 0
    apply(bucket, change)
    print(f"s3://{bucket} now sends {', '.join(NOTIFIED_PREFIXES)} uploads to {queue_arn}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bucket", help="configure the upload bucket", description=__doc__)
    commands = parser.add_subparsers(dest="bucket_command", metavar="SUBCOMMAND", required=True)
    configure_parser = commands.add_parser(
        "configure", help="notifications to the ingest queue and lifecycle rules, idempotently",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_parser.add_argument("--stage", required=True, help="the serverless stage (names the ingest queue)")
    configure_parser.add_argument("--bucket", help="bucket name (default: BUCKET_NAME or the settings default)")
    configure_parser.add_argument("--queue-arn", help="ingest queue ARN (default: looked up by the stage's name)")
    configure_parser.add_argument("--dry-run", action="store_true", help="print the change, write nothing")
    configure_parser.add_argument(
        "--replace-overlapping", action="store_true",
        help="remove existing notifications that overlap ours (e.g. the old direct Lambda trigger)",
    )
    configure_parser.set_defaults(func=configure)

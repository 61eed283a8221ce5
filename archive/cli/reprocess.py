"""`python -m archive reprocess`: replay object-created events for objects already in the bucket.

For a backfill after a schema change, a restored database or a bug fix: every object under the prefix
(optionally only one site's, only those uploaded since a date) goes through the ingest handler again
as the S3 notification AWS sent when it was uploaded, with the object's LastModified as the event
time, so dates derived from the upload time come out as they did the first time. Ingestion converges
whatever the order and however often a file arrives, so running this twice changes nothing more.
Header text files go first, so FITS files find their exposure's header and need not read their own.

`--via handler` (default) calls `handlers.ingest.handler` in this process, which needs the database
and AWS settings of the target (the local stack's `.archive/local.env` has them) and reports each
file's status. `--via queue` sends the events to the ingest queue instead, for the deployed (or
local) worker to process; the count is then of messages queued.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from archive.aws import client
from archive.local.events import LambdaContext, s3_object_created_event
from archive.local.target import add_env_file_argument, load_target
from archive.settings import get_settings
from handlers.ingest import handler
from handlers.observability import set_level


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    last_modified: dt.datetime  # aware, UTC
    etag: str


def parse_since(text: str) -> dt.datetime:
    """`YYYY-MM-DD` → midnight UTC of that day."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--since must be YYYY-MM-DD, got {text!r}") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def selected(
    objects: Iterable[StoredObject], *, site: str | None = None, since: dt.datetime | None = None
) -> list[StoredObject]:
    """The objects to replay, header text files first (then by key, for a stable order)."""
    chosen = [
        o
        for o in objects
        if (site is None or o.key.rsplit("/", 1)[-1].startswith(f"{site}-"))
        and (since is None or o.last_modified >= since)
    ]
    return sorted(chosen, key=lambda o: (not o.key.endswith(".txt"), o.key))


def list_objects(bucket: str, prefix: str) -> Iterator[StoredObject]:
    for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield StoredObject(obj["Key"], int(obj["Size"]), obj["LastModified"], obj.get("ETag", ""))


def event_for(obj: StoredObject, bucket: str, region: str) -> dict[str, Any]:
    return s3_object_created_event(bucket, obj.key, obj.size_bytes, obj.last_modified, region, obj.etag)


def replay_through_handler(objects: list[StoredObject], bucket: str, region: str, progress: bool) -> Counter[str]:
    """One direct S3 event per object, so each object's status comes back on its own."""
    # One JSON log line per file would bury the progress bar; LOG_LEVEL=INFO brings them back.
    set_level(os.environ.get("LOG_LEVEL") or "WARNING")
    counts: Counter[str] = Counter()
    for obj in tqdm(objects, unit="file", desc="reprocess", disable=not progress):
        try:
            result = handler(event_for(obj, bucket, region), LambdaContext(function_name="archive-reprocess"))
        except Exception:  # noqa: BLE001 - the handler raises when a retry could help; count it, go on
            counts["retry needed"] += 1
            continue
        statuses = (result or {}).get("statuses") or {}
        counts.update(statuses)
        if not statuses:
            counts["no effect"] += 1
    return counts


def replay_through_queue(objects: list[StoredObject], bucket: str, region: str, progress: bool) -> Counter[str]:
    sqs = client("sqs")
    queue_url = os.environ.get("INGEST_QUEUE_URL") or sqs.get_queue_url(QueueName=get_settings().ingest_queue_name)[
        "QueueUrl"
    ]
    counts: Counter[str] = Counter()
    with tqdm(total=len(objects), unit="file", desc="queue", disable=not progress) as bar:
        for start in range(0, len(objects), 10):
            chunk = objects[start : start + 10]
            entries = [
                {"Id": str(i), "MessageBody": json.dumps(event_for(o, bucket, region))} for i, o in enumerate(chunk)
            ]
            result = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            counts["queued"] += len(result.get("Successful", []))
            counts["not queued"] += len(result.get("Failed", []))
            bar.update(len(chunk))
    return counts


def run(args: argparse.Namespace) -> int:
    print(load_target(args.env_file))
    settings = get_settings()
    objects = selected(list_objects(settings.bucket, args.prefix), site=args.site, since=args.since)
    print(f"{len(objects)} objects under {args.prefix!r}" + (f" of site {args.site}" if args.site else ""))
    if not objects or args.dry_run:
        for obj in objects[:20] if args.dry_run else []:
            print(f"  {obj.key}")
        return 0
    replay = replay_through_queue if args.via == "queue" else replay_through_handler
    counts = replay(objects, settings.bucket, settings.region, not args.no_progress)
    counts = +counts  # drop zero counts
    width = max((len(k) for k in counts), default=0)
    for status, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {status:<{width}}  {count}")
    return 0 if not (counts["retry needed"] or counts["not queued"]) else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reprocess",
        help="replay object-created events for objects already in the bucket (backfill)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--prefix", default="data/", help="key prefix to replay (default: %(default)s)")
    parser.add_argument("--since", type=parse_since, help="only objects uploaded on or after YYYY-MM-DD (UTC)")
    parser.add_argument("--site", help="only this site's files")
    parser.add_argument("--via", choices=("handler", "queue"), default="handler", help="default: %(default)s")
    parser.add_argument("--dry-run", action="store_true", help="list what would be replayed (first 20)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_env_file_argument(parser)
    parser.set_defaults(func=run)

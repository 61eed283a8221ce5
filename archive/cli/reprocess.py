"""`python -m archive reprocess`: replay object-created events for objects already in the bucket.

For a backfill after a schema change, a restored database or a bug fix: every object under the prefix
(optionally only one site's, only those uploaded since a date) goes through the ingest handler again
as the S3 notification AWS sent when it was uploaded, with the object's LastModified as the event
time, so dates derived from the upload time come out as they did the first time. Ingestion converges
whatever the order and however often a file arrives, so running this twice changes nothing more.
Header text files go first, so FITS files find their exposure's header and need not read their own.

`--via handler` (default) calls `handlers.ingest.handler` in this process, in `--workers` threads
(each holds at most one database connection, so the backfill adds at most that many connections to
the database), which needs the database and AWS settings of the target (the local stack's
`.archive/local.env` has them) and reports each file's status. `--via queue` sends the events to the
ingest queue instead, for the deployed (or local) worker to process, so the function's concurrency cap
bounds the connections; the count is then of messages queued.

A long backfill can be stopped with Ctrl-C: the files in hand finish, and a checkpoint file (under
`.archive/`, named for what was asked) records how far it got. The same command run again continues
from there; `--restart` starts over. A run that completes removes its checkpoint.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from archive.aws import client
from archive.cli.resumable import Checkpoint, Interrupted, run_ordered
from archive.database import get_engine
from archive.local.events import LambdaContext, s3_object_created_event
from archive.local.target import add_env_file_argument, load_target
from archive.settings import get_settings
from handlers.ingest import handler
from handlers.observability import set_level

# Threads of `--via handler`. Each holds at most one database connection at a time (db's pool allows
# 5 + 10 overflow) and one of botocore's connections (10 per client).
MAX_WORKERS = 10
DEFAULT_WORKERS = 4
CHECKPOINT_DIR = Path(".archive")


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
    return sorted(chosen, key=position)


def position(obj: StoredObject) -> str:
    """Where an object comes in a replay, as a string that sorts in that order: headers, then by key."""
    return f"{0 if is_header(obj) else 1}/{obj.key}"


def is_header(obj: StoredObject) -> bool:
    return obj.key.endswith(".txt")


def list_objects(bucket: str, prefix: str) -> Iterator[StoredObject]:
    for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield StoredObject(obj["Key"], int(obj["Size"]), obj["LastModified"], obj.get("ETag", ""))


def event_for(obj: StoredObject, bucket: str, region: str) -> dict[str, Any]:
    return s3_object_created_event(bucket, obj.key, obj.size_bytes, obj.last_modified, region, obj.etag)


def _progress_bar(objects: list[StoredObject], checkpoint: Checkpoint | None, desc: str, enabled: bool) -> Any:
    already = sum(checkpoint.finished(position(o)) for o in objects) if checkpoint else 0
    return tqdm(total=len(objects), initial=already, unit="file", desc=desc, disable=not enabled, smoothing=0.05)


def _warm_clients() -> None:
    """Build the shared clients and engine before threads use them (building them is not thread-safe)."""
    for service in ("s3", "dynamodb", "sqs"):
        client(service)
    get_engine()


def replay_through_handler(
    objects: list[StoredObject],
    bucket: str,
    region: str,
    progress: bool,
    *,
    workers: int = 1,
    checkpoint: Checkpoint | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """One direct S3 event per object, so each object's status comes back on its own.

    `workers` threads call the handler at once; the process opens at most that many database
    connections. Header texts all finish before the other files start.
    """
    # One JSON log line per file would bury the progress bar; LOG_LEVEL=INFO brings them back.
    set_level(os.environ.get("LOG_LEVEL") or "WARNING")
    _warm_clients()

    def ingest(chunk: list[StoredObject]) -> Counter[str]:
        counts: Counter[str] = Counter()
        for obj in chunk:
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

    with _progress_bar(objects, checkpoint, "reprocess", progress) as bar:

        def advance(n: int) -> None:
            bar.update(n)
            if on_progress:
                on_progress(n)

        return run_ordered(
            objects, ingest, position=position, phase=is_header, workers=workers, checkpoint=checkpoint,
            progress=advance,
        )


def replay_through_queue(
    objects: list[StoredObject],
    bucket: str,
    region: str,
    progress: bool,
    *,
    checkpoint: Checkpoint | None = None,
) -> Counter[str]:
    sqs = client("sqs")
    queue_url = os.environ.get("INGEST_QUEUE_URL") or sqs.get_queue_url(QueueName=get_settings().ingest_queue_name)[
        "QueueUrl"
    ]

    def send(chunk: list[StoredObject]) -> Counter[str]:
        entries = [{"Id": str(i), "MessageBody": json.dumps(event_for(o, bucket, region))} for i, o in enumerate(chunk)]
        result = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        return Counter({"queued": len(result.get("Successful", [])), "not queued": len(result.get("Failed", []))})

    with _progress_bar(objects, checkpoint, "queue", progress) as bar:
        return run_ordered(objects, send, position=position, chunk=10, checkpoint=checkpoint, progress=bar.update)


def checkpoint_for(args: argparse.Namespace, bucket: str, target: str) -> Checkpoint:
    """The checkpoint of this backfill: same target, bucket and selection resume it, anything else starts over."""
    run = {"target": target, "bucket": bucket, "prefix": args.prefix, "site": args.site,
           "since": args.since.isoformat() if args.since else None, "via": args.via}
    digest = hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:12]
    path = args.checkpoint or CHECKPOINT_DIR / f"reprocess-{digest}.json"
    return Checkpoint.open(path, run, restart=args.restart)


def describe_stop(stop: Interrupted) -> str:
    """What to tell the operator after Ctrl-C: how far it got and how to go on."""
    where = f" (everything through {stop.through.split('/', 1)[1]})" if stop.through else ""
    lines = [f"interrupted: {stop.done} of {stop.total} objects done{where}."]
    if stop.checkpoint is not None:
        lines.append(f"The checkpoint {stop.checkpoint.path} keeps the place: run the same command again to "
                     "continue from there, or add --restart to start over.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    print(load_target(args.env_file))
    settings = get_settings()
    started = time.monotonic()
    objects = selected(list_objects(settings.bucket, args.prefix), site=args.site, since=args.since)
    print(f"{len(objects)} objects under {args.prefix!r}" + (f" of site {args.site}" if args.site else "")
          + f" (listed in {time.monotonic() - started:.1f} s)")
    if not objects or args.dry_run:
        for obj in objects[:20] if args.dry_run else []:
            print(f"  {obj.key}")
        return 0
    checkpoint = checkpoint_for(args, settings.bucket, settings.aws_endpoint_url or f"aws:{settings.region}")
    done = sum(checkpoint.finished(position(o)) for o in objects) if checkpoint.resumed else 0
    if checkpoint.resumed:
        print(f"resuming from {checkpoint.path}: {done} of {len(objects)} objects already done")
    todo = len(objects) - done
    started = time.monotonic()
    try:
        if args.via == "queue":
            counts = replay_through_queue(objects, settings.bucket, settings.region, not args.no_progress,
                                          checkpoint=checkpoint)
        else:
            print(f"{args.workers} workers: at most {args.workers} database connections")
            counts = replay_through_handler(objects, settings.bucket, settings.region, not args.no_progress,
                                            workers=args.workers, checkpoint=checkpoint)
    except Interrupted as stop:
        print(describe_stop(stop))
        return 130
    elapsed = time.monotonic() - started
    checkpoint.discard()
    print(f"replayed {todo} objects in {elapsed:.1f} s ({todo / max(elapsed, 1e-9):.1f} objects/s)")
    counts = +counts  # drop zero counts
    width = max((len(k) for k in counts), default=0)
    for status, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {status:<{width}}  {count}")
    return 0 if not (counts["retry needed"] or counts["not queued"]) else 1


def _workers(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"--workers must be between 1 and {MAX_WORKERS}")
    return value


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
    parser.add_argument("--workers", type=_workers, default=DEFAULT_WORKERS,
                        help="--via handler: files replayed at once, and so the most database connections it "
                             f"opens (1-{MAX_WORKERS}, default %(default)s)")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint file (default: .archive/reprocess-<run>.json)")
    parser.add_argument("--restart", action="store_true", help="ignore a saved checkpoint and start over")
    add_env_file_argument(parser)
    parser.set_defaults(func=run)

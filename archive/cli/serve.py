"""`python -m archive serve`: the local stack in the foreground until Ctrl-C (see archive/local/stack.py)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from archive.local.stack import LocalStack, StackError, StackOptions
from archive.local.viewer import page_url


def usage(stack: LocalStack) -> str:
    env = stack.env
    database = stack.database.description if stack.database else "?"
    return "\n".join(
        [
            f"Local stack on {stack.endpoint_url} (S3, SQS, DynamoDB by moto)",
            f"  bucket      {env['BUCKET_NAME']}  (s3:ObjectCreated:* -> {env['INGEST_QUEUE_NAME']})",
            f"  tables      {env['UPLOADS_LOG_TABLE']}, {env['INFO_IMAGES_TABLE']}, {env['EXPIRATION_TABLE']}",
            f"  queues      {env['INGEST_QUEUE_NAME']} (+ -dlq), {env['DATASTREAM_QUEUE_NAME']}",
            f"  database    {database}",
            f"  HTTP API    {stack.api_url}  (try {stack.api_url}/health/ready)",
            f"  viewer      {page_url(stack.api_url)}",
            f"  settings    {stack.env_file}",
            "",
            "From another shell in this directory (the commands find the settings file themselves):",
            "  python -m archive simulate-site --site tst --exposures 5",
            "  python -m archive status",
            "Other programs (site upload scripts, photonranch-api, the aws CLI):",
            f"  set -a; . {stack.env_file}; set +a",
            f"  aws --endpoint-url {stack.endpoint_url} s3 ls s3://{env['BUCKET_NAME']}/data/",
            "",
            "Ctrl-C stops everything.",
        ]
    )


def run(args: argparse.Namespace) -> int:
    options = StackOptions(
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        fresh_database=args.fresh_database,
        max_receive_count=args.max_receive_count,
        sweep_interval=args.sweep_interval,
        drain_datastream=args.drain_datastream,
    )
    stop = threading.Event()
    started = threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()
        if not started.is_set():
            raise KeyboardInterrupt  # interrupt a slow start (PostgreSQL, imports) as Ctrl-C always does

    # Installed explicitly: a shell starts background jobs with SIGINT ignored, and SIGTERM must stop too.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = LocalStack(options)
    try:
        stack.start()
        started.set()
        print(usage(stack), flush=True)
        while not stop.wait(0.5):
            pass
    except StackError as exc:
        print(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        started.set()  # a second signal while stopping must not interrupt the clean-up
        print("stopping…", flush=True)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run S3/SQS/DynamoDB locally with the ingest worker and TTL sweeper",
        description=(
            "Start moto's server on loopback, provision the bucket, tables and queues, open the database "
            "(DATABASE_URL, else an embedded PostgreSQL under the state directory, else SQLite), and run "
            "the ingest worker and the TTL sweeper until Ctrl-C. Writes STATE_DIR/local.env."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=4566,
        help="moto's port, 0 for any free one; the HTTP API listens on the next one (default: %(default)s)",
    )
    parser.add_argument("--state-dir", type=Path, default=Path(".archive"), help="default: %(default)s")
    parser.add_argument(
        "--fresh-database", action="store_true", help="empty the embedded database first (moto's state is always new)"
    )
    parser.add_argument(
        "--max-receive-count", type=int, default=None,
        help="receives before the DLQ (default: as deployed, from serverless.yml)",
    )
    parser.add_argument(
        "--sweep-interval", type=float, default=1.0,
        help="seconds between TTL sweeps (default: %(default)s). Each sweep scans every table in moto; for a "
             "backfill of tens of thousands of files (a large uploads log) 60 keeps moto free for the backfill",
    )
    parser.add_argument(
        "--drain-datastream", action="store_true",
        help="consume the datastream queue as the datastreamer would (for large backfills: moto slows down as "
             "an unread queue grows); by default its messages stay for you to read",
    )
    parser.set_defaults(func=run)

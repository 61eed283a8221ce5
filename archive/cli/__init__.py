"""The `python -m archive` command line: operator commands and dev tools, never shipped to Lambda.

Each command module defines `register(subparsers)`, which adds its parsers with
`set_defaults(func=...)`; `func(args)` returns the exit code.
"""

from __future__ import annotations

import argparse
import sys

from botocore.exceptions import EndpointConnectionError

from archive.cli import bucket, demo, expiry, migrate, reprocess, serve, simulate, status
from archive.database import DatabaseConfigError
from db import DatabaseURLError

COMMANDS = (migrate, expiry, serve, simulate, demo, reprocess, status, bucket)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m archive", description="Photon Ranch data archive")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EndpointConnectionError as exc:  # the local stack stopped, or a wrong AWS_ENDPOINT_URL
        print(f"error: {exc} (is the local stack running? `python -m archive serve`)", file=sys.stderr)
        return 1
    except (DatabaseURLError, DatabaseConfigError) as exc:  # one line; the URL's password stays out
        print(f"error: {exc}", file=sys.stderr)
        return 1

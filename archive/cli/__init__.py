"""The `python -m archive` command line: operator commands and dev tools, never shipped to Lambda.

Each command module defines `register(subparsers)`, which adds its parsers with
`set_defaults(func=...)`; `func(args)` returns the exit code.
"""

from __future__ import annotations

import argparse

from archive.cli import bucket, demo, expiry, migrate, reprocess, serve, simulate, status

COMMANDS = (migrate, expiry, serve, simulate, demo, reprocess, status, bucket)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m archive", description="Photon Ranch data archive")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)

"""The `python -m archive` command line.

Each command lives in the module that holds what it does; a module joins the CLI by defining
`register(subparsers)`, which adds its parsers with `set_defaults(func=...)`; `func(args)` returns
the exit code.
"""

from __future__ import annotations

import argparse
import importlib

COMMAND_MODULES = (
    "archive.migrate_cmd",
    "archive.expiry_cmd",
    "archive.local.serve",
    "archive.simulate",
    "archive.local.demo",
    "archive.reprocess",
    "archive.status",
    "archive.bucket",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m archive", description="Photon Ranch data archive")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)

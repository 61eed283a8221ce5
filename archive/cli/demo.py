"""`python -m archive demo`: the whole pipeline on this machine, checked (see archive.local.demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from archive.local.demo import __doc__ as DEMO_DOC
from archive.local.demo import run_demo
from archive.local.stack import StackError


def run(args: argparse.Namespace) -> int:
    try:
        report = run_demo(args)
    except StackError as exc:
        print(f"error: {exc}")
        return 2
    print(report.format(), flush=True)
    if not report.checks or not report.checks[0].ok:
        return 2
    return 0 if report.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline locally, check the outcome and print throughput and latency",
        description=DEMO_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--exposures", type=int, default=20, help="exposures per site (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for processing (default: 180)")
    parser.add_argument("--port", type=int, default=0, help="moto's port (default: any free one)")
    parser.add_argument("--state-dir", type=Path, default=Path(".archive"), help="default: %(default)s")
    parser.add_argument("--columns", type=int, default=8, help="contact sheet columns (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)

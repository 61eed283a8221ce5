"""`python -m archive demo`: the whole pipeline on this machine, checked (see archive.local.demo)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from archive.local.demo import DemoReport, run_demo
from archive.local.demo import __doc__ as DEMO_DOC
from archive.local.stack import LocalStack, StackError


def keep_until_stopped(stack: LocalStack, report: DemoReport) -> None:
    """`--keep`: the summary now, then the stack stays up (viewer, moto, worker) until Ctrl-C/SIGTERM."""
    print(report.format(), flush=True)
    print(
        f"\nThe stack stays up: open {report.viewer_url}\n"
        f"  settings for other programs: {stack.env_file}\n"
        "  from another shell: python -m archive simulate-site --site tst --exposures 5  (the page follows)\n"
        "Ctrl-C stops everything.",
        flush=True,
    )
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    try:
        report = run_demo(args, hold=keep_until_stopped if args.keep else None)
    except StackError as exc:
        print(f"error: {exc}")
        return 2
    if not args.keep:  # a kept run printed its summary before waiting
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
    parser.add_argument(
        "--keep", action="store_true", help="after the checks, keep the stack and its viewer up until Ctrl-C"
    )
    parser.set_defaults(func=run)

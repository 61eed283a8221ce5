"""`python -m archive expiry cancel BASE…`: keep exposures that were scheduled to expire."""

from __future__ import annotations

import argparse

from archive.clock import utc_now
from archive.formats.filenames import FilenameError
from archive.ingest.expirations import cancel_expiry


def run_cancel(args: argparse.Namespace) -> int:
    status = 0
    for base in args.base_filename:
        try:
            pending = cancel_expiry(base, utc_now())
        except FilenameError as exc:
            print(f"{base}: {exc.reason}")
            status = 2
            continue
        print(f"{base}: expiry cancelled" if pending else f"{base}: had no pending expiry; it will not get one")
    return status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("expiry", help="manage scheduled expirations", description=__doc__)
    commands = parser.add_subparsers(dest="expiry_command", metavar="ACTION", required=True)
    cancel = commands.add_parser(
        "cancel",
        help="keep exposures for good (their tracker items lose the TTL)",
        description="Remove the TTL from the exposures' data-expiration-tracker items and leave them as "
        "markers, so no later file or redelivery schedules the expiry again.",
    )
    cancel.add_argument("base_filename", nargs="+", help="e.g. tst-kb001ms-20220629-00010442")
    cancel.set_defaults(func=run_cancel)

"""`python -m archive migrate`: apply the database migrations (create or adopt `images`)."""

from __future__ import annotations

import argparse

import migrations
from archive import database


def run(args: argparse.Namespace) -> int:
    migrations.upgrade(args.database_url or database.database_url())
    print("images table is at the latest migration")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("migrate", help="apply database migrations", description=__doc__)
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: DATABASE_URL or the SSM parameter)")
    parser.set_defaults(func=run)

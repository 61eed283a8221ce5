"""`python -m archive migrate`: apply the database migrations (create or adopt `images`).

`--revision` stops at a revision (its number is enough: `0003`), e.g. to adopt the production table
first and build the frontend indexes (0004) later, at a quiet hour. Migrations only go forward here;
an earlier revision than the database's is refused by Alembic with its reason.
"""

from __future__ import annotations

import argparse

import migrations
from archive import database


def run(args: argparse.Namespace) -> int:
    url = args.database_url or database.database_url()
    migrations.upgrade(url, args.revision)
    print(f"images table is at migration {migrations.current_revision(url)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("migrate", help="apply database migrations", description=__doc__)
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: DATABASE_URL or the SSM parameter)")
    parser.add_argument("--revision", default="head",
                        help="migrate up to this revision, e.g. 0003 (default: head, the latest)")
    parser.set_defaults(func=run)

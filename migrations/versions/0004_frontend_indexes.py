"""Indexes for the queries photonranch-api runs on every page load and search.

Until now `images` had only its primary key and the unique `base_filename`, so the web app's reads
(latest images of a site, latest image of every site, a site's files in a date range, the filtered
search) scanned and sorted the whole table. Each index below serves one of those reads:

- (site, jpg_medium_exists, sort_date): latest images of a site (`LIMIT n`) and the latest image of
  every site (`LIMIT 1` per site), read backwards in sort_date order, no sort;
- (site, user_id, jpg_medium_exists, sort_date): the same for one user (`?userid=`);
- (capture_date, site): a site's files in a date range, and every search with dates; the site is
  checked in the index, so only matching rows are read from the table;
- (user_id, capture_date), (username, capture_date): search by user, with or without dates;
- (base_filename varchar_pattern_ops): search by `base_filename LIKE 'prefix%'` (the unique index
  cannot serve LIKE under a collation other than C).

Why not partial (`WHERE jpg_medium_exists`): photonranch-api writes that condition two ways,
`jpg_medium_exists IS true` (`.is_(True)`) and `jpg_medium_exists = true` (`== True`), and
PostgreSQL 15 proves neither from the other, so a partial index serves only one of the two forms. A
key column serves both (`IS true` on a boolean index column becomes an index condition); ~95 % of
rows have the medium JPG, so a predicate would save little anyway.

On a table that already holds rows (production adopted by 0001) every index is built `CONCURRENTLY`,
outside a transaction, so ingestion keeps writing while it builds. On an empty table they are created
in the migration's transaction. Running it again changes nothing; an index left INVALID by an
interrupted concurrent build is dropped and built again. Downgrade drops exactly these indexes.

Revision ID: 0004_frontend_indexes
Revises: 0003_capture_date_source
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_frontend_indexes"
down_revision = "0003_capture_date_source"
branch_labels = None
depends_on = None

# name -> (columns, PostgreSQL operator classes)
INDEXES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "images_site_latest_idx": (("site", "jpg_medium_exists", "sort_date"), {}),
    "images_site_user_latest_idx": (("site", "user_id", "jpg_medium_exists", "sort_date"), {}),
    "images_capture_site_idx": (("capture_date", "site"), {}),
    "images_user_capture_idx": (("user_id", "capture_date"), {}),
    "images_username_capture_idx": (("username", "capture_date"), {}),
    "images_base_filename_pattern_idx": (("base_filename",), {"base_filename": "varchar_pattern_ops"}),
}


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _table_has_rows() -> bool:
    return bool(op.get_bind().execute(sa.text("SELECT EXISTS (SELECT 1 FROM images)")).scalar())


def _invalid_indexes() -> list[str]:
    """Our indexes that exist but are INVALID (a concurrent build was interrupted or failed)."""
    rows = op.get_bind().execute(
        sa.text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'images'::regclass AND NOT i.indisvalid AND c.relname IN :names"
        ).bindparams(sa.bindparam("names", expanding=True)),
        {"names": list(INDEXES)},
    )
    return list(rows.scalars())


def _create(name: str, concurrently: bool) -> None:
    columns, ops = INDEXES[name]
    op.create_index(
        name, "images", list(columns), if_not_exists=True, postgresql_ops=ops, postgresql_concurrently=concurrently
    )


def upgrade() -> None:
    if not (_postgres() and _table_has_rows()):
        for name in INDEXES:
            _create(name, concurrently=False)
        return
    with op.get_context().autocommit_block():
        for name in _invalid_indexes():
            op.drop_index(name, table_name="images", if_exists=True, postgresql_concurrently=True)
        for name in INDEXES:
            _create(name, concurrently=True)


def downgrade() -> None:
    if not (_postgres() and _table_has_rows()):
        for name in INDEXES:
            op.drop_index(name, table_name="images", if_exists=True)
        return
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.drop_index(name, table_name="images", if_exists=True, postgresql_concurrently=True)

"""Rank the source of capture_date instead of a yes/no flag.

capture_date comes from the header text's DATE-OBS, else a FITS header's DATE-OBS, else the earliest
upload time (docs/contracts.md §2). A flag could not tell the first two apart, so a header text without
DATE-OBS arriving before a FITS file with one left the row dated by the upload. Rows dated by a
header become rank 1 (a FITS header's): which header dated them is not recorded, and rank 1 lets a
header text's DATE-OBS, the better source, still replace the date.

Revision ID: 0003_capture_date_source
Revises: 0002_dated_by_header
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_capture_date_source"
down_revision = "0002_dated_by_header"
branch_labels = None
depends_on = None


def _columns() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns("images")}


def upgrade() -> None:
    if "capture_date_source" not in _columns():
        op.add_column(
            "images", sa.Column("capture_date_source", sa.SmallInteger, nullable=False, server_default=sa.text("0"))
        )
    if "dated_by_header" in _columns():
        op.execute("UPDATE images SET capture_date_source = 1 WHERE dated_by_header")
        op.drop_column("images", "dated_by_header")


def downgrade() -> None:
    op.add_column("images", sa.Column("dated_by_header", sa.Boolean, nullable=False, server_default=sa.text("false")))
    op.execute("UPDATE images SET dated_by_header = capture_date_source > 0")
    op.drop_column("images", "capture_date_source")

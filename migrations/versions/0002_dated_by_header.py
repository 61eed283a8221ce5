"""Record whether an exposure's capture_date came from its header's DATE-OBS.

The flag upserts keep a date taken from DATE-OBS and otherwise move it to the earliest upload time;
they need to know which one they are looking at. Existing rows count as dated by their header when
it carries DATE-OBS (how the earlier code dated them).

Revision ID: 0002_dated_by_header
Revises: 0001_images
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_dated_by_header"
down_revision = "0001_images"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("images")}
    if "dated_by_header" in columns:
        return
    op.add_column(
        "images", sa.Column("dated_by_header", sa.Boolean, nullable=False, server_default=sa.text("false"))
    )
    op.execute(
        sa.text("UPDATE images SET dated_by_header = true WHERE header LIKE :mark").bindparams(
            mark='%"DATE-OBS": %'
        )
    )


def downgrade() -> None:
    op.drop_column("images", "dated_by_header")

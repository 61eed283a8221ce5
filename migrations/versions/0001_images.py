"""Create the `images` table, or adopt the production table that already exists.

Production already has `images` (created before migrations existed). Adopting it must not lose rows:
create the table only when absent; otherwise add whatever columns are missing, make the file flags
NOT NULL DEFAULT false (NULLs become false), and make sure `base_filename` is unique, because every
upsert relies on `ON CONFLICT (base_filename)`.

Revision ID: 0001_images
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_images"
down_revision = None
branch_labels = None
depends_on = None

FLAGS = ("fits_01_exists", "fits_10_exists", "jpg_medium_exists", "jpg_small_exists")


def _columns() -> list[sa.Column]:
    return [
        sa.Column("image_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("base_filename", sa.String(29), nullable=False),
        sa.Column("data_type", sa.String),
        sa.Column("site", sa.String(6)),
        sa.Column("capture_date", sa.DateTime(timezone=False), nullable=False),
        sa.Column("sort_date", sa.DateTime(timezone=False), nullable=False),
        sa.Column("right_ascension", sa.Float),
        sa.Column("declination", sa.Float),
        sa.Column("altitude", sa.Float),
        sa.Column("azimuth", sa.Float),
        sa.Column("filter_used", sa.String),
        sa.Column("airmass", sa.Float),
        sa.Column("exposure_time", sa.Float),
        sa.Column("username", sa.String),
        sa.Column("user_id", sa.String),
        sa.Column("header", sa.Text),
        *(sa.Column(flag, sa.Boolean, nullable=False, server_default=sa.text("false")) for flag in FLAGS),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if not inspector.has_table("images"):
        op.create_table("images", *_columns(), sa.UniqueConstraint("base_filename", name="images_base_filename_key"))
        return

    existing = {col["name"] for col in inspector.get_columns("images")}
    for column in _columns():
        if column.name in existing:
            continue
        if column.name in ("capture_date", "sort_date"):
            # A NOT NULL date added to an existing table needs a value for old rows.
            op.add_column("images", sa.Column(column.name, column.type, nullable=True))
            op.execute(sa.text(f"UPDATE images SET {column.name} = now() WHERE {column.name} IS NULL"))
            op.alter_column("images", column.name, nullable=False)
        else:
            op.add_column("images", column)
    for flag in FLAGS:
        if flag in existing:
            op.execute(sa.text(f"UPDATE images SET {flag} = false WHERE {flag} IS NULL"))
            op.alter_column("images", flag, nullable=False, server_default=sa.text("false"))
    for date_column in ("capture_date", "sort_date"):
        if date_column in existing:
            op.execute(sa.text(
                f"UPDATE images SET {date_column} = COALESCE({date_column}, now()) WHERE {date_column} IS NULL"
            ))
            op.alter_column("images", date_column, nullable=False)

    unique_sets = [tuple(map(str, u["column_names"])) for u in inspector.get_unique_constraints("images")]
    unique_sets += [tuple(map(str, i["column_names"])) for i in inspector.get_indexes("images") if i.get("unique")]
    if ("base_filename",) not in unique_sets:
        duplicates = bind.execute(
            sa.text("SELECT base_filename FROM images GROUP BY base_filename HAVING count(*) > 1 LIMIT 5")
        ).scalars().all()
        if duplicates:
            raise RuntimeError(
                "cannot adopt table images: base_filename has duplicates (e.g. "
                f"{', '.join(map(str, duplicates))}); merge them, then run the migration again"
            )
        op.create_index("images_base_filename_key", "images", ["base_filename"], unique=True)


def downgrade() -> None:
    # Production data lives in this table: never dropped by a downgrade.
    pass

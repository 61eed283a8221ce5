"""The `images` table's Alembic migrations, and `upgrade(url)` to apply them.

Not shipped to Lambda: migrations run from an operator's machine (`python -m archive migrate`), the
local stack and the tests.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import pool

import db

# The revision before the frontend indexes (0003): the scale benchmark and the tests compare the two.
BEFORE_FRONTEND_INDEXES = "0003_capture_date_source"


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the migrations up to `revision` (creates `images`, or adopts an existing production table)."""
    command.upgrade(_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at (None before the first migration)."""
    engine = db.create_database_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Undo the migrations after `revision` (each drops only what it added)."""
    command.downgrade(_config(url), revision)

"""The `images` table's Alembic migrations, and `upgrade(url)` to apply them.

Not shipped to Lambda: migrations run from an operator's machine (`python -m archive migrate`), the
local stack and the tests.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def upgrade(url: str) -> None:
    """Apply every migration (creates `images`, or adopts an existing production table)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")

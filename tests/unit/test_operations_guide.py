"""docs/operations.md says what the code does: the expiry it describes is the expiry settings give."""

from __future__ import annotations

import re
from pathlib import Path

from archive.settings import load_settings

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def section(number: int) -> str:
    text = GUIDE.read_text()
    start = text.index(f"\n## {number}. ")
    return text[start : text.index("\n## ", start + 1)]


def test_the_guide_names_exactly_the_data_types_that_expire_and_says_tst_only_shortens_them():
    keeping = section(6)
    defaults = load_settings({})
    named = set(re.findall(r"`([A-Za-z]+)`", keeping.split("\n\n")[1])) - {"tst", "data-expiration-tracker"}
    assert named == set(defaults.expiring_data_types) == {"EP", "EF"}
    assert defaults.expiry_seconds("tst", "EX") is None, "other types are kept at tst too"
    assert defaults.expiry_seconds("tst", "EP") == defaults.expiry_seconds("tst", "EF") == 300
    assert "5 minutes" in keeping and "everything at site" not in keeping


def test_the_guide_has_a_recovery_for_a_database_outage():
    recovery = section(7)
    assert "database unavailable" in recovery and "reprocess" in recovery and "start-message-move-task" in recovery

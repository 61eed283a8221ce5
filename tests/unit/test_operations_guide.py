"""The docs say what the code does (the expiry docs/operations.md describes is the expiry settings give),
and every link between them stays inside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from archive.ingest.expirations import lifespan
from archive.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operations.md"
MARKDOWN = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md",
            ROOT / "deploy" / "README.md")
OUTSIDE_NOTES = "DESIGN" + ".md"  # the design notes kept outside the repository (spelled apart: not a reference)


def section(number: int) -> str:
    text = GUIDE.read_text()
    start = text.index(f"\n## {number}. ")
    return text[start : text.index("\n## ", start + 1)]


def test_the_guide_names_exactly_the_data_types_that_expire_and_says_tst_only_shortens_them():
    keeping = section(6)
    defaults = load_settings({})
    named = set(re.findall(r"`([A-Za-z]+)`", keeping.split("\n\n")[1])) - {"tst", "data-expiration-tracker"}
    assert named == set(defaults.expiring_data_types) == {"EP", "EF"}
    assert lifespan("tst", "EX", defaults) is None, "other types are kept at tst too"
    assert lifespan("tst", "EP", defaults) == lifespan("tst", "EF", defaults) == 300
    assert "5 minutes" in keeping and "everything at site" not in keeping


def test_the_guide_has_a_recovery_for_a_database_outage():
    recovery = section(7)
    assert "database unavailable" in recovery and "reprocess" in recovery and "start-message-move-task" in recovery


def test_every_relative_link_in_the_docs_resolves_inside_the_repository():
    broken = []
    for page in MARKDOWN:
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            resolved = (page.parent / target).resolve()
            if not resolved.exists() or ROOT not in resolved.parents:
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_no_file_points_at_the_design_notes_outside_the_repository():
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    pointing = [path for path in listed if (ROOT / path).is_file()
                and OUTSIDE_NOTES.encode() in (ROOT / path).read_bytes()]
    assert pointing == []


def test_the_readme_reads_in_five_minutes():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150

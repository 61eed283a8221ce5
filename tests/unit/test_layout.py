"""The tree keeps its rooms: imports point down (commands -> local stack -> Lambda faces -> core -> table).

The rule and the import reader are img/modules.py's, the script that draws the README's picture of the
modules, so the picture and this test cannot disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "img"))

import modules  # noqa: E402 - img/ is a folder of scripts, not a package


def test_no_module_imports_a_room_above_its_own():
    assert modules.violations() == []


def test_db_module_imports_nothing_of_the_archive():
    assert modules.imports_of(modules.ROOT / "db.py") == set()


def test_the_reader_sees_an_upward_import(tmp_path, monkeypatch):
    core = tmp_path / "archive"
    core.mkdir()
    (core / "ingest.py").write_text("from archive.cli import reprocess\nimport handlers.ingest\nimport db\n")
    monkeypatch.setattr(modules, "ROOT", tmp_path)
    monkeypatch.setattr(modules, "SOURCES", ("archive",))
    assert modules.violations() == [
        "archive/ingest.py imports archive.cli (archive -> archive/cli)",
        "archive/ingest.py imports archive.cli.reprocess (archive -> archive/cli)",
        "archive/ingest.py imports handlers.ingest (archive -> handlers)",
    ]

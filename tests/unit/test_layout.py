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
    (core / "aws.py").write_text("from archive.cli import reprocess\nimport handlers.ingest\nimport db\n")
    monkeypatch.setattr(modules, "ROOT", tmp_path)
    monkeypatch.setattr(modules, "SOURCES", ("archive",))
    assert modules.violations() == [
        "archive/aws.py imports archive.cli (archive -> archive/cli)",
        "archive/aws.py imports archive.cli.reprocess (archive -> archive/cli)",
        "archive/aws.py imports handlers.ingest (archive -> handlers)",
    ]


def test_features_stay_apart_and_formats_import_neither():
    """Ingest never imports render nor the reverse; formats and the platform import no feature."""
    for feature in modules.FEATURES:
        others = set(modules.FEATURES) - {feature}
        assert not others & modules.ALLOWED[feature], feature
    for lower in ("archive/formats", "archive"):
        assert not set(modules.FEATURES) & modules.ALLOWED[lower], lower


def test_the_reader_sees_a_crossing_between_features(tmp_path, monkeypatch):
    for room in ("ingest", "render", "formats"):
        (tmp_path / "archive" / room).mkdir(parents=True)
    (tmp_path / "archive" / "render" / "api.py").write_text("from archive.ingest.thumbnails import make_thumbnail\n")
    (tmp_path / "archive" / "ingest" / "pipeline.py").write_text("from archive.render import api\n")
    (tmp_path / "archive" / "formats" / "jpeg.py").write_text("import archive.ingest.uploads_log\n")
    monkeypatch.setattr(modules, "ROOT", tmp_path)
    monkeypatch.setattr(modules, "SOURCES", ("archive",))
    assert modules.violations() == [
        "archive/formats/jpeg.py imports archive.ingest.uploads_log (archive/formats -> archive/ingest)",
        "archive/ingest/pipeline.py imports archive.render (archive/ingest -> archive/render)",
        "archive/ingest/pipeline.py imports archive.render.api (archive/ingest -> archive/render)",
        "archive/render/api.py imports archive.ingest.thumbnails (archive/render -> archive/ingest)",
        "archive/render/api.py imports archive.ingest.thumbnails.make_thumbnail (archive/render -> archive/ingest)",
    ]

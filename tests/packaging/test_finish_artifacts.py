"""deploy/finish_artifacts.py on small hand-made trees: what it keeps, removes, compiles and strips."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import zipfile
from pathlib import Path

import psycopg2
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy"))
import finish_artifacts as finish  # noqa: E402


def install_fake_dist(root: Path, name: str, files: dict[str, str]) -> None:
    """A distribution as pip leaves it: its files plus a dist-info whose RECORD lists them."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    record = [f"{relative},," for relative in files] + [f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")


def test_dropping_a_distribution_removes_its_files_and_bytecode_but_nothing_else(tmp_path):
    install_fake_dist(tmp_path, "Pillow", {"PIL/__init__.py": "", "PIL/Image.py": "X = 1\n"})
    install_fake_dist(tmp_path, "keepme", {"keepme/__init__.py": "Y = 2\n"})
    finish.compile_dependencies(tmp_path, sourceless=True)

    finish.drop_distributions(tmp_path, ["pillow"])  # names compare like pip's

    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "keepme-1.0.dist-info/RECORD", "keepme/__init__.pyc"]


def test_dropping_an_unknown_distribution_fails_loudly(tmp_path):
    with pytest.raises(SystemExit, match="no such distribution"):
        finish.drop_distributions(tmp_path, ["astropy"])


def test_dependencies_become_bytecode_only_and_still_import(tmp_path, monkeypatch):
    install_fake_dist(tmp_path, "dep", {"dep/__init__.py": "from dep.inner import VALUE\n",
                                        "dep/inner.py": "VALUE = 42\n", "dep/template.py": "<% not python %>\n"})
    compiled, skipped = finish.compile_dependencies(tmp_path, sourceless=True)
    assert (compiled, skipped) == (2, 1)
    assert not (tmp_path / "dep" / "inner.py").exists() and (tmp_path / "dep" / "inner.pyc").exists()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert importlib.import_module("dep").VALUE == 42


def test_own_code_keeps_its_source_and_gets_unchecked_bytecode(tmp_path):
    (tmp_path / "handlers").mkdir()
    source = tmp_path / "handlers" / "ingest.py"
    source.write_text("def handler(event, context):\n    return 1\n")
    (tmp_path / "dep.pyc").write_bytes(b"")  # a dependency compiled earlier: left alone
    assert finish.compile_own_code(tmp_path) == 1
    cached = Path(importlib.util.cache_from_source(str(source)))
    flags = int.from_bytes(cached.read_bytes()[4:8], "little")
    assert source.exists() and flags == 0b01  # hash-based, not checked against the source


def test_objects_auditwheel_patched_or_grafted_are_not_stripped(tmp_path):
    # Real wheels installed in the test environment: psycopg2's extension has an rpath into
    # psycopg2_binary.libs (auditwheel), PyYAML's has none.

    patched = next(Path(psycopg2.__file__).parent.glob("_psycopg*.so"))
    plain = next(Path(yaml.__file__).parent.glob("_yaml*.so"))
    root = Path(psycopg2.__file__).parent.parent
    assert not finish.strippable(root, patched)
    assert finish.strippable(root, plain)
    grafted = tmp_path / "pkg.libs" / "libplain.so"
    grafted.parent.mkdir()
    shutil.copy(plain, grafted)
    assert not finish.strippable(tmp_path, grafted)


def test_the_zip_is_rewritten_sorted_with_one_date_and_its_modes(tmp_path):
    root = tmp_path / "tree"
    (root / "b").mkdir(parents=True)
    (root / "b" / "tool").write_text("#!/bin/sh\n")
    (root / "b" / "tool").chmod(0o755)
    (root / "a.py").write_text("")
    target = tmp_path / "out.zip"
    finish.write_zip(root, target)
    with zipfile.ZipFile(target) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["a.py", "b/tool"]
    assert {i.date_time for i in infos} == {finish.ZIP_DATE}
    assert (infos[1].external_attr >> 16) & 0o777 == 0o755


def test_pruning_removes_the_named_subpackages_and_refuses_unknown_or_outside_paths(tmp_path):
    install_fake_dist(tmp_path, "astro", {"astro/__init__.py": "", "astro/io/fits.py": "",
                                          "astro/coordinates/__init__.py": "", "astro/wcs/core.py": ""})

    assert finish.prune_paths(tmp_path, ["astro/coordinates", "astro/wcs/core.py"]) == 2

    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.py"))
    assert left == ["astro/__init__.py", "astro/io/fits.py"]
    with pytest.raises(SystemExit, match="no such path"):
        finish.prune_paths(tmp_path, ["astro/stats"])
    with pytest.raises(SystemExit, match="not a path inside"):
        finish.prune_paths(tmp_path, ["../elsewhere"])

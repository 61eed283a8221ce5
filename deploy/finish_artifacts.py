"""Finish the Lambda zips that serverless and serverless-python-requirements build.

Why this step exists:

- Lambda's code directory is read-only, so Python cannot cache bytecode there: without `.pyc` files in the
  zip every cold start recompiles astropy, SQLAlchemy and numpy. Serverless writes every zip entry with
  the same fixed date, so timestamp-checked `.pyc` files would look stale; we compile them with
  unchecked hashes (the artifact is immutable, nothing can change the source under them).
- The bytecode must come from the runtime's Python version, so this script refuses to run on another.
- The wheels are for the Lambda platform (arm64); their extension modules carry symbol tables worth about
  25 MB that the host `strip` cannot read, so we strip them with llvm-strip when it exists, except the
  objects auditwheel patched (those stop loading once stripped).
- One requirements install serves every function; a function that never imports a distribution has it
  removed from its own zip (listed in serverless.yml, removed by the files its RECORD names), and
  subpackages it never imports can be pruned by path (the image API uses astropy.io.fits, not astropy's
  coordinates or modelling: that keeps it under its size budget).
- Third-party packages may ship as bytecode only (`--sourceless`) to stay within the size budget; our
  own code always keeps its source beside its bytecode, for readable tracebacks.

Two steps, both run by deploy/package-plugin.js:

    finish_artifacts.py requirements DIR [--sourceless]       the installed dependencies, before they are
                                                              copied into the zips (so copying is cheaper)
    finish_artifacts.py zip ZIP [--drop DIST]... [--prune PATH]... [--max-unzipped-mib N]
                                                              each function's zip once they are in it
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import py_compile
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

RUNTIME = (3, 12)
LAMBDA_LIMIT_MIB = 250
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}


def canonical(name: str) -> str:
    """Distribution names compare case- and separator-insensitively (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def extract(zip_path: Path, root: Path) -> None:
    """Unpack, keeping the file modes (zipfile drops them)."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            target = root / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, mode or 0o644)


def dist_infos(root: Path) -> dict[str, Path]:
    found = {}
    for info in root.glob("*.dist-info"):
        name = info.name[: -len(".dist-info")].rsplit("-", 1)[0]
        found[canonical(name)] = info
    return found


def drop_distributions(root: Path, names: list[str]) -> None:
    """Remove every file a distribution installed, as listed in its RECORD."""
    infos = dist_infos(root)
    for name in names:
        info = infos.get(canonical(name))
        if info is None:
            raise SystemExit(f"--drop {name}: no such distribution in the package (is serverless.yml stale?)")
        with open(info / "RECORD", newline="") as record:
            for row in csv.reader(record):
                path = (root / row[0]).resolve()
                if not path.is_relative_to(root):
                    continue
                if path.suffix == ".py":  # its bytecode, written after RECORD was
                    for compiled in (path.with_suffix(".pyc"), Path(importlib.util.cache_from_source(str(path)))):
                        compiled.unlink(missing_ok=True)
                if path.is_file():
                    path.unlink()
        shutil.rmtree(info, ignore_errors=True)
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def prune_paths(root: Path, paths: list[str]) -> int:
    """Remove subpackages (directories) or files a function never imports, e.g. astropy's coordinates
    when only astropy.io.fits is used; returns how many were removed. A path that does not exist fails
    loudly: a stale list in serverless.yml must not pass unnoticed."""
    for relative in paths:
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or target == root:
            raise SystemExit(f"--prune {relative}: not a path inside the package")
        if target.is_dir():
            shutil.rmtree(target)
        elif target.is_file():
            target.unlink()
        else:
            raise SystemExit(f"--prune {relative}: no such path in the package (is serverless.yml stale?)")
    return len(paths)


def elf_machine(path: Path) -> str | None:
    with open(path, "rb") as handle:
        head = handle.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return ELF_MACHINES.get(int.from_bytes(head[18:20], "little" if head[5] == 1 else "big"), "other")


def has_search_path(path: Path) -> bool:
    """True when a 64-bit ELF object has DT_RPATH/DT_RUNPATH, the mark of auditwheel's patchelf."""
    data = path.read_bytes()
    if data[4] != 2:  # not ELFCLASS64: leave it alone
        return True
    order = "little" if data[5] == 1 else "big"

    def number(offset: int, size: int) -> int:
        return int.from_bytes(data[offset:offset + size], order)

    phoff, phentsize, phnum = number(0x20, 8), number(0x36, 2), number(0x38, 2)
    for index in range(phnum):
        header = phoff + index * phentsize
        if number(header, 4) != 2:  # PT_DYNAMIC
            continue
        start, size = number(header + 8, 8), number(header + 32, 8)
        tags = (number(entry, 8) for entry in range(start, start + size, 16))
        return any(tag in (15, 29) for tag in tags)  # DT_RPATH, DT_RUNPATH
    return False


def strippable(root: Path, path: Path) -> bool:
    """Objects auditwheel rewrote with patchelf (grafted `*.libs/` libraries, extensions with an rpath to
    them) break when stripped ("ELF load command address/offset not page-aligned"): leave those alone."""
    return not any(part.endswith(".libs") for part in path.relative_to(root).parts) and not has_search_path(path)


def find_strip(machine: str) -> str | None:
    """A strip that can read `machine` objects: llvm-strip reads any target; binutils only its own."""
    candidates = ["llvm-strip", *(f"llvm-strip-{v}" for v in range(20, 10, -1))]
    candidates += ["aarch64-linux-gnu-strip"] if machine == "aarch64" else ["x86_64-linux-gnu-strip", "strip"]
    return next((shutil.which(c) for c in candidates if shutil.which(c)), None)


def strip_shared_objects(root: Path) -> str:
    objects: dict[str, list[Path]] = {}
    skipped = 0
    for path in root.rglob("*.so*"):
        if path.is_file() and not path.is_symlink():
            machine = elf_machine(path)
            if machine and strippable(root, path):
                objects.setdefault(machine, []).append(path)
            elif machine:
                skipped += 1
    notes = [f"{skipped} patched by auditwheel left as they are"] if skipped else []
    for machine, paths in objects.items():
        tool = find_strip(machine)
        if tool is None:
            notes.append(f"{len(paths)} {machine} objects left unstripped (no llvm-strip here)")
            continue
        for path in paths:
            subprocess.run([tool, "--strip-unneeded", str(path)], check=True)
        notes.append(f"{len(paths)} {machine} objects stripped")
    return "; ".join(notes) or "no shared objects"


def compile_module(source: Path, root: Path, sourceless: bool) -> None:
    """Unchecked-hash bytecode: `x.pyc` beside (and instead of) the source, or in `__pycache__`."""
    relative = source.relative_to(root).as_posix()
    if sourceless:
        target, dfile = source.with_suffix(".pyc"), f"/var/task/{relative}"
    else:
        target, dfile = Path(importlib.util.cache_from_source(str(source))), relative
    py_compile.compile(
        str(source), cfile=str(target), dfile=dfile, doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if sourceless:
        source.unlink()


def compile_dependencies(root: Path, sourceless: bool) -> tuple[int, int]:
    """Bytecode for every installed module; returns (compiled, left as source)."""
    for stale in [p for p in root.rglob("__pycache__") if p.is_dir()]:
        shutil.rmtree(stale)  # another Python's bytecode, or an earlier run's
    compiled = skipped = 0
    for source in sorted(root.rglob("*.py")):
        try:
            compile_module(source, root, sourceless)
            compiled += 1
        except py_compile.PyCompileError:
            skipped += 1  # e.g. a template that is not Python: it was never importable
    return compiled, skipped


def compile_own_code(root: Path) -> int:
    """Bytecode beside our modules (the dependencies were compiled before they came in); source kept."""
    compiled = 0
    for source in sorted(root.rglob("*.py")):
        if source.with_suffix(".pyc").exists() or Path(importlib.util.cache_from_source(str(source))).exists():
            continue
        compile_module(source, root, sourceless=False)
        compiled += 1
    return compiled


def tree_size(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def write_zip(root: Path, zip_path: Path) -> None:
    """Same content, same bytes: sorted entries, one fixed date, modes kept."""
    tmp = zip_path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), ZIP_DATE)
            info.external_attr = (stat.S_IFREG | (path.stat().st_mode & 0o777)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as handle:
                archive.writestr(info, handle.read())
    tmp.replace(zip_path)


def check_runtime() -> None:
    if sys.version_info[:2] != RUNTIME:
        raise SystemExit(
            f"finish_artifacts.py must run on Python {RUNTIME[0]}.{RUNTIME[1]} (the Lambda runtime) to write "
            f"bytecode Lambda can use; this is {sys.version.split()[0]}. Set ARCHIVE_PYTHON."
        )


def finish_requirements(directory: Path, sourceless: bool) -> int:
    started = time.monotonic()
    root = directory.resolve()
    stripped = strip_shared_objects(root)
    compiled, skipped = compile_dependencies(root, sourceless)
    size, count = tree_size(root)
    print(
        f"dependencies: {size / 2**20:.1f} MiB, {count} files; {compiled} modules compiled"
        f"{' (bytecode only)' if sourceless else ''}, {skipped} left as source; {stripped}"
        f" ({time.monotonic() - started:.1f} s)"
    )
    return 0


def finish_zip(zip_path: Path, drop: list[str], max_unzipped_mib: float, prune: list[str] | None = None) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="finish-artifact-") as tmp:
        root = Path(tmp).resolve()
        extract(zip_path, root)
        drop_distributions(root, drop)
        pruned = prune_paths(root, prune or [])
        compiled = compile_own_code(root)
        size, count = tree_size(root)
        write_zip(root, zip_path)
    mib = size / 2**20
    print(
        f"{zip_path.name}: {mib:.1f} MiB unzipped, {count} files, {zip_path.stat().st_size / 2**20:.1f} MiB zipped;"
        f" {compiled} own modules compiled; {len(drop)} distributions dropped, {pruned} paths pruned"
        f" ({time.monotonic() - started:.1f} s)"
    )
    limit = min(max_unzipped_mib, LAMBDA_LIMIT_MIB)
    if mib > limit:
        print(f"{zip_path.name}: {mib:.1f} MiB unzipped is over its budget of {limit:g} MiB (without llvm-strip the"
              " extension modules stay unstripped, ~25 MiB more: deploy/README.md)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    requirements = steps.add_parser("requirements", help="finish the installed dependencies in place")
    requirements.add_argument("directory", type=Path)
    requirements.add_argument("--sourceless", action="store_true", help="keep bytecode only")
    archive = steps.add_parser("zip", help="finish one function's zip in place")
    archive.add_argument("zip", type=Path)
    archive.add_argument("--drop", action="append", default=[], metavar="DIST")
    archive.add_argument("--max-unzipped-mib", type=float, default=LAMBDA_LIMIT_MIB)
    archive.add_argument("--prune", action="append", default=[], metavar="PATH",
                         help="a directory or file inside the zip to remove (a subpackage never imported)")
    args = parser.parse_args(argv)
    check_runtime()
    if args.step == "requirements":
        return finish_requirements(args.directory, args.sourceless)
    return finish_zip(args.zip, args.drop, args.max_unzipped_mib, args.prune)


if __name__ == "__main__":
    sys.exit(main())

"""Import each handler from its unpacked zip, as Lambda would, and time the cold import.

The deployed zips are arm64; this machine is x86_64, so `make package-smoke` builds the same service for
x86_64 (same requirements, slimming, pruning and bytecode) and this script imports from those zips. It
proves what the packaging could break and unit tests cannot see: a slimmed-away module, a distribution
pruned from a function that needs it, bytecode the runtime's Python cannot use.

Each function runs in a fresh `python3.12 -S` (no site-packages: only the zip, the standard library, and
boto3 standing in for the runtime's copy), with the function's environment from the template. Besides the
handler module, the modules our code imports lazily (inside functions) are imported too, and for the
image API a tile-compressed FITS is rendered with a label (EXERCISES), so a missing compiled part shows.

Usage: smoke_import.py PACKAGE_DIR WORK_DIR [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Imported inside functions by our code, so a handler import alone would not reach them.
LAZY_IMPORTS = {
    "handlers.ingest": [
        "db", "sqlalchemy.dialects.postgresql", "psycopg2", "PIL.Image", "PIL.JpegImagePlugin",
        "archive.ingest.thumbnails", "aws_lambda_powertools.metrics",
    ],
    "handlers.expire": ["db", "sqlalchemy.dialects.postgresql", "psycopg2"],
    "handlers.render": [
        "db", "sqlalchemy.dialects.postgresql", "psycopg2", "numpy", "astropy.io.fits", "PIL.Image",
        "PIL.ImageDraw", "PIL.ImageFont", "PIL.JpegImagePlugin",
    ],
}

# Run after the imports, from the zip: work the lazily loaded libraries do in the function (a
# tile-compressed FITS rendered with a label needs astropy's decompressor, numpy and Pillow's FreeType).
EXERCISES = {
    "handlers.render": (
        "import io\n"
        "from archive import lazy\n"
        "from archive.formats.fits_data import reduce_fits\n"
        "from archive.render.picture import finish, fits_picture\n"
        "from archive.render.params import parse_params\n"
        "buf = io.BytesIO()\n"
        "pixels = lazy.np.arange(4096, dtype=lazy.np.int16).reshape(64, 64)\n"
        "lazy.fits.HDUList([lazy.fits.PrimaryHDU(), lazy.fits.CompImageHDU(pixels)]).writeto(buf)\n"
        "params = parse_params({'width': '32', 'label': 'smoke'})\n"
        "frame = reduce_fits(io.BytesIO(buf.getvalue()), 'fits.fz', lambda w, h: (32, 32), max_pixels=10**6,"
        " header_limit=10**6)\n"
        "assert finish(fits_picture([frame], params), params)[:2] == b'\\xff\\xd8'\n"
    ),
}

PROBE = """
import importlib, json, sys, time
sys.path[:0] = [{artifact!r}, {runtime!r}]
started = time.perf_counter()
importlib.import_module({module!r})
handler_s = time.perf_counter() - started
for name in {lazy!r}:
    importlib.import_module(name)
exec({exercise!r})
total_s = time.perf_counter() - started
outside = sorted(
    name for name, mod in list(sys.modules.items())
    if (getattr(mod, "__file__", None) or "").startswith(("/usr/lib/python3", "/usr/local/lib/python3"))
    or "site-packages" in (getattr(mod, "__file__", None) or "")
)
print(json.dumps({{"handler_s": handler_s, "total_s": total_s, "modules": len(sys.modules), "outside": outside}}))
"""


def runtime_boto3(work: Path) -> Path:
    """boto3 at the pinned version, standing in for the copy the Lambda runtime provides."""
    target = work / "runtime"
    if not (target / "boto3").is_dir():
        pin = next(line.strip() for line in (ROOT / "constraints.txt").read_text().splitlines()
                   if re.match(r"boto3==", line))
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(target),
                        pin, "-c", str(ROOT / "constraints.txt")], check=True)
    return target


def literal(value: object) -> str | None:
    """The value Lambda would see when CloudFormation needs nothing deployed to know it (a string, or
    `Fn::Join` of strings), else None: a reference to a resource has no value offline."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and list(value) == ["Fn::Join"]:
        separator, parts = value["Fn::Join"]
        if isinstance(separator, str) and isinstance(parts, list) and all(isinstance(p, str) for p in parts):
            return separator.join(parts)
    return None


def function_env(properties: dict) -> dict[str, str]:
    env = {k: literal(v) or f"placeholder-{k.lower()}"
           for k, v in properties.get("Environment", {}).get("Variables", {}).items()}
    return {**env, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "smoke",
            "AWS_SECRET_ACCESS_KEY": "smoke", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package_dir", type=Path)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if sys.version_info[:2] != (3, 12):
        raise SystemExit("run this with the runtime's Python, 3.12")
    template = json.loads((args.package_dir / "cloudformation-template-update-stack.json").read_text())
    runtime = runtime_boto3(args.work_dir)
    failed = False
    for logical_id, resource in sorted(template["Resources"].items()):
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        props = resource["Properties"]
        module = props["Handler"].rsplit(".", 1)[0].replace("/", ".")
        artifact = args.work_dir / logical_id
        with zipfile.ZipFile(args.package_dir / Path(props["Code"]["S3Key"]).name) as archive:
            archive.extractall(artifact)
        probe = PROBE.format(artifact=str(artifact), runtime=str(runtime), module=module,
                             lazy=LAZY_IMPORTS.get(module, []), exercise=EXERCISES.get(module, ""))
        results = []
        for _ in range(args.runs):
            run = subprocess.run([sys.executable, "-S", "-c", probe], env=function_env(props),
                                 capture_output=True, text=True, cwd=args.work_dir)
            if run.returncode != 0:
                print(f"{module}: import failed from its zip\n{run.stderr}", file=sys.stderr)
                failed = True
                break
            results.append(json.loads(run.stdout))
        if not results:
            continue
        outside = results[0]["outside"]
        if outside:
            print(f"{module}: modules loaded from outside the zip: {outside}", file=sys.stderr)
            failed = True
        handler_ms = [r["handler_s"] * 1000 for r in results]
        total_ms = [r["total_s"] * 1000 for r in results]
        print(
            f"{module}: imports from its zip; handler import {handler_ms[0]:.0f} ms first run, "
            f"{statistics.median(handler_ms):.0f} ms median of {len(results)}; with lazy imports "
            f"{total_ms[0]:.0f} ms first, {statistics.median(total_ms):.0f} ms median; "
            f"{results[0]['modules']} modules"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

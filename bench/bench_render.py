"""The image API's renders, cold: speed, CPU and peak memory against a fits2image-style renderer.

Every render runs in a fresh Python process that renders once (what a Lambda's first request, or a
one-off thumbnail service call, pays): the time to import what the renderer needs is measured and
shown apart from the render itself (which still includes anything imported lazily on the way).
Renderers take turns, ROUNDS processes each (a busy spell of the machine hits both alike); the best
time, the median CPU seconds and the highest peak RSS (VmHWM) of each count.

1. A 4096×4096 16-bit frame (sky, noise, 3000 stars; BZERO 32768) as `.fits`, `.fits.bz2` and
   `.fits.fz` (RICE), rendered to 200×200 and to 4000×4000: ours (archive.formats.fits_data +
   archive.render.picture) against the fits2image-style renderer of bench/stretch_reference.py
   (astropy reads the whole frame, float64, ZScaleInterval, linear, Pillow thumbnail, JPEG).
   Targets: ≥ 3× faster, ≤ 0.5× peak memory.
2. `.fits.bz2` CPU seconds per render: ours with its default decoding threads, with two threads
   forced, and with one (sequential). Target: ≤ 1.1× sequential.
3. A 3000×2000 medium JPG to 200×133: ours (libjpeg's reduced decode) against Pillow's
   `Image.thumbnail()` (draft mode, then reduce and Lanczos: what fits2image uses), also cold.
4. Cache hit: `render_request` for a picture already in the (moto, in-process) bucket.

Verdicts are printed, never raised: timings depend on the machine (and on what else runs on it).
`python -m bench render` runs it; `python -m bench.bench_render worker NAME EXT PATH SIZE` is one
measurement (the fresh process).
"""

from __future__ import annotations

import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZE = 4096
BOXES = (200, 4000)
QUALITY = 80
ROUNDS = 3
SPEED_TARGET = 3.0
MEMORY_TARGET = 0.5
CPU_TARGET = 1.1
ROOT = Path(__file__).resolve().parent.parent


def star_frame(size: int = SIZE, stars: int = 3000, seed: int = 1):
    import numpy as np

    rng = np.random.default_rng(seed)
    frame = rng.normal(1000, 25, (size, size)).astype(np.float32)
    yy, xx = np.mgrid[-6:7, -6:7]
    for y, x, flux in zip(rng.uniform(6, size - 7, stars), rng.uniform(6, size - 7, stars),
                          rng.pareto(1.5, stars) * 3000 + 500, strict=True):
        iy, ix = int(y), int(x)
        frame[iy - 6:iy + 7, ix - 6:ix + 7] += flux * np.exp(-((yy - (y - iy)) ** 2 + (xx - (x - ix)) ** 2) / 4.5)
    return np.clip(frame, 0, 65535).astype(np.uint16)


def write_files(directory: Path) -> dict[str, Path]:
    import bz2

    from astropy.io import fits

    from bench.bench_thumbnails import sky_jpeg

    frame = star_frame()
    plain = io.BytesIO()
    fits.PrimaryHDU(frame).writeto(plain)
    paths = {ext: directory / f"frame.{ext}" for ext in ("fits", "fits.bz2", "fits.fz")}
    paths["fits"].write_bytes(plain.getvalue())
    paths["fits.bz2"].write_bytes(bz2.compress(plain.getvalue(), 9))
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(frame, compression_type="RICE_1")]).writeto(paths["fits.fz"])
    paths["jpg"] = directory / "medium.jpg"
    paths["jpg"].write_bytes(sky_jpeg(3000, 2000, "L"))
    return paths


# --- the renderers, each run in a fresh process: (imports, render) --------------------------------------


def _ours_imports(ext: str) -> None:
    import archive.formats.fits_data
    import archive.formats.jpeg
    import archive.render.picture  # noqa: F401 - imported to be timed
    from archive import lazy

    lazy.np.zeros(1), lazy.Image.new("L", (1, 1))
    if ext == "fits.fz":
        lazy.fits.Header()


def _ours(path: Path, ext: str, box: int, bz2_workers: int | None = None) -> bytes:
    from archive.formats.fits_data import reduce_fits
    from archive.formats.jpeg import fit_size
    from archive.render.params import RenderParams
    from archive.render.picture import finish, fits_picture, jpg_picture

    params = RenderParams(width=box, height=box, quality=QUALITY)
    if ext == "jpg":
        return finish(jpg_picture(path.read_bytes(), params, 10**9), params)
    with open(path, "rb") as body:  # what an S3 GET's body is: a stream
        frame = reduce_fits(body, ext, lambda w, h: fit_size(w, h, box, box), max_pixels=10**9,
                            header_limit=2880 * 400, bz2_workers=bz2_workers)
    return finish(fits_picture([frame], params), params)


def _reference_imports(ext: str) -> None:
    import numpy  # noqa: F401 - imported to be timed
    from PIL import Image  # noqa: F401
    if ext != "jpg":
        import astropy.io.fits
        import astropy.visualization  # noqa: F401


def _reference(path: Path, ext: str, box: int) -> bytes:
    from PIL import Image

    from bench.stretch_reference import fits2image_picture

    if ext == "jpg":  # fits2image's way with a JPG: open, thumbnail (draft + reduce + Lanczos), save
        picture = Image.open(path)
        picture.thumbnail((box, box), Image.Resampling.LANCZOS)
    else:
        picture = fits2image_picture(str(path), (box, box))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


RENDERERS = {
    "ours": (_ours_imports, _ours),
    "ours-2-threads": (_ours_imports, lambda path, ext, box: _ours(path, ext, box, bz2_workers=2)),
    "ours-sequential": (_ours_imports, lambda path, ext, box: _ours(path, ext, box, bz2_workers=1)),
    "fits2image": (_reference_imports, _reference),
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """This process's own high-water mark (VmHWM). Not getrusage's ru_maxrss: across exec that keeps the
    parent's peak, and the parent holds the 4k test frames."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(name: str, ext: str, path: str, box: int) -> None:
    """In a fresh process: import, render once, report both times, CPU and peak RSS as JSON."""
    imports, render = RENDERERS[name]
    started = time.perf_counter()
    imports(ext)
    imported = time.perf_counter()
    cpu = cpu_seconds()
    picture = render(Path(path), ext, box)
    done = time.perf_counter()
    workers = None
    if name == "ours" and ext == "fits.bz2":
        from archive.formats.bz2_blocks import default_workers
        workers = default_workers()
    print(json.dumps({"import": imported - started, "render": done - imported, "cpu": cpu_seconds() - cpu,
                      "peak_mib": peak_rss_mib(), "bytes": len(picture), "workers": workers}))


def measure(name: str, ext: str, path: Path, box: int) -> dict[str, float]:
    run = subprocess.run(
        [sys.executable, "-m", "bench.bench_render", "worker", name, ext, str(path), str(box)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def rounds(names: tuple[str, ...], ext: str, path: Path, box: int) -> dict[str, dict[str, float]]:
    """Each renderer in ROUNDS fresh processes, taking turns: best render and import time, median CPU,
    highest peak."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(ROUNDS):
        for name in names:
            runs[name].append(measure(name, ext, path, box))
    return {name: {"render": min(r["render"] for r in results), "import": min(r["import"] for r in results),
                   "cpu": statistics.median(r["cpu"] for r in results),
                   "peak_mib": max(r["peak_mib"] for r in results),
                   "workers": results[-1].get("workers")}
            for name, results in runs.items()}


def _verdict(value: float, target: float, at_least: bool) -> str:
    met = value >= target if at_least else value <= target
    return f"{'met' if met else 'MISSED'} {'≥' if at_least else '≤'} {target:g}×"


def bench_fits(paths: dict[str, Path]) -> None:
    print(f"{SIZE}×{SIZE} 16-bit frame, cold renders in fresh processes (best of {ROUNDS}; import apart; "
          f"{len(os.sched_getaffinity(0))} CPUs, load {os.getloadavg()[0]:.1f}):")
    for box in BOXES:
        for ext in ("fits", "fits.bz2", "fits.fz"):
            names = ("fits2image", "ours", "ours-2-threads", "ours-sequential") if ext == "fits.bz2" and box == 200 \
                else ("fits2image", "ours")
            results = rounds(names, ext, paths[ext], box)
            base, mine = results["fits2image"], results["ours"]
            speed = base["render"] / mine["render"]
            cold = (base["render"] + base["import"]) / (mine["render"] + mine["import"])
            memory = mine["peak_mib"] / base["peak_mib"]
            print(f"  {box:4d} px .{ext:<8} ours {mine['render'] * 1000:6.0f} ms"
                  f" (+{mine['import'] * 1000:4.0f} import), {mine['peak_mib']:4.0f} MiB"
                  f" | fits2image-style {base['render'] * 1000:6.0f} ms"
                  f" (+{base['import'] * 1000:4.0f} import), {base['peak_mib']:4.0f} MiB | render {speed:.1f}×"
                  f" ({_verdict(speed, SPEED_TARGET, True)}), with imports {cold:.1f}×, memory {memory:.2f}×"
                  f" ({_verdict(memory, MEMORY_TARGET, False)})", flush=True)
            if "ours-sequential" in results:
                seq = results["ours-sequential"]["cpu"]
                print(f"       .fits.bz2 CPU seconds per render: default ({mine['workers']} thread(s) chosen here)"
                      f" {mine['cpu']:.2f} s = {mine['cpu'] / seq:.2f}× sequential"
                      f" ({_verdict(mine['cpu'] / seq, CPU_TARGET, False)}); two threads forced"
                      f" {results['ours-2-threads']['cpu']:.2f} s = {results['ours-2-threads']['cpu'] / seq:.2f}×,"
                      f" {results['ours-2-threads']['render'] * 1000:.0f} ms; sequential {seq:.2f} s,"
                      f" {results['ours-sequential']['render'] * 1000:.0f} ms", flush=True)


def bench_jpg(paths: dict[str, Path]) -> None:
    results = rounds(("fits2image", "ours"), "jpg", paths["jpg"], 200)
    base, mine = results["fits2image"], results["ours"]
    print(f"3000×2000 medium JPG -> 200×133, cold: ours {mine['render'] * 1000:.1f} ms"
          f" (+{mine['import'] * 1000:.0f} import), Pillow thumbnail() {base['render'] * 1000:.1f} ms"
          f" (+{base['import'] * 1000:.0f} import): {base['render'] / mine['render']:.1f}× its speed", flush=True)


def bench_cache_hit(paths: dict[str, Path]) -> None:
    from moto import mock_aws

    from archive import aws
    from archive.local.provision import provision_bucket
    from archive.render.api import render_request
    from archive.settings import get_settings

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    get_settings.cache_clear()
    aws.clear_clients()
    base = "bch-kb001ms-20260101-00000001"
    with mock_aws():
        provision_bucket()
        aws.client("s3").put_object(Bucket=get_settings().bucket, Key=f"data/{base}-EX00.fits.fz",
                                    Body=paths["fits.fz"].read_bytes())
        started = time.perf_counter()
        first = render_request(base, {"source": "large"})
        miss = time.perf_counter() - started
        hits = []
        for _ in range(30):
            started = time.perf_counter()
            again = render_request(base, {"source": "large"})
            hits.append(time.perf_counter() - started)
        assert not first.cached and again.cached
    hits.sort()
    print(f"cache hit (moto in-process S3: list + HEAD + presign): p50 {statistics.median(hits) * 1000:.1f} ms, "
          f"p95 {hits[int(len(hits) * 0.95) - 1] * 1000:.1f} ms; the first request rendered it in {miss * 1000:.0f} ms"
          f" ({miss / statistics.median(hits):.0f}× longer)")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        started = time.perf_counter()
        paths = write_files(Path(tmp))
        print(f"(test files written in {time.perf_counter() - started:.0f} s)")
        bench_fits(paths)
        bench_jpg(paths)
        bench_cache_hit(paths)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()

"""The image API's renders: speed and peak memory against a fits2image-style baseline, cache hits, JPGs.

1. A 4096×4096 16-bit frame (sky, noise, 3000 stars) as `.fits.fz` (RICE) and `.fits.bz2`, rendered to
   200×200: ours (archive.formats.fits_data + archive.render.picture: banded float32 reduction, zscale) against a
   baseline written the way LCO's fits2image works (whole frame read with astropy, converted to float64,
   median black point and zscale white point from ~2000 strided samples, gamma, Pillow resize). Each runs
   in fresh processes, so its peak RSS (what a Lambda's memory must hold) is its own; the renderers take
   turns, three processes each, and the best time counts (the least disturbed by whatever else the
   machine runs; the same rule on both sides). Targets: ≥ 3× faster, ≤ 0.5× peak memory.
   `.fits.bz2` is also timed with one decoding thread, to show what the block-parallel bzip2 adds.
2. Cache hit: `render_request` for a picture already in the (moto, in-process) bucket, against the first
   request that rendered it.
3. A 3000×2000 medium JPG to 200×200: ours (libjpeg's reduced decode) against naive Pillow (full
   decode, Lanczos to fit, encode).

Verdicts are printed, never raised: timings depend on the machine (and on what else runs on it).
"""

from __future__ import annotations

import bz2
import io
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE = 4096
BOX = (200, 200)
QUALITY = 80
REPEATS = 2
ROUNDS = 3
SPEED_TARGET = 3.0
MEMORY_TARGET = 0.5
ROOT = Path(__file__).resolve().parent.parent


def star_frame(size: int = SIZE, stars: int = 3000, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = rng.normal(1000, 25, (size, size)).astype(np.float32)
    yy, xx = np.mgrid[-6:7, -6:7]
    for y, x, flux in zip(rng.uniform(6, size - 7, stars), rng.uniform(6, size - 7, stars),
                          rng.pareto(1.5, stars) * 3000 + 500, strict=True):
        iy, ix = int(y), int(x)
        frame[iy - 6:iy + 7, ix - 6:ix + 7] += flux * np.exp(-((yy - (y - iy)) ** 2 + (xx - (x - ix)) ** 2) / 4.5)
    return np.clip(frame, 0, 65535).astype(np.uint16)


def write_files(directory: Path) -> dict[str, Path]:
    from astropy.io import fits

    frame = star_frame()
    plain = io.BytesIO()
    fits.PrimaryHDU(frame).writeto(plain)
    paths = {"fits.bz2": directory / "frame.fits.bz2", "fits.fz": directory / "frame.fits.fz"}
    paths["fits.bz2"].write_bytes(bz2.compress(plain.getvalue(), 9))
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(frame, compression_type="RICE_1")]).writeto(paths["fits.fz"])
    return paths


# --- the two renderers, each run in its own process --------------------------------------------------------


def ours(path: Path, ext: str, bz2_workers: int | None = None) -> bytes:
    from archive.formats.fits_data import reduce_fits
    from archive.formats.jpeg import fit_size
    from archive.render.params import RenderParams
    from archive.render.picture import finish, fits_picture

    params = RenderParams(width=BOX[0], height=BOX[1], quality=QUALITY)
    with open(path, "rb") as body:  # what an S3 GET's body is: a stream
        frame = reduce_fits(body, ext, lambda w, h: fit_size(w, h, *BOX), max_pixels=10**9, header_limit=2880 * 400,
                            bz2_workers=bz2_workers)
    return finish(fits_picture([frame], params), params)


def fits2image_style(path: Path, ext: str) -> bytes:
    """The reference service's way: whole frame, float64, median + zscale, gamma 2.5, flip, Pillow resize."""
    from astropy.io import fits
    from PIL import Image

    with fits.open(path) as hdul:
        data = next(h.data for h in hdul if h.data is not None).astype(np.float64)
    flat = data.ravel()
    stride = max(1, flat.size // 2000)
    samples = np.sort(flat[stride::stride])
    median = float(np.median(samples))
    x = np.arange(samples.size, dtype=np.float64)
    slope, intercept = np.polyfit(x, samples, 1)
    zmax = min(float(samples[-1]), intercept + slope / 0.1 * samples.size / 2)
    scale = 255.0 / max(zmax - median, 1e-6)
    scaled = data.astype(np.float64)
    np.clip(scaled, median, zmax, out=scaled)
    scaled -= median
    scaled *= scale
    scaled.round(out=scaled)
    gamma = np.array([int(256 * math.pow(i / 256, 1 / 2.5)) for i in range(256)], dtype=np.float64)
    np.take(gamma, scaled.astype(np.int64), out=scaled)
    picture = Image.fromarray(scaled.astype(np.uint8)).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    picture.thumbnail(BOX, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


def ours_one_thread(path: Path, ext: str) -> bytes:
    return ours(path, ext, bz2_workers=1)


RENDERERS = {"ours": ours, "ours-one-thread": ours_one_thread, "fits2image": fits2image_style}


def worker(name: str, ext: str, path: str, repeats: int) -> None:
    """In a fresh process: warm up once, time `repeats` renders, report times and peak RSS as JSON."""
    render = RENDERERS[name]
    render(Path(path), ext)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        render(Path(path), ext)
        times.append(time.perf_counter() - started)
    print(json.dumps({"seconds": min(times), "peak_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's own high-water mark (VmHWM). Not getrusage's ru_maxrss: across exec that keeps the
    parent's peak, and the parent holds the 4k test frames."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, ext: str, path: Path) -> dict[str, float]:
    run = subprocess.run(
        [sys.executable, "-m", "bench.bench_render", name, ext, str(path), str(REPEATS)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def best_of_rounds(names: tuple[str, ...], ext: str, path: Path) -> dict[str, dict[str, float]]:
    """Each renderer in ROUNDS fresh processes, taking turns (so a busy spell of the machine hits both
    alike); the best time and the highest peak of each."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(ROUNDS):
        for name in names:
            runs[name].append(measure(name, ext, path))
    return {name: {"seconds": min(r["seconds"] for r in results), "peak_mib": max(r["peak_mib"] for r in results)}
            for name, results in runs.items()}


def bench_fits(paths: dict[str, Path]) -> None:
    print(f"{SIZE}×{SIZE} 16-bit frame -> {BOX[0]}×{BOX[1]} JPEG (best of {ROUNDS}×{REPEATS}, fresh processes"
          " taking turns):")
    for ext in ("fits.fz", "fits.bz2"):
        size_mb = paths[ext].stat().st_size / 1e6
        names = ("fits2image", "ours", "ours-one-thread") if ext == "fits.bz2" else ("fits2image", "ours")
        results = best_of_rounds(names, ext, paths[ext])
        base, mine = results["fits2image"], results["ours"]
        speed = base["seconds"] / mine["seconds"]
        memory = mine["peak_mib"] / base["peak_mib"]
        print(f"  .{ext:<9} ({size_mb:.0f} MB)  ours {mine['seconds'] * 1000:6.0f} ms, peak {mine['peak_mib']:4.0f} MiB"
              f" | fits2image-style {base['seconds'] * 1000:6.0f} ms, peak {base['peak_mib']:4.0f} MiB"
              f" | {speed:.1f}× faster ({'met' if speed >= SPEED_TARGET else 'MISSED'} ≥ {SPEED_TARGET:g}×),"
              f" {memory:.2f}× memory ({'met' if memory <= MEMORY_TARGET else 'MISSED'} ≤ {MEMORY_TARGET:g}×)")
        if "ours-one-thread" in results:
            one = results["ours-one-thread"]
            print(f"  .fits.bz2 with one bzip2 thread: {one['seconds'] * 1000:.0f} ms "
                  f"({base['seconds'] / one['seconds']:.1f}× the baseline's speed; {os.cpu_count()} CPUs here)")


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


def bench_jpg() -> None:
    from PIL import Image

    from archive.render.params import RenderParams
    from archive.render.picture import finish, jpg_picture
    from bench.bench_thumbnails import sky_jpeg

    data = sky_jpeg(3000, 2000, "L")
    params = RenderParams(width=BOX[0], height=BOX[1], quality=QUALITY)

    def naive() -> bytes:
        picture = Image.open(io.BytesIO(data))
        picture.load()
        picture = picture.resize((200, 133), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=QUALITY)
        return out.getvalue()

    def mine() -> bytes:
        return finish(jpg_picture(data, params, 10**9), params)

    timings = {}
    for name, render in (("naive", naive), ("ours", mine)):
        render()
        runs = []
        for _ in range(11):
            started = time.perf_counter()
            render()
            runs.append(time.perf_counter() - started)
        timings[name] = statistics.median(runs)
    print(f"3000×2000 medium JPG -> 200×133: ours {timings['ours'] * 1000:.1f} ms, naive Pillow "
          f"{timings['naive'] * 1000:.1f} ms ({timings['naive'] / timings['ours']:.1f}× faster)")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        started = time.perf_counter()
        paths = write_files(Path(tmp))
        print(f"(test frames written in {time.perf_counter() - started:.0f} s)")
        bench_fits(paths)
        bench_cache_hit(paths)
    bench_jpg()


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))

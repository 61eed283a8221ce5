"""Thumbnail speed and fidelity: `make_thumbnail` against a naive Pillow resize and against libvips.

Targets (issue 3): at least 2.5× faster than naive on 3000×2000; no slower than 0.8× pyvips's speed
at every size (our time ≤ pyvips time / 0.8); and a mean absolute difference from the naive output
below the "re-encoding floor", the difference that JPEG-encoding the naive resized image alone makes.
The verdicts are printed, never raised: timings depend on the machine.
"""

from __future__ import annotations

import io
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from archive.ingest.thumbnails import make_thumbnail

HEIGHT = 128
QUALITY = 85
REPEATS = 21
CASES = (("3000×2000 gray", 3000, 2000, "L"), ("1536×1024 RGB", 1536, 1024, "RGB"), ("768×768 gray", 768, 768, "L"))
NAIVE_SPEEDUP_TARGET = 2.5  # on the largest image
PYVIPS_SPEED_TARGET = 0.8  # our speed relative to pyvips's, at every size


def sky_jpeg(width: int, height: int, mode: str, seed: int = 7) -> bytes:
    """A night-sky-like JPEG at quality 90: smooth gradient background, noise, a few hundred stars."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    sky = 30 + 25 * (yy / height) + 12 * np.sin(xx / width * np.pi)
    sky += rng.normal(0, 4, (height, width)).astype(np.float32)
    for _ in range(400):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        sigma, peak = rng.uniform(0.8, 3.5), rng.uniform(20, 220)
        r = int(4 * sigma) + 1
        x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, width)
        y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, height)
        gy, gx = np.mgrid[y0:y1, x0:x1]
        sky[y0:y1, x0:x1] += peak * np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * sigma**2))
    if mode == "RGB":
        tint = np.array([1.0, 0.93, 1.08], dtype=np.float32)
        pixels = sky[..., None] * tint + rng.normal(0, 2, (height, width, 3)).astype(np.float32)
    else:
        pixels = sky
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def naive_resized(data: bytes) -> Image.Image:
    """The reference: decode every pixel, then a Lanczos resize to the target height."""
    image = Image.open(io.BytesIO(data))
    image.load()
    width = max(1, round(image.width * HEIGHT / image.height))
    return image.resize((width, HEIGHT), Image.Resampling.LANCZOS)


def encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


def naive(data: bytes) -> bytes:
    return encode(naive_resized(data))


def ours(data: bytes) -> bytes:
    return make_thumbnail(data, HEIGHT, QUALITY)


def pyvips_thumbnail() -> Callable[[bytes], bytes] | None:
    try:
        import pyvips
    except Exception as exc:  # noqa: BLE001 - a missing optional dependency only skips a column
        print(f"pyvips unavailable ({type(exc).__name__}: {exc}); `make bench` installs requirements-bench.txt")
        return None
    pyvips.cache_set_max(0)  # no operation cache: every repetition decodes again, like ours

    def run(data: bytes) -> bytes:
        return pyvips.Image.thumbnail_buffer(data, 100_000, height=HEIGHT).write_to_buffer(".jpg", Q=QUALITY)

    return run


def median_ms(funcs: dict[str, Callable[[bytes], bytes]], data: bytes) -> dict[str, float]:
    """Median milliseconds per function. Runs are interleaved so that a burst of load from elsewhere
    on the machine hits every contender alike and the ratios stay fair."""
    for func in funcs.values():
        func(data)  # warm up: imports, caches, allocator
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(REPEATS):
        for name, func in funcs.items():
            start = time.perf_counter()
            func(data)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(runs) * 1000 for name, runs in times.items()}


def pixels(data_or_image: bytes | Image.Image) -> np.ndarray:
    image = data_or_image if isinstance(data_or_image, Image.Image) else Image.open(io.BytesIO(data_or_image))
    return np.asarray(image, dtype=np.float64)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("nan")
    return float(np.mean(np.abs(a - b)))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    vips = pyvips_thumbnail()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"height {HEIGHT} px, quality {QUALITY}, median of {REPEATS} interleaved runs, "
        f"{os.cpu_count()} CPUs, load average {load:.1f}; MAD in 8-bit levels"
    )
    header = (
        f"{'image':<16}{'ours ms':>9}{'naive ms':>10}{'pyvips ms':>11}{'naive/ours':>12}{'ours/pyvips speed':>19}"
        f"{'MAD ours':>10}{'floor':>8}{'MAD vips':>10}"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    for label, width, height, mode in CASES:
        data = sky_jpeg(width, height, mode)
        timed = median_ms({"ours": ours, "naive": naive, **({"pyvips": vips} if vips else {})}, data)
        t_ours, t_naive, t_vips = timed["ours"], timed["naive"], timed.get("pyvips", float("nan"))
        reference = naive_resized(data)
        naive_out = pixels(encode(reference))
        floor = mad(pixels(reference), naive_out)
        mad_ours = mad(pixels(ours(data)), naive_out)
        mad_vips = mad(pixels(vips(data)), naive_out) if vips else float("nan")
        speedup, vs_vips = t_naive / t_ours, t_vips / t_ours
        print(
            f"{label:<16}{t_ours:>9.2f}{t_naive:>10.2f}{t_vips:>11.2f}{speedup:>11.2f}×{vs_vips:>18.2f}×"
            f"{mad_ours:>10.3f}{floor:>8.3f}{mad_vips:>10.3f}"
        )
        if width == 3000:
            verdicts.append((f"{label}: ≥{NAIVE_SPEEDUP_TARGET}× faster than naive", speedup >= NAIVE_SPEEDUP_TARGET))
        if vips:
            verdicts.append((f"{label}: ≥{PYVIPS_SPEED_TARGET}× pyvips's speed", vs_vips >= PYVIPS_SPEED_TARGET))
        verdicts.append((f"{label}: MAD below the re-encoding floor", mad_ours < floor))
    print()
    for text, ok in verdicts:
        print(f"{verdict(ok)}  {text}")

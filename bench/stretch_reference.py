"""Reference frames and a fits2image-style renderer, to judge our pictures against what LCO's serves.

The renderer is written here from fits2image's published behaviour (not its code): the whole frame
read with astropy, limits from `astropy.visualization.ZScaleInterval` (its 1,000 strided samples,
contrast 0.1 as fits2image passes it) on the frame's own pixels, linear between them, 8 bits, flipped
to picture order, then `Image.thumbnail` with Lanczos to the box (Pillow first shrinks by whole
factors with `reduce`, then resamples). NaN pixels come out black.

The frames are synthetic and seeded (the same pixels on every run): a sky with photon noise, stars
with a Gaussian PSF and a power-law of fluxes, and per frame one of the things a real frame brings
(sky gradients of 0-10 %, a bright galaxy, a crowded field, hot pixels and cosmic rays, NaN regions,
faint nebulosity) in one of the FITS pixel types (8/16/32-bit integers, uint16 stored as int16 with
BZERO 32768, float32/float64). Used by tests/unit/test_stretch_quality.py, img/stretch_compare.py and
bench/bench_render.py.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SHAPE = (1536, 2048)  # rows, columns: big enough for a 1600 px picture, small enough for a quick test
CONTRAST = 0.1  # fits2image's default


@dataclass(frozen=True)
class ReferenceFrame:
    name: str
    description: str
    data: np.ndarray  # as written to the FITS file (its dtype decides BITPIX / BZERO)


def stars(frame: np.ndarray, rng: np.random.Generator, count: int, brightest: float = 60000.0,
          faintest: float = 300.0, fwhm: float = 3.0) -> None:
    """Add `count` Gaussian stars with a power-law of fluxes (many faint, a few saturating) in place."""
    rows, cols = frame.shape
    sigma = fwhm / 2.355
    radius = int(4 * sigma) + 2
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    peaks = np.minimum(faintest * (1 + rng.pareto(1.2, count)), brightest)
    for y, x, peak in zip(rng.uniform(radius, rows - radius - 1, count), rng.uniform(radius, cols - radius - 1, count),
                          peaks, strict=True):
        iy, ix = int(y), int(x)
        frame[iy - radius:iy + radius + 1, ix - radius:ix + radius + 1] += peak * np.exp(
            -((yy - (y - iy)) ** 2 + (xx - (x - ix)) ** 2) / (2 * sigma**2))


def sky(rng: np.random.Generator, level: float = 1000.0, gradient: float = 0.0, read_noise: float = 8.0,
        shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """A sky of `level` counts rising by `gradient` (a fraction of the level) across the frame, diagonally."""
    rows, cols = shape
    ramp = (np.arange(cols)[None, :] / cols * 0.7 + np.arange(rows)[:, None] / rows * 0.3) - 0.5
    return (level * (1 + gradient * ramp)).astype(np.float64) + np.zeros(shape)


def observe(expected: np.ndarray, rng: np.random.Generator, read_noise: float = 8.0) -> np.ndarray:
    """Photon noise on the expected counts, plus read noise."""
    return rng.poisson(np.maximum(expected, 0)).astype(np.float64) + rng.normal(0, read_noise, expected.shape)


def galaxy(shape: tuple[int, int], peak: float, centre: tuple[float, float], radius: float,
           axis_ratio: float = 0.6, angle: float = 0.5) -> np.ndarray:
    """An elliptical galaxy with an exponential disc and a bright bulge."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    dy, dx = yy - centre[0], xx - centre[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / axis_ratio
    r = np.hypot(u, v)
    return peak * (0.3 * np.exp(-r / radius) + np.exp(-((r / (radius * 0.15)) ** 0.5) * 3) * 0.7 * np.e ** 3 / 20)


def nebula(shape: tuple[int, int], amplitude: float) -> np.ndarray:
    """Faint wisps: a few broad, elongated blobs."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    out = np.zeros(shape)
    for cy, cx, sy, sx, a in ((0.45, 0.4, 0.18, 0.3, 1.0), (0.6, 0.65, 0.1, 0.2, 0.7), (0.3, 0.7, 0.06, 0.25, 0.5)):
        out += a * np.exp(-(((yy / shape[0] - cy) / sy) ** 2 + ((xx / shape[1] - cx) / sx) ** 2))
    return amplitude * out


def as_uint16(data: np.ndarray) -> np.ndarray:
    return np.clip(np.round(data), 0, 65535).astype(np.uint16)


def _flat(rng: np.random.Generator) -> np.ndarray:
    expected = sky(rng)
    stars(expected, rng, 1500)
    return as_uint16(observe(expected, rng))


def _gradient(fraction: float, dtype: str) -> Callable[[np.random.Generator], np.ndarray]:
    def make(rng: np.random.Generator) -> np.ndarray:
        expected = sky(rng, gradient=fraction)
        stars(expected, rng, 1500)
        observed = observe(expected, rng)
        if dtype == "int16":
            return np.clip(np.round(observed), -32768, 32767).astype(np.int16)
        return as_uint16(observed)
    return make


def _galaxy(rng: np.random.Generator) -> np.ndarray:
    expected = sky(rng, gradient=0.02)
    expected += galaxy(SHAPE, 20000.0, (SHAPE[0] * 0.5, SHAPE[1] * 0.45), 120.0)
    stars(expected, rng, 800)
    return observe(expected, rng).astype(np.float32)


def _crowded(rng: np.random.Generator) -> np.ndarray:
    expected = sky(rng, level=400.0, gradient=0.03)
    stars(expected, rng, 25000, faintest=150.0)
    return np.round(observe(expected, rng)).astype(np.int32)


def _hot_pixels(rng: np.random.Generator) -> np.ndarray:
    expected = sky(rng, level=800.0)
    stars(expected, rng, 1200)
    frame = observe(expected, rng)
    count = frame.size // 500  # 0.2 % hot pixels
    frame.flat[rng.integers(0, frame.size, count)] = rng.uniform(5000, 65000, count)
    for _ in range(300):  # cosmic-ray tracks
        y, x = rng.integers(5, SHAPE[0] - 5), rng.integers(5, SHAPE[1] - 5)
        frame[y, x:x + rng.integers(1, 5)] += rng.uniform(2000, 30000)
    return as_uint16(frame)


def _nan_regions(rng: np.random.Generator) -> np.ndarray:
    expected = sky(rng, gradient=0.05)
    stars(expected, rng, 1500)
    frame = observe(expected, rng)
    frame[:, :180] = np.nan  # the unexposed edge of a reprojected frame
    frame[1300:, 1700:] = np.nan
    frame[rng.integers(0, SHAPE[0], 2000), rng.integers(0, SHAPE[1], 2000)] = np.nan
    return frame  # float64


def _eight_bit(rng: np.random.Generator) -> np.ndarray:
    expected = sky(rng, level=40.0, gradient=0.04)
    stars(expected, rng, 1500, brightest=400.0, faintest=15.0)
    return np.clip(np.round(rng.poisson(expected) + rng.normal(0, 2, SHAPE)), 0, 255).astype(np.uint8)


def _nebula(rng: np.random.Generator) -> np.ndarray:
    expected = sky(rng, gradient=0.01) + nebula(SHAPE, 25.0)  # peaks at ~0.7 sigma of one pixel's noise
    stars(expected, rng, 1500)
    return observe(expected, rng).astype(np.float32)


MAKERS: dict[str, tuple[str, Callable[[np.random.Generator], np.ndarray]]] = {
    "flat": ("flat sky, 1,500 stars, uint16 (BZERO 32768)", _flat),
    "gradient-2": ("2 % sky gradient, uint16", _gradient(0.02, "uint16")),
    "gradient-4": ("4 % sky gradient, uint16", _gradient(0.04, "uint16")),
    "gradient-10": ("10 % sky gradient, int16", _gradient(0.10, "int16")),
    "galaxy": ("a bright galaxy, float32", _galaxy),
    "crowded": ("crowded field, 25,000 stars, int32", _crowded),
    "hot-pixels": ("0.2 % hot pixels and cosmic rays, uint16", _hot_pixels),
    "nan-regions": ("NaN edge, corner and scattered pixels, float64", _nan_regions),
    "eight-bit": ("8-bit data, sky 40 counts", _eight_bit),
    "nebula": ("faint nebulosity (0.7 sigma of a pixel's noise), float32", _nebula),
}


def reference_frame(name: str) -> ReferenceFrame:
    description, make = MAKERS[name]
    return ReferenceFrame(name, description, make(np.random.default_rng(sum(map(ord, name)))))


def fits_bytes(data: np.ndarray) -> bytes:
    """A plain FITS file (astropy stores uint16 as int16 with BZERO 32768)."""
    from astropy.io import fits

    out = io.BytesIO()
    fits.PrimaryHDU(data).writeto(out)
    return out.getvalue()


def fits2image_picture(body: bytes | str, box: tuple[int, int]):
    """The fits2image-style picture (a Pillow "L" image) of a FITS file (bytes, or a path)."""
    from astropy.io import fits
    from astropy.visualization import ZScaleInterval
    from PIL import Image

    with fits.open(io.BytesIO(body) if isinstance(body, bytes) else body) as hdul:
        data = next(h.data for h in hdul if h.data is not None).astype(np.float64)
    low, high = ZScaleInterval(contrast=CONTRAST).get_limits(data)  # it leaves NaN and inf out itself
    scaled = (data - low) * (255.0 / max(high - low, 1e-9))
    np.nan_to_num(scaled, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(scaled, 0, 255, out=scaled)
    picture = Image.fromarray(np.round(scaled).astype(np.uint8)).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    picture.thumbnail(box, Image.Resampling.LANCZOS)
    return picture


def picture_figures(picture) -> dict[str, float]:
    """What the eye reads first: the share of (near-)black pixels, the sky's grey, the share at white."""
    pixels = np.asarray(picture.convert("L"), dtype=np.uint8)
    return {"dark": float(np.mean(pixels <= 5)), "sky": float(np.median(pixels)),
            "white": float(np.mean(pixels >= 255))}


def our_picture(body: bytes, box: tuple[int, int], ext: str = "fits", **options):
    """Our picture (a Pillow image, before JPEG) of a FITS file, by the image API's own code."""
    from archive.formats.fits_data import reduce_fits
    from archive.formats.jpeg import fit_size
    from archive.render.params import RenderParams
    from archive.render.picture import fits_picture

    params = RenderParams(width=box[0], height=box[1], **options)
    frame = reduce_fits(io.BytesIO(body), ext, lambda w, h: fit_size(w, h, *box), max_pixels=10**9,
                        header_limit=2880 * 100)
    return fits_picture([frame], params)


SIZES = (200, 800, 1600)


def main() -> None:
    """Print the comparison table: `python -m bench.stretch_reference` (docs/image-api.md quotes it)."""
    print("frame        size | fits2image-style: ≤5   sky  =255 | ours zscale: ≤5   sky  =255 | "
          "asinh ≤5/sky | linear ≤5/sky | median ≤5/sky")
    for name in MAKERS:
        body = fits_bytes(reference_frame(name).data)
        for size in SIZES:
            ref = picture_figures(fits2image_picture(body, (size, size)))
            ours = picture_figures(our_picture(body, (size, size)))
            others = [picture_figures(our_picture(body, (size, size), **options)) for options in
                      ({"stretch": "asinh"}, {"stretch": "linear"}, {"median": True})]
            print(f"{name:12s} {size:4d} | {ref['dark'] * 100:20.1f}% {ref['sky']:4.0f} {ref['white'] * 100:5.2f}% |"
                  f" {ours['dark'] * 100:14.1f}% {ours['sky']:4.0f} {ours['white'] * 100:5.2f}% | "
                  + " | ".join(f"{o['dark'] * 100:5.1f}%/{o['sky']:3.0f}" for o in others), flush=True)


if __name__ == "__main__":
    main()

"""Display stretches: raw counts of a (reduced) frame -> brightness in [0, 1].

What an astronomer expects of a quick-look picture (and what LCO's fits2image gives): the sky a
smooth dark grey, never a black plane with an edge where it crosses a threshold; faint nebulosity
lifted out of it; stars with their cores, not white discs.

Statistics come from the frame at full resolution, applied to the reduced image
(archive.formats.fits_data averages blocks of pixels and keeps a sample of the raw pixels beside
them, `Reduced.sample`). Taken from the block means instead, they would see the noise averaged away:
the sky would be a nearly constant value, and any black point near it would cut the frame along a
contour of the sky's gradient. From the sample (`Levels`):

- `sky`: the median; `noise`: 1.4826 × the median absolute deviation (σ of one pixel);
- `low`, `high`: the zscale limits (IRAF's: a line fitted to `ZSCALE_SAMPLES` sorted samples with
  iterative k-sigma rejection, its slope divided by the contrast `ZSCALE_CONTRAST` = 0.1 as fits2image
  uses, spread around the median sample), clamped to the 0.1st and 99.9th percentiles of the sample
  (what the extreme samples of IRAF's ~1000 stand for, without one hot or dead pixel deciding).

The stretches (`black`, `white`: the data values shown as 0 and 1):

- `zscale` (the default): black at `low`, white at `high`, linear between them as fits2image, then a
  highlight shoulder: above `KNEE` the curve bends over smoothly (t → t / (1 + t)) and reaches white
  only far above `high`, so star cores keep their shape. The block means of a star are brighter than
  the means of pixels clipped one by one (what fits2image shows after shrinking); the shoulder
  stands for that clipping;
- `asinh`: white at the `percentile` of the picture's pixels, then an inverse hyperbolic sine curve
  (softening `ASINH_SOFTENING`: faint structure lifted, bright stars not saturated);
- `linear`: white at the `percentile` of the picture's pixels, linear;
- for every stretch the sky lands on a dark grey: for `zscale` where the limits put it, kept within
  `SKY_GREY_RANGE` (a frame whose zscale fit goes astray still shows a grey sky); for `asinh` and
  `linear` the black point is placed below the sky so that it shows at `SKY_GREY` after the curve, or
  lower: at least `PICTURE_NOISE_BELOW_SKY` σ of the picture's own pixels below the sky (their noise
  would otherwise dip to black), but never so low that the sky shows brighter than `SKY_GREY_RANGE`.

`median=true` then stretches what lies above the sky, as the reference's re-centring on the median
does, without its black plane: the `percentile` of the stretched picture goes to white, the sky stays
the dark grey the stretch gave it (the reference makes the median black: half the picture), the gain
rising smoothly above it (over `MEDIAN_BLEND_SIGMAS` σ of the sky's noise); nothing below the sky changes.

NaN and ±inf pixels are left out of every statistic and come out black. A frame with no finite pixel
raises `NoFiniteData`; a flat frame (every pixel alike) is black. Arrays are float32 throughout, and no
statistic reads every pixel of a big picture (at most `PICTURE_SAMPLES` of them): a 4000-pixel
picture costs a few passes over its pixels, no sort.
"""

from __future__ import annotations

from dataclasses import dataclass

from archive import lazy

ZSCALE_CONTRAST = 0.1
ZSCALE_SAMPLES = 2000
ZSCALE_REJECT_SIGMA = 2.5
ZSCALE_MAX_ITERATIONS = 5
ZSCALE_MIN_KEPT = 0.5
EXTREME_PERCENTILES = (0.1, 99.9)  # stand-ins for the smallest and largest of IRAF's ~1000 samples
MAD_TO_SIGMA = 1.4826
KNEE = 0.75  # zscale: linear up to here, then the highlight shoulder
SKY_GREY = 0.12  # asinh, linear: where the sky is shown (about 31 of 255)
SKY_GREY_RANGE = (0.07, 0.22)  # zscale: the sky stays within this (about 18 to 56 of 255)
ASINH_SOFTENING = 10.0
PICTURE_NOISE_BELOW_SKY = 3.0  # asinh, linear: black at least this many σ of the picture's pixels below the sky
MEDIAN_BLEND_SIGMAS = 3.0  # median=true: the gain rises over this many σ of the sky's noise above it
PICTURE_SAMPLES = 1 << 20  # at most this many of the picture's pixels for its percentiles


class NoFiniteData(ValueError):
    """Nothing to show: every pixel is NaN or infinite."""


def finite_values(data: lazy.np.ndarray, limit: int | None = None) -> lazy.np.ndarray:
    """The finite values of `data`, flattened; with `limit`, about that many spread evenly over it."""
    np = lazy.np
    flat = data.ravel()
    if limit is not None and flat.size > limit:
        flat = flat[::flat.size // limit]
    return flat[np.isfinite(flat)]


def samples(values: lazy.np.ndarray, count: int = ZSCALE_SAMPLES) -> lazy.np.ndarray:
    """About `count` values spread evenly over the array, sorted."""
    np = lazy.np
    stride = max(1, values.size // count)
    return np.sort(values[::stride])


def zscale_limits(sorted_samples: lazy.np.ndarray, contrast: float = ZSCALE_CONTRAST) -> tuple[float, float]:
    """(z1, z2) of IRAF's zscale: a line fitted to the sorted samples, rejecting outliers iteratively
    (never below half of them), its slope divided by the contrast, spread around the median sample."""
    np = lazy.np
    y = sorted_samples.astype(np.float64)
    n = y.size
    if n < 2:
        return float(y[0]), float(y[-1])
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2  # centred: the intercept is the fit at the middle
    keep = np.ones(n, dtype=bool)
    slope = 0.0
    for _ in range(ZSCALE_MAX_ITERATIONS):
        xs, ys = x[keep], y[keep]
        slope, intercept = np.polyfit(xs, ys, 1)
        residuals = y - (slope * x + intercept)
        sigma = residuals[keep].std()
        new_keep = np.abs(residuals) <= ZSCALE_REJECT_SIGMA * sigma if sigma > 0 else keep
        if new_keep.sum() < ZSCALE_MIN_KEPT * n or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    if contrast > 0:
        slope /= contrast
    middle = float(np.median(y))  # IRAF's zero point: the median sample, the slope from the fit
    z1 = max(float(y[0]), middle - slope * (n - 1) / 2)
    z2 = min(float(y[-1]), middle + slope * (n - 1) / 2)
    return z1, z2


@dataclass(frozen=True)
class Levels:
    """The frame's statistics at full resolution (see the module docstring)."""

    sky: float
    noise: float
    low: float
    high: float


def frame_levels(values: lazy.np.ndarray) -> Levels:
    """Levels of a frame from finite raw pixel values (a sample of them is enough)."""
    np = lazy.np
    if values.size == 0:
        raise NoFiniteData("the frame has no finite pixels (all NaN or infinite)")
    sky = float(np.median(values))
    noise = MAD_TO_SIGMA * float(np.median(np.abs(values - np.float32(sky))))
    fit_low, fit_high = zscale_limits(samples(values))
    floor, ceiling = (float(v) for v in np.percentile(values, EXTREME_PERCENTILES))
    low, high = max(fit_low, floor), min(fit_high, ceiling)
    if not high > low:  # a fit gone astray (or a frame of two values): the percentiles themselves
        low, high = min(floor, sky), max(ceiling, sky)
    return Levels(sky, noise, low, high)


def _grey_to_value(grey: float, stretch: str) -> float:
    """The linear value whose curve shows `grey`."""
    np = lazy.np
    if stretch == "asinh":
        return float(np.sinh(grey * np.arcsinh(ASINH_SOFTENING)) / ASINH_SOFTENING)
    return grey


def black_for_sky(sky: float, white: float, grey: float) -> float:
    """The black point that shows `sky` at the linear value `grey` with `white` as white."""
    return (sky - grey * white) / (1 - grey)


def stretch_limits(levels: Levels, stretch: str, percentile: float,
                   picture: lazy.np.ndarray | None = None) -> tuple[float, float]:
    """(black, white) in the data's units. `picture` (the reduced image's finite values, or a sample
    of them) gives the `percentile` of `asinh` and `linear`."""
    np = lazy.np
    sky = levels.sky
    if not levels.high > levels.low:  # flat frame: black, never a division by zero
        return sky, sky + max(abs(sky) * 1e-6, 1e-6)
    if stretch == "zscale":
        black, white = levels.low, levels.high
        if white <= sky:  # more than half the frame at the top: keep the sky off white
            white = sky + max(levels.noise, (sky - black))
        shown = (sky - black) / (white - black)
        low, high = SKY_GREY_RANGE
        if not low <= shown <= high:
            black = black_for_sky(sky, white, min(max(shown, low), high))
        return black, white
    values = picture if picture is not None and picture.size else None
    white = float(np.percentile(values, percentile)) if values is not None else levels.high
    white = max(white, sky + max(levels.noise, levels.high - sky, 1e-6))
    black = black_for_sky(sky, white, _grey_to_value(SKY_GREY, stretch))
    if values is not None:  # the picture's own noise (less than a pixel's after block averaging) stays above black
        spread = MAD_TO_SIGMA * float(np.median(np.abs(values - np.float32(sky))))
        black = min(black, sky - PICTURE_NOISE_BELOW_SKY * spread)
    darkest = _grey_to_value(SKY_GREY_RANGE[1], stretch)
    if (sky - black) / (white - black) > darkest:
        black = black_for_sky(sky, white, darkest)
    return black, white


def _shoulder(values: lazy.np.ndarray) -> None:
    """In place: above KNEE, t -> t / (1 + t) (slope 1 at the knee, white only far above 1)."""
    np = lazy.np
    over = values > KNEE
    if over.any():
        span = np.float32(1 - KNEE)
        t = (values[over] - np.float32(KNEE)) / span
        values[over] = np.float32(KNEE) + span * t / (1 + t)


def apply_stretch(data: lazy.np.ndarray, stretch: str, black: float, white: float,
                  overwrite: bool = False) -> lazy.np.ndarray:
    """float32 in [0, 1]; non-finite pixels become 0. `overwrite`: into `data` itself when it is float32
    (a 4000-pixel picture's frame is 64 MB: no second copy)."""
    np = lazy.np
    if overwrite and data.dtype == np.float32:
        out = np.subtract(data, np.float32(black), out=data)
    else:
        out = np.subtract(data, black, dtype=np.float32)
    out *= np.float32(1.0 / (white - black))
    np.fmax(out, np.float32(0), out=out)  # NaN and -inf to 0 too (fmax skips NaN): one pass, not nan_to_num's four
    out[out == np.inf] = 0.0
    if stretch == "zscale":
        _shoulder(out)
    elif stretch == "asinh":
        np.minimum(out, 1.0, out=out)
        np.arcsinh(out * np.float32(ASINH_SOFTENING), out=out)
        out *= np.float32(1 / np.arcsinh(ASINH_SOFTENING))
    np.minimum(out, 1.0, out=out)
    return out


def recentre_on_sky(stretched: lazy.np.ndarray, percentile: float) -> lazy.np.ndarray:
    """The `median=true` step: the `percentile` of the picture to white, its median (the sky) kept
    where it is; nothing below the median changes. Above it the gain rises smoothly from 1 to what
    takes the percentile to white, over `MEDIAN_BLEND_SIGMAS` σ of the sky's noise: a sharp bend at the
    median would brighten the sky's noise and not darken it, and the resample that follows would
    average that into a brighter sky (measured: +10 grey levels on an 8-bit frame)."""
    np = lazy.np
    values = finite_values(stretched, PICTURE_SAMPLES)
    middle, top = (float(v) for v in np.percentile(values, [50, percentile]))
    width = MEDIAN_BLEND_SIGMAS * MAD_TO_SIGMA * float(np.median(np.abs(values - np.float32(middle))))
    width = min(max(width, 1e-6), (top - middle) / 2) if top > middle else 0.0
    if not top > middle or top >= 1.0:
        return stretched
    # f(d) = d + (gain - 1) * g(d), g(d) = d² / 2w up to w, then d - w/2: f(top - middle) = 1 - middle.
    gain = 1 + (1 - top) / (top - middle - width / 2)
    out = stretched.copy()
    above = out > middle
    d = out[above] - np.float32(middle)
    bend = np.where(d < width, d * d / np.float32(2 * width), d - np.float32(width / 2))
    out[above] = np.float32(middle) + d + np.float32(gain - 1) * bend
    np.minimum(out, 1.0, out=out)
    return out


def stretch(data: lazy.np.ndarray, stretch: str = "zscale", percentile: float = 99.5,
            median: bool = False, sample: lazy.np.ndarray | None = None, overwrite: bool = False) -> lazy.np.ndarray:
    """The whole display mapping of one frame (or one colour channel). `sample`: finite raw pixels of
    the frame at full resolution (Reduced.sample); without it the statistics use `data` itself.
    `overwrite`: `data` may be used for the result."""
    picture = finite_values(data, PICTURE_SAMPLES)
    levels = frame_levels(sample if sample is not None and sample.size else picture)
    black, white = stretch_limits(levels, stretch, percentile, picture)
    out = apply_stretch(data, stretch, black, white, overwrite)
    return recentre_on_sky(out, percentile) if median else out

"""Display stretches: raw counts of a (reduced) frame -> brightness in [0, 1].

Every stretch puts the black point at the median of the finite pixels (the sky) and differs in the
white point and the curve:

- `zscale` (the default, as LCO's service): white point from a zscale fit (IRAF's: a line fitted to
  the sorted samples with iterative k-sigma rejection, its slope divided by the contrast 0.1), then
  gamma 2.5;
- `asinh`: white point at the `percentile`, then an inverse hyperbolic sine curve (faint structure
  lifted, bright stars not saturated);
- `linear`: white point at the `percentile`, nothing else.

`median=true` then re-centres the result as the reference does: the stretched image's median is
subtracted and its `percentile` becomes white.

NaN and ±inf pixels are left out of every statistic and come out black. A frame with no finite pixel
raises `NoFiniteData`. Arrays are float32 throughout: the input is already reduced to about the
output's size, so this is cheap.
"""

from __future__ import annotations

from archive import lazy

ZSCALE_CONTRAST = 0.1
ZSCALE_SAMPLES = 2000
ZSCALE_REJECT_SIGMA = 2.5
ZSCALE_MAX_ITERATIONS = 5
ZSCALE_MIN_KEPT = 0.5
GAMMA = 2.5
ASINH_SOFTENING = 10.0


class NoFiniteData(ValueError):
    """Nothing to show: every pixel is NaN or infinite."""


def finite_values(data: lazy.np.ndarray) -> lazy.np.ndarray:
    np = lazy.np
    flat = data.ravel()
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


def stretch_limits(data: lazy.np.ndarray, stretch: str, percentile: float) -> tuple[float, float]:
    """(black, white) in the data's units."""
    np = lazy.np
    values = finite_values(data)
    if values.size == 0:
        raise NoFiniteData("the frame has no finite pixels (all NaN or infinite)")
    black = float(np.median(values))  # the reduced image is small: every pixel, not a sample
    if stretch == "zscale":
        white = zscale_limits(samples(values))[1]
    else:
        white = float(np.percentile(values, percentile))
    if not white > black:
        white = black + max(abs(black) * 1e-6, 1e-6)  # flat frame: black, never a division by zero
    return black, white


def apply_stretch(data: lazy.np.ndarray, stretch: str, black: float, white: float) -> lazy.np.ndarray:
    """float32 in [0, 1]; non-finite pixels become 0."""
    np = lazy.np
    out = np.subtract(data, black, dtype=np.float32)
    out *= np.float32(1.0 / (white - black))
    np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    np.clip(out, 0.0, 1.0, out=out)
    if stretch == "zscale":
        np.power(out, np.float32(1 / GAMMA), out=out)
    elif stretch == "asinh":
        np.arcsinh(out * np.float32(ASINH_SOFTENING), out=out)
        out *= np.float32(1 / np.arcsinh(ASINH_SOFTENING))
    return out


def recentre_on_median(stretched: lazy.np.ndarray, percentile: float) -> lazy.np.ndarray:
    """The `median=true` step: the median becomes black and the `percentile` white."""
    np = lazy.np
    out = stretched - np.float32(np.median(stretched))
    np.maximum(out, 0.0, out=out)
    top = float(np.percentile(out, percentile))
    if top > 0:
        out *= np.float32(1.0 / top)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def stretch(data: lazy.np.ndarray, stretch: str = "zscale", percentile: float = 99.5,
            median: bool = False) -> lazy.np.ndarray:
    """The whole display mapping of one frame (or one colour channel)."""
    black, white = stretch_limits(data, stretch, percentile)
    out = apply_stretch(data, stretch, black, white)
    return recentre_on_median(out, percentile) if median else out

"""Display stretches against astropy.visualization's (an independent implementation of zscale and asinh),
on synthetic frames, within a few grey levels; NaN and infinite pixels never reach a statistic."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.visualization import AsinhStretch, PowerStretch, ZScaleInterval

from archive.render.stretch import NoFiniteData, stretch, stretch_limits, zscale_limits


def sky(seed: int = 1, shape: tuple[int, int] = (240, 320), stars: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = shape
    frame = rng.normal(1000, 30, shape) + np.linspace(0, 40, cols)[None, :]
    y, x = np.mgrid[0:rows, 0:cols]
    for _ in range(stars):
        cy, cx, flux = rng.uniform(0, rows), rng.uniform(0, cols), rng.pareto(1.3) * 4000 + 300
        frame += flux * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 1.6**2))
    return frame.astype(np.float32)


def reference(frame: np.ndarray, kind: str, percentile: float = 99.5) -> np.ndarray:
    """The same display mapping built from astropy's pieces, in float64 on the finite pixels."""
    finite = frame[np.isfinite(frame)].astype(np.float64)
    black = np.median(finite)
    if kind == "zscale":
        white = ZScaleInterval(n_samples=2000, contrast=0.1).get_limits(finite)[1]
        curve = PowerStretch(1 / 2.5)
    elif kind == "asinh":
        white, curve = np.percentile(finite, percentile), AsinhStretch(a=0.1)
    else:
        white, curve = np.percentile(finite, percentile), None
    scaled = np.clip((frame.astype(np.float64) - black) / (white - black), 0, 1)
    shown = curve(scaled) if curve else scaled
    return np.nan_to_num(shown, nan=0.0) * 255


def grey(values: np.ndarray) -> np.ndarray:
    return np.clip(values * 255 + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["zscale", "asinh", "linear"])
@pytest.mark.parametrize("seed", [1, 2])
def test_each_stretch_matches_astropys_within_a_few_grey_levels(kind, seed):
    frame = sky(seed)
    ours = grey(stretch(frame, kind, 99.5)).astype(float)
    theirs = reference(frame, kind)
    difference = np.abs(ours - theirs)
    assert difference.mean() < 1.5 and np.percentile(difference, 99) <= 6, (difference.mean(), difference.max())


def test_zscale_limits_are_astropys_on_a_plain_noise_frame():
    frame = np.random.default_rng(3).normal(500, 20, (200, 200)).astype(np.float32)
    samples = np.sort(frame.ravel()[::20])
    ours = zscale_limits(samples)
    theirs = ZScaleInterval(n_samples=2000, contrast=0.1).get_limits(frame)
    assert ours == pytest.approx(theirs, rel=0.01)


def test_nan_and_infinite_pixels_are_left_out_and_shown_black():
    frame = sky(4)
    spoiled = frame.copy()
    rng = np.random.default_rng(5)
    spoiled[rng.integers(0, 240, 3000), rng.integers(0, 320, 3000)] = np.nan
    spoiled[:5] = np.inf
    spoiled[-5:] = -np.inf
    for kind in ("zscale", "asinh", "linear"):
        black, white = stretch_limits(spoiled, kind, 99.5)
        assert np.isfinite([black, white]).all() and white > black
        assert stretch_limits(frame, kind, 99.5) == pytest.approx((black, white), rel=0.05)
        shown = stretch(spoiled, kind)
        assert np.isfinite(shown).all() and shown[np.isnan(spoiled)].max() == 0.0
        assert 0.0 <= shown.min() and shown.max() <= 1.0


def test_a_frame_with_nothing_finite_cannot_be_shown():
    with pytest.raises(NoFiniteData):
        stretch(np.full((10, 10), np.nan, np.float32))
    with pytest.raises(NoFiniteData):
        stretch(np.array([[np.inf, -np.inf]], np.float32))


def test_a_flat_frame_is_black_not_a_division_by_zero():
    shown = stretch(np.full((20, 20), 7.0, np.float32))
    assert np.isfinite(shown).all() and shown.max() == 0.0


def test_median_recentres_the_sky_to_black_and_the_percentile_to_white():
    shown = stretch(sky(6), "linear", 99.0, median=True)
    assert np.median(shown) == pytest.approx(0.0, abs=1e-6)
    assert np.mean(shown >= 1.0) == pytest.approx(0.01, abs=0.003)

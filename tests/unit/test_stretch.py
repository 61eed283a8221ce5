"""Display stretches: the statistics against astropy.visualization's (an independent implementation of
zscale and asinh), the sky a dark grey at every reduction, highlights rolled off, NaN and infinite
pixels never reaching a statistic."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.visualization import AsinhStretch, ZScaleInterval

from archive.render import stretch as stretch_module
from archive.render.stretch import (
    KNEE,
    SKY_GREY,
    SKY_GREY_RANGE,
    NoFiniteData,
    apply_stretch,
    frame_levels,
    stretch,
    stretch_limits,
    zscale_limits,
)


def sky(seed: int = 1, shape: tuple[int, int] = (240, 320), stars: int = 60, gradient: float = 40.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = shape
    frame = rng.normal(1000, 30, shape) + np.linspace(0, gradient, cols)[None, :]
    y, x = np.mgrid[-8:9, -8:9]
    for _ in range(stars):
        cy, cx, flux = rng.uniform(8, rows - 9), rng.uniform(8, cols - 9), rng.pareto(1.3) * 4000 + 300
        iy, ix = int(cy), int(cx)
        frame[iy - 8:iy + 9, ix - 8:ix + 9] += flux * np.exp(-((y - cy + iy) ** 2 + (x - cx + ix) ** 2) / (2 * 1.6**2))
    return frame.astype(np.float32)


def block_means(frame: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = frame.shape[0] // factor, frame.shape[1] // factor
    return frame[:rows * factor, :cols * factor].reshape(rows, factor, cols, factor).mean(axis=(1, 3))


def grey(values: np.ndarray) -> np.ndarray:
    return np.clip(values * 255 + 0.5, 0, 255).astype(np.uint8)


def test_zscale_limits_are_astropys_on_a_plain_noise_frame():
    frame = np.random.default_rng(3).normal(500, 20, (200, 200)).astype(np.float32)
    samples = np.sort(frame.ravel()[::20])
    ours = zscale_limits(samples)
    theirs = ZScaleInterval(n_samples=2000, contrast=0.1).get_limits(frame)
    assert ours == pytest.approx(theirs, rel=0.01)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_levels_of_a_sample_are_those_of_the_whole_frame(seed):
    frame = sky(seed, (600, 800), stars=200)
    sample = frame[3::8, 5::8].ravel()
    levels = frame_levels(sample)
    assert levels.sky == pytest.approx(np.median(frame), abs=3)
    assert levels.noise == pytest.approx(30, rel=0.25)  # the pixels' σ, with the gradient's spread
    low, high = ZScaleInterval(n_samples=2000, contrast=0.1).get_limits(frame)
    assert levels.low == pytest.approx(low, abs=30)  # a few σ below the sky, as astropy's (its 2000 samples' least)
    assert levels.low < levels.sky - 2 * 30 and levels.high > levels.sky + 5 * 30


@pytest.mark.parametrize("kind", ["zscale", "asinh", "linear"])
@pytest.mark.parametrize("factor", [1, 4, 10])
def test_the_sky_is_a_dark_grey_at_every_reduction_not_black(kind, factor):
    """Statistics from the full-resolution sample: block averaging smooths the sky but does not move it."""
    frame = sky(5, (800, 1000), stars=150)
    reduced = block_means(frame, factor)
    shown = grey(stretch(reduced, kind, 99.5, sample=frame[::3, ::3].ravel()))
    assert 15 <= np.median(shown) <= 60, np.median(shown)
    assert np.mean(shown <= 5) < 0.03, "no black plane (at full resolution, a few noise dips)"
    rows = np.median(shown, axis=0)  # the sky's gradient runs along the columns: no step in it
    assert np.abs(np.diff(rows.astype(float))).max() <= 3 + 60 / factor


def test_without_a_sample_the_statistics_come_from_the_data_itself():
    frame = sky(6)
    assert np.array_equal(stretch(frame), stretch(frame, sample=frame.ravel()))


def test_zscale_is_linear_between_its_limits_then_rolls_off_to_white():
    frame = sky(7)
    levels = frame_levels(frame.ravel())
    black, white = stretch_limits(levels, "zscale", 99.5)
    values = np.linspace(black - 100, white + 50 * (white - black), 20001, dtype=np.float32)
    shown = apply_stretch(values, "zscale", black, white)
    linear = np.clip((values - black) / (white - black), 0, 1)
    below_knee = linear <= KNEE
    np.testing.assert_allclose(shown[below_knee], linear[below_knee], atol=1e-6)
    assert np.all(np.diff(shown) >= 0), "monotonic"
    assert np.abs(np.diff(shown)).max() < 1e-2, "continuous, no step at the knee"
    assert shown[values <= white].max() < 0.9, "the zscale white point is not white yet: star cores keep a shape"
    assert shown[-1] > 0.99


def test_asinh_is_astropys_curve_between_its_limits():
    frame = sky(8)
    levels = frame_levels(frame.ravel())
    black, white = stretch_limits(levels, "asinh", 99.5, frame.ravel())
    ours = stretch(frame, "asinh", 99.5)
    theirs = AsinhStretch(a=0.1)(np.clip((frame.astype(np.float64) - black) / (white - black), 0, 1))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert white == pytest.approx(np.percentile(frame, 99.5), rel=1e-4)


@pytest.mark.parametrize("kind", ["asinh", "linear"])
def test_asinh_and_linear_show_the_sky_at_its_grey_below_the_percentile_white(kind):
    frame = block_means(sky(9, (800, 1000), stars=200, gradient=0), 8)  # smooth: the sky grey sets black
    shown = stretch(frame, kind, 99.0)
    assert np.median(shown) == pytest.approx(SKY_GREY, abs=0.02)
    assert np.mean(shown >= 1.0) == pytest.approx(0.01, abs=0.004)


def test_a_zscale_fit_gone_astray_still_shows_the_sky_within_its_range(monkeypatch):
    frame = sky(10)
    monkeypatch.setattr(stretch_module, "zscale_limits", lambda samples: (0.0, 1500.0))  # black far below
    assert SKY_GREY_RANGE[0] <= np.median(stretch(frame)) <= SKY_GREY_RANGE[1] + 0.01


def test_nan_and_infinite_pixels_are_left_out_and_shown_black():
    frame = sky(4)
    spoiled = frame.copy()
    rng = np.random.default_rng(5)
    spoiled[rng.integers(0, 240, 3000), rng.integers(0, 320, 3000)] = np.nan
    spoiled[:5] = np.inf
    spoiled[-5:] = -np.inf
    for kind in ("zscale", "asinh", "linear"):
        clean = frame_levels(frame.ravel())
        levels = frame_levels(spoiled[np.isfinite(spoiled)])
        assert np.isfinite([levels.sky, levels.noise, levels.low, levels.high]).all()
        assert (levels.sky, levels.low, levels.high) == pytest.approx((clean.sky, clean.low, clean.high), rel=0.05)
        shown = stretch(spoiled, kind)
        assert np.isfinite(shown).all() and shown[~np.isfinite(spoiled)].max() == 0.0
        assert 0.0 <= shown.min() and shown.max() <= 1.0


def test_a_frame_with_nothing_finite_cannot_be_shown():
    with pytest.raises(NoFiniteData):
        stretch(np.full((10, 10), np.nan, np.float32))
    with pytest.raises(NoFiniteData):
        stretch(np.array([[np.inf, -np.inf]], np.float32))


def test_a_flat_frame_is_black_not_a_division_by_zero():
    shown = stretch(np.full((20, 20), 7.0, np.float32))
    assert np.isfinite(shown).all() and shown.max() == 0.0


def test_median_stretches_above_the_sky_to_the_percentile_and_keeps_the_sky_grey():
    frame = block_means(sky(6, (800, 1000), stars=200), 8)
    plain = stretch(frame, "linear", 99.0)
    shown = stretch(frame, "linear", 99.0, median=True)
    assert np.median(shown) == pytest.approx(np.median(plain), abs=0.01)
    assert np.mean(shown >= 1.0) == pytest.approx(0.01, abs=0.003)
    below = plain < np.median(plain) - 0.01
    np.testing.assert_array_equal(shown[below], plain[below])

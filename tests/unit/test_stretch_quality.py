"""Our pictures against a fits2image-style render (bench/stretch_reference.py: LCO's scaling, zscale
limits on the frame's own pixels, linear, then Pillow's thumbnail) on the reference frames, at 200, 800
and 1600 pixels, through the image API's own code (reduce_fits + fits_picture):

- the share of (near-)black pixels (≤ 5 of 255) within 3 points of the reference's: no black plane;
- the sky's grey (the picture's median) a dark grey, 15-60;
- pixels at white at most 1.5× the reference's: star cores are not blown out.

`python -m bench.stretch_reference` prints the same figures as a table.
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import pytest

from archive.formats.fits_data import reduce_fits
from archive.formats.jpeg import fit_size
from archive.render.params import RenderParams
from archive.render.picture import fits_picture
from bench.stretch_reference import (
    MAKERS,
    SIZES,
    fits2image_picture,
    fits_bytes,
    our_picture,
    picture_figures,
    reference_frame,
)


@cache
def body(name: str) -> bytes:
    return fits_bytes(reference_frame(name).data)


@pytest.mark.parametrize("name", list(MAKERS))
def test_our_zscale_picture_has_the_references_dark_share_a_grey_sky_and_no_more_white(name):
    for size in SIZES:
        ref = picture_figures(fits2image_picture(body(name), (size, size)))
        ours = picture_figures(our_picture(body(name), (size, size)))
        where = f"{name} at {size} px: ours {ours}, reference {ref}"
        assert abs(ours["dark"] - ref["dark"]) <= 0.03, where
        assert 15 <= ours["sky"] <= 60, where
        assert ours["white"] <= 1.5 * ref["white"], where


@pytest.mark.parametrize("options", [{"stretch": "asinh"}, {"stretch": "linear"}, {"median": True},
                                     {"stretch": "asinh", "median": True}])
@pytest.mark.parametrize("name", ["gradient-10", "galaxy", "nan-regions", "eight-bit"])
def test_every_stretch_shows_a_grey_sky_without_a_black_plane(name, options):
    size = 800
    ref = picture_figures(fits2image_picture(body(name), (size, size)))
    ours = picture_figures(our_picture(body(name), (size, size), **options))
    where = f"{name} {options}: ours {ours}, reference {ref}"
    assert ours["dark"] <= ref["dark"] + 0.03, where
    assert 15 <= ours["sky"] <= 60, where


def test_a_sky_gradient_shows_as_a_smooth_ramp_without_an_edge():
    picture = np.asarray(our_picture(body("gradient-10"), (800, 800)), dtype=float)
    profile = np.median(picture, axis=0)  # the sky rises along the columns
    assert profile[-20:].mean() - profile[:20].mean() > 10, "the gradient is visible"
    assert np.abs(np.diff(profile)).max() <= 3, "and has no step in it"


def test_faint_nebulosity_is_lifted_out_of_the_sky():
    picture = np.asarray(our_picture(body("nebula"), (800, 800)), dtype=float)[::-1]  # back to FITS rows
    rows, cols = picture.shape
    core = np.median(picture[int(rows * 0.4):int(rows * 0.5), int(cols * 0.35):int(cols * 0.45)])
    corner = np.median(picture[:rows // 10, :cols // 10])
    assert core - corner >= 10, (core, corner)


def test_a_colour_composite_has_a_neutral_dark_grey_sky():
    frames = [reduce_fits(io.BytesIO(body(name)), "fits", lambda w, h: fit_size(w, h, 400, 400), max_pixels=10**9,
                          header_limit=2880 * 100) for name in ("flat", "gradient-4", "eight-bit")]
    pixels = np.asarray(fits_picture(frames, RenderParams(width=400, height=400, color=True)), dtype=float)
    sky = np.median(pixels.reshape(-1, 3), axis=0)
    assert all(15 <= grey <= 60 for grey in sky), sky
    assert sky.max() - sky.min() <= 20, sky
    assert np.mean(pixels.max(axis=2) <= 5) < 0.01

"""Picture geometry and labels of the image API (no AWS)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from archive.formats.fits_data import Reduced
from archive.formats.jpeg import fit_size
from archive.render.params import RenderParams, Unrenderable
from archive.render.picture import centre_crop, draw_label, fits_picture


@pytest.mark.parametrize("size,box,expected", [
    ((4096, 4096), (200, 200), (200, 200)),
    ((4000, 3000), (200, 200), (200, 150)),
    ((3000, 4000), (200, 200), (150, 200)),
    ((4000, 3000), (100, 400), (100, 75)),
    ((4000, 3000), (400, 100), (133, 100)),
    ((150, 100), (200, 200), (150, 100)),  # never enlarged
    ((10000, 10), (200, 200), (200, 1)),  # a sliver keeps at least one pixel
])
def test_pictures_fit_the_box_keeping_their_aspect(size, box, expected):
    assert fit_size(*size, *box) == expected


def test_centre_crop_keeps_the_middle_that_every_plane_has():
    wide, tall = np.arange(150 * 200).reshape(150, 200), np.arange(200 * 150).reshape(200, 150)
    cropped = centre_crop([wide, tall])
    assert [c.shape for c in cropped] == [(150, 150), (150, 150)]
    assert cropped[0][0, 0] == wide[0, 25] and cropped[1][0, 0] == tall[25, 0]


@pytest.mark.parametrize("mode,size", [("L", (200, 150)), ("RGB", (200, 150)), ("L", (20, 16))])
def test_labels_stay_inside_the_picture_lower_left(mode, size):
    picture = Image.new(mode, size)
    labelled = np.asarray(draw_label(picture.copy(), "M 42 — 300 s in rp, a long label that will not fit"))
    drawn = np.argwhere(labelled.reshape(size[1], size[0], -1).max(axis=2) > 0)
    assert drawn.size, "something was drawn"
    assert drawn[:, 0].min() >= size[1] // 3 and drawn[:, 1].min() <= size[0] // 4, "in the lower-left corner"
    assert drawn[:, 1].max() < size[0] - 1 and drawn[:, 0].max() < size[1] - 1, "nothing runs off the edge"


def test_no_label_leaves_the_picture_alone():
    picture = Image.new("L", (50, 50), 7)
    assert np.asarray(draw_label(picture, "")).max() == 7


def test_colour_planes_make_an_rgb_picture_and_nothing_finite_is_unrenderable():
    rng = np.random.default_rng(1)
    frames = [Reduced(rng.normal(100, 5, (30, 40)).astype(np.float32), 40, 30, 1) for _ in range(3)]
    picture = fits_picture(frames, RenderParams(width=40, height=40))
    assert (picture.mode, picture.size) == ("RGB", (40, 30))
    empty = Reduced(np.full((30, 40), np.nan, np.float32), 40, 30, 1)
    with pytest.raises(Unrenderable, match="no finite pixels"):
        fits_picture([empty], RenderParams())


def label_pixels(text: str) -> np.ndarray:
    return np.asarray(draw_label(Image.new("L", (400, 300)), text))


TOFU = label_pixels("\U000f0000")  # a private-use character: no font has it, it draws as the missing-glyph box


@pytest.mark.parametrize("glyph", ["H", "α", "—", "°", "★", "☉", "Å"])
def test_labels_draw_latin_greek_and_symbols_as_glyphs_not_boxes(glyph):
    drawn = label_pixels(glyph)
    assert drawn.max() > 200 and not np.array_equal(drawn, TOFU), f"{glyph!r} drew the missing-glyph box"


def test_the_bundled_font_has_no_cjk_so_those_draw_as_boxes():
    """The limit chosen (archive/render/picture.py): a CJK font would be 5-20 MB in the Lambda zip."""
    assert np.array_equal(label_pixels("星"), TOFU)


def test_a_label_with_a_non_breaking_space_draws_like_one_with_a_space():
    assert np.array_equal(label_pixels("M\u00a042"), label_pixels("M 42"))

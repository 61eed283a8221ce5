"""The image API's parameters: every bad value is a 400 naming its parameter; the cache key is canonical."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archive.render.params import (
    PERCENTILE_STRETCHES,
    STRETCHES,
    BadParameter,
    RenderParams,
    SourceRef,
    cache_key,
    canonical_document,
    parse_params,
)
from archive.render.stretch import stretch

ROOT = Path(__file__).resolve().parents[2]
BASE = "sro-kb001ms-20220629-00010442"
SMALL = (SourceRef(f"data/{BASE}-EX10.fits", '"abc"', 100),)


@pytest.mark.parametrize("query,param", [
    ({"width": "15"}, "width"), ({"width": "4001"}, "width"), ({"width": "abc"}, "width"), ({"width": ""}, "width"),
    ({"width": "200.5"}, "width"), ({"width": "1e3"}, "width"), ({"width": "200,300"}, "width"),
    ({"height": "-200"}, "height"), ({"height": "0x10"}, "height"), ({"height": "٣٠٠"}, "height"),
    ({"quality": "9"}, "quality"), ({"quality": "96"}, "quality"), ({"quality": "high"}, "quality"),
    ({"label": "x" * 101}, "label"), ({"label": "two\nlines"}, "label"), ({"label": "bell\x07"}, "label"),
    ({"image": "maybe"}, "image"), ({"image": "on"}, "image"), ({"image": ""}, "image"), ({"median": "2"}, "median"),
    ({"color": "True!"}, "color"), ({"percentile": "nan"}, "percentile"), ({"percentile": "inf"}, "percentile"),
    ({"percentile": "49.9"}, "percentile"), ({"percentile": "100.1"}, "percentile"),
    ({"percentile": "p99"}, "percentile"), ({"label": "rtl\u202eoverride"}, "label"),
    ({"label": "para\u2029graph"}, "label"), ({"label": "private\ue000"}, "label"),
    ({"source": "fits"}, "source"), ({"stretch": "log"}, "stretch"), ({"widht": "300"}, "widht"),
    ({"r": BASE, "g": BASE, "b": BASE}, "r"), ({"color": "true", "r": BASE, "g": BASE}, "b"),
    ({"color": "true", "r": "nope", "g": BASE, "b": BASE}, "r"),
    ({"source": "jpg", "stretch": "asinh"}, "stretch"), ({"source": "jpg", "median": "true"}, "median"),
    ({"source": "jpg", "color": "yes"}, "color"), ({"source": "jpg", "percentile": "99"}, "percentile"),
])
def test_every_bad_value_is_refused_naming_its_parameter(query, param):
    with pytest.raises(BadParameter) as caught:
        parse_params(query)
    assert caught.value.http_status == 400
    payload = caught.value.payload()
    assert payload["param"] == param and payload["message"]


def test_defaults_are_the_reference_services():
    params = parse_params({})
    assert (params.width, params.height, params.quality, params.percentile) == (200, 200, 80, 99.5)
    assert (params.label, params.image, params.median, params.color) == ("", False, False, False)
    assert (params.source, params.stretch, params.channels, params.fits_only_given) == ("auto", "zscale", None, ())


@pytest.mark.parametrize("raw,value", [("true", True), ("1", True), ("yes", True), ("YES", True), ("false", False),
                                       ("0", False), ("no", False), ("False", False)])
def test_booleans_have_one_spelling_each_way(raw, value):
    assert parse_params({"median": raw}).median is value


def test_good_values_are_normalised():
    params = parse_params({"width": " 300", "height": "4000", "quality": "95", "label": "M 42 — rp", "image": "1",
                           "percentile": "99.50", "source": "Large", "stretch": "ASINH", "color": "yes",
                           "r": f"{BASE} ", "g": BASE, "b": BASE})
    assert (params.width, params.height, params.quality, params.percentile) == (300, 4000, 95, 99.5)
    assert (params.source, params.stretch, params.image) == ("large", "asinh", True)
    assert params.channels == (BASE, BASE, BASE)
    assert params.fits_only_given == ("stretch", "color"), "percentile=99.50 is the default"


def test_only_fits_only_options_that_are_on_count():
    assert parse_params({"median": "false", "color": "no"}).fits_only_given == ()
    assert parse_params({"median": "true"}).fits_only_given == ("median",)


def test_the_cache_key_changes_with_what_changes_the_pixels_and_nothing_else():
    key = cache_key(BASE, parse_params({}), SMALL, True)
    assert key.startswith(f"thumbnails/{BASE}/") and key.endswith(".jpg") and len(key.rsplit("/", 1)[1]) == 64 + 4
    assert cache_key(BASE, parse_params({"image": "true"}), SMALL, True) == key, "image= only changes the answer"
    assert cache_key(BASE, parse_params({"width": "200", "percentile": "99.50"}), SMALL, True) == key
    assert cache_key(BASE, parse_params({"width": "201"}), SMALL, True) != key
    assert cache_key(BASE, parse_params({"label": "x"}), SMALL, True) != key
    reuploaded = (SourceRef(SMALL[0].key, '"def"', 100),)
    assert cache_key(BASE, parse_params({}), reuploaded, True) != key, "a new ETag is a new picture"


def test_fits_only_options_do_not_split_the_cache_of_a_jpg_render():
    jpg = (SourceRef(f"data/{BASE}-EX10.jpg", '"e"', 10),)
    plain = canonical_document(RenderParams(), jpg, False)
    assert canonical_document(RenderParams(stretch="asinh"), jpg, False) == plain


def test_the_cache_key_is_the_same_in_every_process_whatever_the_hash_seed():
    program = (
        "from archive.render.params import cache_key, parse_params, SourceRef\n"
        f"print(cache_key({BASE!r}, parse_params({{'width': '300', 'label': 'M 42', 'stretch': 'asinh'}}),"
        f" (SourceRef('data/{BASE}-EX10.fits', '\"abc\"', 100),), True))"
    )
    keys = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        keys.add(subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True,
                                check=True).stdout.strip())
    expected = cache_key(BASE, parse_params({"width": "300", "label": "M 42", "stretch": "asinh"}), SMALL, True)
    assert keys == {expected}


@pytest.mark.parametrize("label", ["M\u00a042", "Hα 656 nm — 3° ★", "NGC 7000 星雲", "θ¹ Ori C ± 0.1″", "é\u0301"])
def test_any_printable_unicode_is_a_label(label):
    assert parse_params({"label": label}).label == label


def test_an_explicit_default_is_not_a_fits_only_option():
    assert parse_params({"stretch": "zscale", "percentile": "99.5", "median": "no", "color": "0"}).fits_only_given == ()
    assert parse_params({"stretch": "zscale", "source": "jpg"}).source == "jpg", "no 400: a JPG is drawn so anyway"
    assert parse_params({"percentile": "98"}).fits_only_given == ("percentile",)


@pytest.mark.parametrize("raw,snapped", [("98.01", 98.0), ("98.02", 98.0), ("98.06", 98.1), ("50.04", 50.0),
                                         ("98.97", 99.0), ("99.504", 99.5), ("99.51", 99.51), ("99.95", 99.95),
                                         ("99.996", 100.0), ("100", 100.0)])
def test_percentile_is_snapped_to_its_grid(raw, snapped):
    assert parse_params({"percentile": raw}).percentile == snapped


def key(query: dict, sources=SMALL, for_fits=True) -> str:
    return cache_key(BASE, parse_params(query), sources, for_fits)


def test_percentile_keys_where_it_changes_the_picture_and_on_its_grid_only():
    assert key({"stretch": "asinh", "percentile": "98.01"}) == key({"stretch": "asinh", "percentile": "98.02"})
    assert key({"stretch": "asinh", "percentile": "98.0"}) != key({"stretch": "asinh", "percentile": "98.1"})
    assert key({"stretch": "linear", "percentile": "99.5"}) != key({"stretch": "linear", "percentile": "99.51"})
    assert key({"percentile": "90"}) == key({"percentile": "99.9"}) == key({}), "zscale finds its own white point"
    assert key({"percentile": "90", "median": "true"}) != key({"percentile": "99.9", "median": "true"})


def test_the_stretches_that_key_the_percentile_are_those_that_read_it():
    """PERCENTILE_STRETCHES must follow archive/render/stretch.py: a stretch left out of it would share
    one object between pictures that differ."""
    rng = np.random.default_rng(5)
    frame = rng.normal(1000, 20, (120, 160)).astype(np.float32)
    frame[rng.integers(0, 120, 60), rng.integers(0, 160, 60)] += rng.uniform(500, 20000, 60).astype(np.float32)
    for name in STRETCHES:
        differs = not np.array_equal(stretch(frame, name, 90.0), stretch(frame, name, 99.9))
        assert differs == (name in PERCENTILE_STRETCHES), name


def test_a_fits_picture_of_known_size_is_keyed_by_the_size_it_comes_out_at():
    sized = (SourceRef(SMALL[0].key, SMALL[0].etag, 100, dimensions=(400, 300)),)
    assert key({"width": "200", "height": "200"}, sized) == key({"width": "200", "height": "150"}, sized)
    assert key({"width": "200", "height": "200"}, sized) != key({"width": "201", "height": "200"}, sized)
    assert key({"width": "4000", "height": "4000"}, sized) == key({"width": "400", "height": "300"}, sized)
    jpg = (SourceRef(f"data/{BASE}-EX10.jpg", '"e"', 10, dimensions=(400, 300)),)
    assert key({"width": "200", "height": "200"}, jpg, False) != key({"width": "200", "height": "150"}, jpg, False), \
        "a JPG's EXIF orientation may turn it: its box stays in the key"


def test_a_colour_composite_is_keyed_under_its_set_whichever_member_was_asked_for():
    bases = [f"tst-kb001ms-20260101-{n:08d}" for n in (12, 11, 13)]
    frames = tuple(SourceRef(f"data/{b}-EX10.fits", '"x"', 10) for b in bases)
    params = parse_params({"color": "true"})
    keys = {cache_key(b, params, frames, True) for b in bases}
    assert keys == {cache_key(bases[0], params, frames, True)}
    assert keys.pop().startswith("thumbnails/tst-kb001ms-20260101-00000011/"), "under the set's earliest frame"

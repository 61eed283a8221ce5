"""The image API's parameters: every bad value is a 400 naming its parameter; the cache key is canonical."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from archive.render.params import BadParameter, RenderParams, SourceRef, cache_key, canonical_document, parse_params

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
    ({"percentile": "p99"}, "percentile"),
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

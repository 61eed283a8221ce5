"""Fuzzing the image API's inputs: no source's bytes and no query parameter may end in a 500.

Sources: small valid `.fits`, `.fits.bz2` and `.fits.fz` files (every tile compression astropy writes)
mutated by hypothesis: structure keywords rewritten with absurd or garbage values, bytes flipped, the
file cut short. Each is reduced and rendered as the image API does (archive.formats.fits_data, then
archive.render.picture): the only failures allowed are the data's own — `Unreadable` (422) or
`TooLarge` (413) from the formats, `Unrenderable` from the picture. Anything else is a 500 in the API.

Parameters: any text for every query parameter and for the path's filename parses or is a 400
(`BadParameter`); the viewer's `limit` likewise.

RENDER_FUZZ_EXAMPLES sets the examples per property (300 in the suite; the closing note of issue 18
gives the count run outside it).
"""

from __future__ import annotations

import bz2
import io
import os
import re

import numpy as np
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from archive.errors import TooLarge, Unreadable
from archive.formats.fits_data import reduce_fits
from archive.formats.jpeg import fit_size
from archive.local.viewer import strict_int
from archive.render import picture
from archive.render.params import KNOWN, BadParameter, RenderError, parse_params
from archive.render.sources import parse_target

EXAMPLES = int(os.environ.get("RENDER_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BUDGET = dict(max_pixels=2_000_000, header_limit=2880 * 20, max_axis=50_000, max_data_bytes=16 << 20,
              max_tile_bytes=8 << 20)


def _sky(shape: tuple[int, int], dtype: type, seed: int = 3) -> np.ndarray:
    data = np.random.default_rng(seed).normal(1000, 30, shape)
    return (np.abs(data) % 4000).astype(dtype) if dtype is np.int16 else data.astype(dtype)


def _bytes(hdus: list) -> bytes:
    out = io.BytesIO()
    fits.HDUList(hdus).writeto(out)
    return out.getvalue()


def _fz(compression: str, dtype: type, **options: object) -> bytes:
    data = _sky((24, 40), dtype)
    return _bytes([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type=compression, tile_shape=(8, 40),
                                                        **options)])


SEEDS: dict[str, tuple[str, bytes]] = {
    "fits-f32": ("fits", _bytes([fits.PrimaryHDU(_sky((24, 40), np.float32))])),
    "fits-i16": ("fits", _bytes([fits.PrimaryHDU(_sky((24, 40), np.int16))])),
    "fits-ext": ("fits", _bytes([fits.PrimaryHDU(), fits.ImageHDU(_sky((24, 40), np.float64))])),
    "fz-rice": ("fits.fz", _fz("RICE_1", np.int16)),
    "fz-gzip1-float": ("fits.fz", _fz("GZIP_1", np.float32)),
    "fz-gzip2-lossless": ("fits.fz", _fz("GZIP_2", np.float32, quantize_level=0)),
    "fz-hcompress": ("fits.fz", _fz("HCOMPRESS_1", np.int16)),
    "fz-plio": ("fits.fz", _fz("PLIO_1", np.int16)),
    "fz-dither2": ("fits.fz", _fz("RICE_1", np.float32, quantize_method=2)),
    "fz-none": ("fits.fz", _fz("NOCOMPRESS", np.float32, quantize_level=0)),
}
KEYWORDS = ["SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "BSCALE", "BZERO", "BLANK", "XTENSION",
            "PCOUNT", "GCOUNT", "THEAP", "TFIELDS", "TFORM1", "TTYPE1", "TFORM2", "TTYPE2", "ZIMAGE", "ZBITPIX",
            "ZNAXIS", "ZNAXIS1", "ZNAXIS2", "ZTILE1", "ZTILE2", "ZCMPTYPE", "ZQUANTIZ", "ZDITHER0", "ZNAME1",
            "ZVAL1", "ZNAME2", "ZVAL2", "ZBLANK"]
NUMBERS = st.one_of(st.integers(-3, 70), st.integers(-(2**40), 2**40), st.integers(-(10**60), 10**60),
                    st.sampled_from([0, 1, 8, 16, 32, 64, -32, -64, 2**31, 2**31 - 1, 2**63, 10**9]))
VALUES = st.one_of(
    NUMBERS.map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: repr(v).upper()),
    st.sampled_from(["T", "F", "''", "'RICE_1'", "'GZIP_2'", "'HCOMPRESS_1'", "'PLIO_1'", "'NOCOMPRESS'", "'BOGUS'",
                     "'1PB(10)'", "'1QB(10)'", "'1PE(3)'", "'1D'", "'1J'", "'COMPRESSED_DATA'", "'ZSCALE'",
                     "'GZIP_COMPRESSED_DATA'", "'UNCOMPRESSED_DATA'", "'SUBTRACTIVE_DITHER_2'", "'BINTABLE'",
                     "'IMAGE'", "1E400", "1D308", "-0", "NaN", "'BYTEPIX'", "'BLOCKSIZE'", "'SCALE'"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)


def rewrite(body: bytes, keyword: str, value: str, occurrence: int) -> bytes:
    """`body` with the value of the `occurrence`-th card `keyword` (on a card boundary) replaced."""
    found = [m.start() for m in re.finditer(re.escape(f"{keyword:<8}").encode(), body) if m.start() % 80 == 0]
    if not found:
        return body
    at = found[occurrence % len(found)]
    card = (f"{keyword:<8}= {value}" if keyword != "END" else value)[:80].ljust(80).encode("ascii", "replace")
    return body[:at] + card + body[at + 80:]


@st.composite
def hostile_sources(draw: st.DrawFn) -> tuple[str, bytes]:
    seed = draw(st.sampled_from(sorted(SEEDS)))
    ext, body = SEEDS[seed]
    for _ in range(draw(st.integers(0, 4))):
        body = rewrite(body, draw(st.sampled_from(KEYWORDS)), draw(VALUES), draw(st.integers(0, 3)))
    if draw(st.booleans()):  # flip bytes, mostly in the data (the tiles of a .fz are at its end)
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.one_of(st.integers(len(body) * 2 // 3, len(body) - 1), st.integers(0, len(body) - 1)))
            body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1:]
    if draw(st.integers(0, 4)) == 0:
        body = body[:draw(st.integers(0, len(body)))]
    if ext == "fits" and draw(st.integers(0, 2)) == 0:
        ext, body = "fits.bz2", bz2.compress(body, 1)
        if draw(st.booleans()):
            at = draw(st.integers(0, len(body) - 1))
            body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1:]
    return ext, body


def render(ext: str, body: bytes, box: tuple[int, int] = (64, 48)) -> bytes:
    """What the image API does with one source, minus S3: reduce, stretch, draw, encode."""
    params = parse_params({"width": str(box[0]), "height": str(box[1]), "label": "fuzz"})
    reduced = reduce_fits(io.BytesIO(body), ext, lambda w, h: fit_size(w, h, *box),
                          source_bytes=None if ext == "fits.bz2" else len(body), bz2_workers=1, **BUDGET)
    return picture.finish(picture.fits_picture([reduced], params), params)


@FUZZ
@given(source=hostile_sources())
def test_no_source_bytes_make_the_render_fail_other_than_as_the_datas_fault(source):
    ext, body = source
    try:
        render(ext, body)
    except (Unreadable, TooLarge) as exc:  # 422 / 413, with a reason
        assert exc.reason
    except RenderError as exc:  # Unrenderable (nothing to show) from the picture
        assert exc.http_status == 422, exc


def test_every_seed_renders_unmutated():
    for ext, body in SEEDS.values():
        jpeg = Image.open(io.BytesIO(render(ext, body)))
        assert jpeg.format == "JPEG" and jpeg.width <= 64 and jpeg.height <= 48, (ext, jpeg.size)


PARAM_TEXT = st.one_of(
    st.text(max_size=12),
    st.text(st.sampled_from("+-0123456789 ²¹⁰_.eE"), max_size=12),
    st.integers(-(10**12), 10**12).map(str),
    st.integers(1, 5000).map(lambda n: "9" * n),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "true", "FALSE", "yes", "small", "JPG", "auto ", "\x00", "٣"]),
)
QUERIES = st.dictionaries(st.one_of(st.sampled_from(KNOWN), st.text(max_size=8)), PARAM_TEXT, max_size=6)


@FUZZ
@given(query=QUERIES)
def test_any_query_parses_or_is_a_400_naming_the_parameter(query):
    try:
        params = parse_params(query)
    except BadParameter as exc:
        assert exc.http_status == 400 and "param" in exc.details and len(exc.reason) < 400
        return
    assert 16 <= params.width <= 4000 and 16 <= params.height <= 4000 and 10 <= params.quality <= 95


@FUZZ
@given(target=st.one_of(st.text(max_size=60),
                        st.from_regex(r"[a-z]{3}-[a-z0-9]{2,8}-20[0-9]{6}-[0-9]{8}(-[A-Z]{2}[0-9]{2}\.[a-z0-9.]{1,9})?",
                                      fullmatch=True)))
def test_any_path_names_an_exposure_or_is_a_400(target):
    try:
        parse_target(target)
    except BadParameter as exc:
        assert exc.http_status == 400


@FUZZ
@given(raw=PARAM_TEXT)
def test_the_viewers_limit_is_a_number_in_range_or_refused(raw):
    value = strict_int(raw, 1, 500)
    assert value is None or (1 <= value <= 500 and str(value) == raw.strip().lstrip("0"))

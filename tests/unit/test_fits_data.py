"""FITS frames reduced in bands: the same block means numpy gives on the whole frame, for every
container (.fits streamed, .fits.bz2, .fits.fz), pixel type and scaling; bad frames refused clearly."""

from __future__ import annotations

import bz2
import io

import numpy as np
import pytest
from astropy.io import fits

from archive.errors import TooLarge, Unreadable
from archive.formats import fits_data
from archive.formats.fits_data import BlockMeans, Layout, reduce_fits, reduction_factor
from archive.formats.fz_tiles import _column_dtype
from archive.formats.headers import parse_header

BUDGET = dict(max_pixels=10**8, header_limit=2880 * 100)


def frame(shape: tuple[int, int] = (203, 317), seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(1000, 30, shape).astype(np.float32)


def block_means(data: np.ndarray, factor: int) -> np.ndarray:
    """Reference: numpy on the whole frame in float64, edge blocks averaging what they have; blocks of
    3×3 and up leave their brightest pixel out."""
    rows, cols = data.shape
    out = np.empty((-(-rows // factor), -(-cols // factor)))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = data[i * factor:(i + 1) * factor, j * factor:(j + 1) * factor].astype(np.float64)
            finite = block[np.isfinite(block)]
            if finite.size > 1 and factor >= fits_data.REJECT_FROM_FACTOR:
                out[i, j] = (finite.sum() - finite.max()) / (finite.size - 1)
            else:
                out[i, j] = finite.mean() if finite.size else np.nan
    return out


def as_bytes(hdus: list) -> bytes:
    out = io.BytesIO()
    fits.HDUList(hdus).writeto(out)
    return out.getvalue()


def containers(data: np.ndarray, header: fits.Header | None = None) -> dict[str, bytes]:
    plain = as_bytes([fits.PrimaryHDU(data, header=header)])
    compressed = as_bytes([fits.PrimaryHDU(), fits.CompImageHDU(data, header=header, compression_type="RICE_1")
                           if data.dtype.kind in "iu" else
                           fits.CompImageHDU(data, header=header, compression_type="GZIP_2")])
    return {"fits": plain, "fits.bz2": bz2.compress(plain, 1), "fits.fz": compressed}


def reduce(body: bytes, ext: str, target: tuple[int, int] = (40, 40)):
    return reduce_fits(io.BytesIO(body), ext, lambda w, h: target, **BUDGET)


def stored(body: bytes, ext: str) -> np.ndarray:
    """The frame as astropy reads it back (a float .fz is quantised: the format's loss, not ours)."""
    with fits.open(io.BytesIO(bz2.decompress(body) if ext == "fits.bz2" else body)) as hdul:
        return next(h.data for h in hdul if h.data is not None).astype(np.float32)


@pytest.mark.parametrize("ext", ["fits", "fits.bz2", "fits.fz"])
def test_every_container_reduces_to_the_block_means_of_the_frame(ext):
    body = containers(frame())[ext]
    data = stored(body, ext)
    reduced = reduce(body, ext)
    assert (reduced.width, reduced.height, reduced.factor) == (317, 203, 7)
    assert reduced.data.dtype == np.float32 and reduced.data.shape == (29, 46)
    np.testing.assert_allclose(reduced.data, block_means(data, 7), rtol=1e-5)


@pytest.mark.parametrize("ext", ["fits", "fits.bz2", "fits.fz"])
def test_sixteen_bit_frames_with_bzero_come_out_in_physical_units(ext):
    counts = np.random.default_rng(2).integers(0, 65535, (64, 96)).astype(np.uint16)  # stored with BZERO=32768
    reduced = reduce(containers(counts)[ext], ext, (96, 64))
    assert reduced.factor == 1
    np.testing.assert_array_equal(reduced.data, counts.astype(np.float32))


def test_bscale_and_blank_pixels_are_applied_and_blanks_left_out():
    raw = np.random.default_rng(3).integers(-1000, 1000, (30, 40)).astype(np.int16)
    raw[0:4, 0:4] = -32768
    raw[10, 10] = -32768
    header = fits.Header([("SIMPLE", True), ("BITPIX", 16), ("NAXIS", 2), ("NAXIS1", 40), ("NAXIS2", 30),
                          ("BSCALE", 0.5), ("BZERO", 100.0), ("BLANK", -32768)])
    pixels = raw.astype(">i2").tobytes()
    body = header.tostring().encode() + pixels + b"\0" * (-len(pixels) % 2880)
    reduced = reduce(body, "fits", (10, 10))
    physical = np.where(raw == -32768, np.nan, raw * 0.5 + 100.0)
    assert np.isnan(reduced.data[0, 0])
    np.testing.assert_allclose(reduced.data, block_means(physical, 4), rtol=1e-5)


@pytest.mark.parametrize("ext", ["fits", "fits.fz"])
def test_nan_and_inf_pixels_are_left_out_of_the_means(ext):
    data = frame((60, 80))
    data[0:8, 0:8] = np.nan
    data[20:23, 40:43] = np.inf
    data[50, :] = -np.inf
    body = containers(data)[ext]
    data = stored(body, ext)
    reduced = reduce(body, ext, (10, 10))
    assert np.isnan(reduced.data[0, 0]) and np.isfinite(reduced.data[1:]).all()
    finite = np.where(np.isfinite(data), data, np.nan)
    np.testing.assert_allclose(reduced.data, block_means(finite, 8), rtol=1e-5)


def test_an_image_in_the_first_extension_is_found_when_the_primary_is_empty():
    data = frame((50, 70))
    body = as_bytes([fits.PrimaryHDU(), fits.ImageHDU(data)])
    np.testing.assert_allclose(reduce(body, "fits", (70, 50)).data, data)


def test_a_cube_of_one_plane_is_an_image_and_of_several_is_refused():
    plane = frame((20, 30))
    assert reduce(as_bytes([fits.PrimaryHDU(plane[None])]), "fits", (30, 20)).data.shape == (20, 30)
    with pytest.raises(Unreadable, match="3-D cube"):
        reduce(as_bytes([fits.PrimaryHDU(np.stack([plane, plane, plane]))]), "fits")


@pytest.mark.parametrize("body,ext,match", [
    (as_bytes([fits.PrimaryHDU(np.arange(50, dtype=np.float32))]), "fits", "not 2-D"),
    (as_bytes([fits.PrimaryHDU()]), "fits", "no image"),
    (as_bytes([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])]),
     "fits", "BINTABLE"),
    (b"not a fits file at all" * 200, "fits", "not a FITS file"),
    (b"", "fits", "empty"),
    (as_bytes([fits.PrimaryHDU(frame((40, 40)))])[:2880 + 3000], "fits", "truncated"),
    (bz2.compress(b"x" * 10000), "fits.bz2", "not a FITS file"),
    (b"BZh9 not really", "fits.bz2", "bzip2"),
    (b"SIMPLE  =                    T" + b" " * 50, "fits.fz", "truncated"),
    (as_bytes([fits.PrimaryHDU(frame((10, 10)))]), "fits.fz", "no tile-compressed image"),
])
def test_unrenderable_data_is_refused_with_the_reason(body, ext, match):
    with pytest.raises(Unreadable, match=match):
        reduce(body, ext)


def test_frames_over_the_pixel_budget_are_refused_before_their_data_is_read():
    body = containers(frame((100, 100)))
    for ext in ("fits", "fits.fz"):
        with pytest.raises(TooLarge, match="100×100 = 10000 pixels"):
            reduce_fits(io.BytesIO(body[ext]), ext, lambda w, h: (10, 10), max_pixels=9999, header_limit=2880 * 10)
    truncated_after_header = body["fits"][:2880]
    with pytest.raises(TooLarge):
        reduce_fits(io.BytesIO(truncated_after_header), "fits", lambda w, h: (10, 10), max_pixels=9999,
                    header_limit=2880 * 10)


def test_band_boundaries_do_not_change_the_means(monkeypatch):
    data = frame((97, 53))
    reduced = reduce(containers(data)["fits"], "fits", (10, 10))
    expected = reduced.data
    np.testing.assert_allclose(expected, block_means(data, reduced.factor), rtol=1e-5)
    monkeypatch.setattr(fits_data, "BAND_BYTES", 1)  # the smallest band: one row, summed block row by block row
    np.testing.assert_allclose(reduce(containers(data)["fits"], "fits", (10, 10)).data, expected, rtol=1e-6)
    means = BlockMeans(Layout(53, 97), reduced.factor)
    for start in range(0, 97, 7):  # bands that do not line up with blocks
        means.add(data[start:start + 7])
    np.testing.assert_allclose(means.result(), expected, rtol=1e-6)


def test_the_reduction_follows_the_axis_that_limits_the_fit():
    assert reduction_factor(4096, 4096, (200, 200)) == 20
    assert reduction_factor(4096, 2048, (200, 100)) == 20
    assert reduction_factor(100, 100, (200, 200)) == 1
    assert reduction_factor(4000, 100, (200, 5)) == 20
    assert reduction_factor(1, 10**7, (1, 200)) == 50_000  # a strip one pixel wide is still reduced
    assert reduction_factor(10**7, 1, (200, 1)) == 50_000


@pytest.mark.parametrize("compression,tile,dtype,options", [
    ("RICE_1", (317, 1), np.int16, {}),
    ("RICE_1", (50, 40), np.int32, {}),
    ("GZIP_1", (317, 7), np.float32, {"quantize_level": 16}),
    ("GZIP_2", (64, 64), np.float32, {"quantize_level": 0}),  # lossless floats
    ("GZIP_1", (317, 3), np.float64, {"quantize_level": 0}),
    ("PLIO_1", (100, 10), np.int16, {}),
    ("HCOMPRESS_1", (64, 64), np.int16, {}),
    ("RICE_1", (30, 20), np.float32, {"quantize_method": 2}),  # SUBTRACTIVE_DITHER_2
    ("NOCOMPRESS", (317, 5), np.float32, {"quantize_level": 0}),
])
def test_fz_tiles_decode_as_astropy_decodes_them(compression, tile, dtype, options):
    data = (frame() * (3 if dtype in (np.int16, np.int32) else 1)).astype(dtype)
    if compression == "PLIO_1":
        data = np.abs(data) % 1000
    body = as_bytes([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type=compression, tile_shape=tile[::-1],
                                                          **options)])
    reduced = reduce(body, "fits.fz", (317, 203))
    assert reduced.factor == 1
    np.testing.assert_allclose(reduced.data, stored(body, "fits.fz"), rtol=1e-6)



def test_a_large_bz2_is_decoded_as_it_streams_with_the_same_means(monkeypatch):
    body = containers(frame())["fits.bz2"]
    expected = reduce(body, "fits.bz2").data
    monkeypatch.setattr(fits_data, "BZ2_PARALLEL_MAX_BYTES", 0)  # every object counts as large
    streamed = reduce_fits(io.BytesIO(body), "fits.bz2", lambda w, h: (40, 40), source_bytes=len(body), **BUDGET)
    np.testing.assert_array_equal(streamed.data, expected)


def test_the_checkpoint_stops_the_reduction_between_bands(monkeypatch):
    monkeypatch.setattr(fits_data, "BAND_BYTES", 4 * 317 * 7)  # one block row a band
    calls = []

    class Stop(Exception):
        pass

    def checkpoint() -> None:
        calls.append(1)
        if len(calls) > 3:
            raise Stop

    for ext, body in containers(frame()).items():
        calls.clear()
        with pytest.raises(Stop):
            reduce_fits(io.BytesIO(body), ext, lambda w, h: (40, 40), checkpoint=checkpoint, **BUDGET)


@pytest.mark.parametrize("budget,limit", [
    ({"max_axis": 300}, "RENDER_MAX_AXIS"),
    ({"max_data_bytes": 100_000}, "RENDER_MAX_DATA_BYTES"),
    ({"max_tile_bytes": 1000}, "RENDER_MAX_TILE_BYTES"),
])
def test_each_budget_is_refused_from_the_headers_naming_its_setting(budget, limit):
    body = containers(frame())["fits.fz"]
    with pytest.raises(TooLarge, match=limit):
        reduce_fits(io.BytesIO(body[:2880 * 3]), "fits.fz", lambda w, h: (40, 40), **BUDGET, **budget)


def test_a_header_declaring_more_data_than_the_file_holds_is_refused_before_reading():
    body = containers(frame())["fits"]
    with pytest.raises(Unreadable, match="only"):
        reduce_fits(io.BytesIO(body), "fits", lambda w, h: (40, 40), source_bytes=len(body) - 2880, **BUDGET)


def test_huge_finite_values_stay_finite_and_are_not_lost():
    data = frame((40, 60)).astype(np.float64) * 1e300
    reduced = reduce(as_bytes([fits.PrimaryHDU(data)]), "fits", (10, 10))
    assert np.isfinite(reduced.data).all()
    assert reduced.data.max() == np.finfo(np.float32).max  # clipped to float32's range, not turned into inf


def test_fz_tiles_stored_out_of_order_decode_the_same():
    data = frame((40, 60))
    body = as_bytes([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="GZIP_1", tile_shape=(20, 60),
                                                          quantize_level=0)])
    start = body.index(b"XTENSION= 'BINTABLE'")
    end = body.index(b"END" + b" " * 77, start) + 80
    table_start = start + -(-(end - start) // 2880) * 2880
    header = parse_header(body[start:end])
    dtype, _ = _column_dtype(header)
    rows = np.frombuffer(body[table_start:table_start + 2 * dtype.itemsize], dtype=dtype).copy()
    heap_start = table_start + int(header.get("THEAP", str(2 * dtype.itemsize)))
    (n0, o0), (n1, o1) = (tuple(int(v) for v in rows["COMPRESSED_DATA"][i]) for i in range(2))
    assert o1 == o0 + n0
    first, second = body[heap_start + o0:heap_start + o0 + n0], body[heap_start + o1:heap_start + o1 + n1]
    rows["COMPRESSED_DATA"][0] = (n0, n1)  # tile 1's bytes now after tile 2's
    rows["COMPRESSED_DATA"][1] = (n1, 0)
    swapped = (body[:table_start] + rows.tobytes() + body[table_start + 2 * dtype.itemsize:heap_start]
               + second + first + body[heap_start + n0 + n1:])
    np.testing.assert_array_equal(reduce(swapped, "fits.fz", (60, 40)).data, reduce(body, "fits.fz", (60, 40)).data)


@pytest.mark.parametrize("ext", ["fits", "fits.bz2", "fits.fz"])
def test_a_sample_of_the_raw_pixels_comes_with_the_means(ext, monkeypatch):
    """Spread over the whole frame, in physical units, without NaN or BLANK: the display statistics'
    pixels at full resolution."""
    monkeypatch.setattr(fits_data, "SAMPLE_TARGET", 2000)
    rows, cols = 200, 300
    counts = (np.arange(rows)[:, None] * 1000 + np.arange(cols)[None, :]).astype(np.float32)  # value = position
    counts[:20] = np.nan
    reduced = reduce(containers(counts)[ext], ext, (30, 20))
    sample = reduced.sample
    assert 1000 <= sample.size <= 3000 and np.isfinite(sample).all()  # about the target
    if ext != "fits.fz":  # a float .fz is quantised; the positions are exact in the others
        y, x = np.divmod(sample.astype(np.int64), 1000)
        assert y.min() >= 20 and y.max() >= rows - 10 and x.min() <= 10 and x.max() >= cols - 10
        assert len(set(x.tolist())) > 100, "the sampled columns move from row to row"


def test_the_sample_of_scaled_integers_is_in_physical_units_without_blanks():
    raw = np.random.default_rng(3).integers(-1000, 1000, (30, 40)).astype(np.int16)
    raw[0:4, 0:4] = -32768
    header = fits.Header([("SIMPLE", True), ("BITPIX", 16), ("NAXIS", 2), ("NAXIS1", 40), ("NAXIS2", 30),
                          ("BSCALE", 0.5), ("BZERO", 100.0), ("BLANK", -32768)])
    pixels = raw.astype(">i2").tobytes()
    body = header.tostring().encode() + pixels + b"\0" * (-len(pixels) % 2880)
    sample = reduce(body, "fits", (10, 10)).sample
    physical = raw[raw != -32768] * 0.5 + 100.0
    assert sample.size == physical.size  # a small frame: every pixel
    np.testing.assert_allclose(np.sort(sample), np.sort(physical))


def test_a_hot_pixel_does_not_make_its_block_a_bright_dot_but_a_star_does():
    data = np.full((60, 60), 1000.0, np.float32)
    data[7, 7] = 60000.0  # a hot pixel
    data[31:34, 31:34] += 5000.0  # a star's core, 3×3
    reduced = reduce(containers(data)["fits"], "fits", (10, 10)).data  # blocks of 6×6
    assert reduced[1, 1] == pytest.approx(1000.0)
    assert reduced[5, 5] > 1000.0 + 5000.0 * 8 / 35 - 1

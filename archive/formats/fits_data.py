"""A FITS image reduced to about the size it will be shown at, in bounded memory.

Why not `astropy.io.fits.open(...).data`: that holds the whole frame, and the usual next step (float64,
as the reference service did) multiplies it by four: a 4k×4k 16-bit frame becomes 128 MB before a
single statistic. The picture we make is a few hundred pixels wide, so we never hold the frame:

- the data is read in bands of rows and averaged into blocks of `factor`×`factor` pixels as it arrives,
  in float32 sums straight from the stored integers (BSCALE/BZERO applied to the means; NaN, ±inf and
  BLANK pixels left out of each block's mean; a block with nothing left stays NaN), so memory is one
  band plus the reduced image;
- `.fits`: the object's body is streamed; headers are read by archive.formats.headers (no astropy: a Lambda
  serving JPEG renders or cache hits never imports it);
- `.fits.bz2`: decompressed on the fly, on the CPUs there are to spare (archive.formats.bz2_blocks);
- `.fits.fz`: astropy's tile decompression, all tiles in one pass into the stored pixel type (2 bytes a
  pixel for 16-bit data, no float copy of the frame), then reduced band by band like the others;
- while the bands pass, a sample of the raw pixels (about `SAMPLE_TARGET`, on a grid spread over the
  whole frame, in physical units, finite and not BLANK) is kept beside the block means: the display
  statistics (sky level, noise, zscale limits) must come from the data at full resolution, where the
  noise still dithers the sky, not from the averaged image, where it has been averaged away;
- the image is the primary HDU's, or the first image extension's when the primary has none. A frame
  that is not 2-D (a cube with more than one plane) or has no pixels is `Unreadable`; one over the
  pixel budget is `TooLarge`, refused from its header before any data is read.

Only the reduction is done here; the display stretch (archive.render.stretch) runs on the reduced image
with the statistics of the sample.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from archive import lazy
from archive.errors import TooLarge, Unreadable
from archive.formats.bz2_blocks import Bz2Error, decompress
from archive.formats.fits_header import card_int, data_size, find_end
from archive.formats.headers import Header, HeaderError, parse_header

FITS_BLOCK = 2880
CARD = 80
STREAM_CHUNK = 1 << 20
BAND_BYTES = 8 << 20  # float32 bytes per band of rows
REJECT_FROM_FACTOR = 3  # blocks this size and up leave their brightest pixel out (BlockMeans)
SAMPLE_TARGET = 1 << 18  # raw pixels kept for the statistics: 256 Ki, 1 MiB of float32
DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


@dataclass(frozen=True)
class Layout:
    """Where the pixels are and how to read them (FITS standard sections 4.4 and 5)."""

    width: int  # NAXIS1
    height: int  # NAXIS2
    bitpix: int = -32
    bscale: float = 1.0
    bzero: float = 0.0
    blank: int | None = None

    @property
    def row_bytes(self) -> int:
        return self.width * abs(self.bitpix) // 8


def _int(header: Mapping[str, str], key: str, default: int | None = None) -> int:
    try:
        return card_int(header, key, default, where="the FITS header")
    except HeaderError as exc:
        raise Unreadable(exc.reason) from None


def _float(header: Mapping[str, str], key: str, default: float) -> float:
    raw = header.get(key)
    if raw is None:
        return default
    try:
        return float(raw.replace("D", "E"))
    except ValueError:
        raise Unreadable(f"the FITS header's {key} is not a number: {raw!r}") from None


def image_dimensions(header: Mapping[str, str]) -> tuple[int, int]:
    """(width, height) of a 2-D image header; a cube counts if every axis past the second has length 1."""
    naxis = _int(header, "NAXIS")
    if naxis < 2:
        raise Unreadable(f"the FITS image is not 2-D (NAXIS = {naxis})")
    axes = [_int(header, f"NAXIS{i}") for i in range(1, naxis + 1)]
    if any(length != 1 for length in axes[2:]):
        shape = "×".join(map(str, axes))
        raise Unreadable(f"the FITS data is a {naxis}-D cube ({shape}); only 2-D images are rendered")
    if axes[0] < 1 or axes[1] < 1:
        raise Unreadable(f"the FITS image has no pixels ({axes[0]}×{axes[1]})")
    return axes[0], axes[1]


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise TooLarge(f"the image is {width}×{height} = {width * height} pixels, over the budget of {max_pixels}")


def layout_of(header: Mapping[str, str], max_pixels: int) -> Layout:
    width, height = image_dimensions(header)
    check_pixels(width, height, max_pixels)
    bitpix = _int(header, "BITPIX")
    if bitpix not in DTYPES:
        raise Unreadable(f"BITPIX = {bitpix} is not a FITS pixel type")
    blank = _int(header, "BLANK") if bitpix > 0 and "BLANK" in header else None
    return Layout(width, height, bitpix, _float(header, "BSCALE", 1.0), _float(header, "BZERO", 0.0), blank)


class ByteReader:
    """Exact-length reads over a sequence of byte chunks (an S3 body, a decompressor's output)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()

    def read(self, count: int) -> bytes:
        """`count` bytes, fewer only at the end of the data."""
        while len(self._buffer) < count:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        out = bytes(self._buffer[:count])
        del self._buffer[:count]
        return out

    def skip(self, count: int) -> None:
        while count > 0:
            got = len(self.read(min(count, STREAM_CHUNK)))
            if not got:
                return
            count -= got


def read_header(reader: ByteReader, limit: int, first: bool) -> Header:
    """One HDU's header cards (through END), leaving the reader at the start of its data."""
    text = bytearray()
    while True:
        block = reader.read(FITS_BLOCK)
        if len(block) < FITS_BLOCK:
            if not text and not block:
                raise Unreadable("the file is empty" if first else
                                   "the FITS file has no image: its primary HDU is empty and nothing follows")
            raise Unreadable("the FITS file ends inside a header (truncated?)")
        if not text:
            magic = b"SIMPLE  =" if first else b"XTENSION="
            if not block.startswith(magic):
                raise Unreadable(f"not a FITS file: it does not start with {magic.decode()!r}" if first
                                   else "the FITS file has no image: nothing follows an empty primary HDU")
        scan_from = max(0, len(text) - CARD)
        text += block
        end = find_end(text, scan_from)
        if end is not None:
            try:
                return parse_header(bytes(text[:end + CARD]))
            except HeaderError as exc:
                raise Unreadable(f"unreadable FITS header: {exc.reason}") from exc
        if len(text) >= limit:
            raise Unreadable(f"no END card in the first {limit} bytes of the FITS header")


def find_image(reader: ByteReader, header_limit: int, max_pixels: int) -> Layout:
    """The layout of the primary image, or of the first IMAGE extension when the primary has none."""
    header = read_header(reader, header_limit, first=True)
    if _int(header, "NAXIS", 0) == 0:
        header = read_header(reader, header_limit, first=False)
        kind = header.get("XTENSION", "").strip()
        if kind != "IMAGE":
            hint = " (a tile-compressed image: name the file .fits.fz)" if header.get("ZIMAGE") == "T" else ""
            raise Unreadable(f"the FITS file's first extension is a {kind or 'nameless'} HDU, not an image{hint}")
    try:
        data_size(header)
    except HeaderError as exc:
        raise Unreadable(exc.reason) from exc
    return layout_of(header, max_pixels)


def stored_rows(raw: bytes, layout: Layout, rows: int) -> lazy.np.ndarray:
    """`rows` rows of FITS pixels as stored (big-endian, no scaling): a view of `raw`, no copy."""
    count = rows * layout.width
    return lazy.np.frombuffer(raw, dtype=DTYPES[layout.bitpix], count=count).reshape(rows, layout.width)


def band_rows(width: int, factor: int) -> int:
    """Rows per band: a whole number of reduction blocks, about BAND_BYTES of float32."""
    blocks = max(1, BAND_BYTES // (4 * width * factor))
    return blocks * factor


def stream_bands(reader: ByteReader, layout: Layout, factor: int) -> Iterator[lazy.np.ndarray]:
    """The image's rows as stored, in bands read from the stream as they are needed."""
    step = band_rows(layout.width, factor)
    for start in range(0, layout.height, step):
        rows = min(step, layout.height - start)
        raw = reader.read(rows * layout.row_bytes)
        if len(raw) < rows * layout.row_bytes:
            raise Unreadable(f"the FITS data ends after {start + len(raw) // layout.row_bytes} of "
                               f"{layout.height} rows (truncated file?)")
        yield stored_rows(raw, layout, rows)


class PixelSample:
    """About SAMPLE_TARGET raw pixels of an image fed band by band, in physical units, finite only.

    A grid: every `step`-th row, and in it every `step`-th column from an offset that moves from row
    to row (a fixed offset would sample the same columns of a column pattern, bad columns included,
    all the way down). Chosen by position, not value, so the sample is as representative of the sky,
    the stars and the noise as the frame itself; NaN, ±inf and BLANK pixels are dropped.
    """

    def __init__(self, layout: Layout, target: int | None = None) -> None:
        np = lazy.np
        self.layout = layout
        target = SAMPLE_TARGET if target is None else target
        self.step = max(1, math.isqrt(layout.width * layout.height // max(1, target)))
        self._columns = np.arange(max(1, layout.width // self.step)) * self.step
        self._seen = 0  # rows received
        self._parts: list[lazy.np.ndarray] = []

    def add(self, band: lazy.np.ndarray) -> None:
        np = lazy.np
        step, first = self.step, self._seen
        self._seen += band.shape[0]
        rows = np.arange(-first % step, band.shape[0], step)
        if not rows.size:
            return
        offsets = ((first + rows) // step * 7 + step // 2) % step  # moves by 7 columns a sampled row
        columns = np.minimum(self._columns[None, :] + offsets[:, None], self.layout.width - 1)
        values = band[rows[:, None], columns].ravel()
        if values.dtype.kind in "iu":
            if self.layout.blank is not None:
                values = values[values != self.layout.blank]
            values = values.astype(np.float32)
        else:
            values = values.astype(np.float32)
            values = values[np.isfinite(values)]
        if self.layout.bscale != 1.0:
            values *= np.float32(self.layout.bscale)
        if self.layout.bzero != 0.0:
            values += np.float32(self.layout.bzero)
        self._parts.append(values)

    def result(self) -> lazy.np.ndarray:
        np = lazy.np
        return np.concatenate(self._parts) if self._parts else np.empty(0, np.float32)


class BlockMeans:
    """Averages of `factor`×`factor` blocks of an image fed band by band, in physical units.

    Bands come as stored: integers are summed as they are (they are always finite; BLANK pixels, when
    the header declares them, are left out) and BSCALE/BZERO applied to the means, which is the same
    as applying it to every pixel first, for a fraction of the work. Float pixels that are NaN or ±inf
    are left out. Edge blocks average what they have; a block with nothing left is NaN.

    From REJECT_FROM_FACTOR (3×3 blocks) up, each block's brightest pixel is left out of its mean. A
    hot pixel or a cosmic-ray hit is one pixel: averaged in, it would make its block a bright dot in
    the picture (a 0.2 %-hot frame at 300 pixels was peppered with them), where a renderer that
    stretches every pixel first (fits2image) clips it to white and averages it away. A star spans
    several pixels and keeps its block bright. Smaller blocks keep every pixel: leaving one of four
    out would lower the sky's noise-free level by a quarter of a σ.
    """

    def __init__(self, layout: Layout, factor: int) -> None:
        np = lazy.np
        self.layout, self.width, self.factor = layout, layout.width, factor
        self._starts = np.arange(0, layout.width, factor)
        self._widths = np.diff(np.append(self._starts, layout.width)).astype(np.float32)
        # Filled as the bands come (one copy of the reduced image, never a list of rows concatenated:
        # at factor 1 that is the whole frame twice).
        self._out = np.empty((-(-layout.height // factor), len(self._starts)), np.float32)
        self._filled = 0
        self._carry: lazy.np.ndarray | None = None
        self._sampler = PixelSample(layout)

    def add(self, band: lazy.np.ndarray) -> None:
        np = lazy.np
        self._sampler.add(band)
        if self._carry is not None:
            band = np.concatenate([self._carry, band])
            self._carry = None
        whole = band.shape[0] // self.factor * self.factor
        if whole:
            self._store(self._reduce(band[:whole], self.factor))
        if whole < band.shape[0]:
            self._carry = band[whole:]

    def _valid(self, band: lazy.np.ndarray) -> lazy.np.ndarray | None:
        """Which pixels count, or None when all of them do (the common case: no mask is built)."""
        np = lazy.np
        if band.dtype.kind in "iu":
            return None if self.layout.blank is None else band != self.layout.blank
        finite = np.isfinite(band)
        return None if finite.all() else finite

    def _reduce(self, band: lazy.np.ndarray, rows: int) -> lazy.np.ndarray:
        np = lazy.np
        groups = band.shape[0] // rows
        valid = self._valid(band)
        if self.factor == 1:  # a picture as large as the frame: the pixels themselves, no sums
            means = band.astype(np.float32)
            if valid is not None:
                means[~valid] = np.nan
            return self._scaled(means)
        shaped = band.reshape(groups, rows, self.width)
        if valid is None:
            sums = np.add.reduceat(shaped.sum(axis=1, dtype=np.float32), self._starts, axis=1)
            counts = np.float32(rows) * self._widths
            brightest = np.maximum.reduceat(shaped.max(axis=1), self._starts, axis=1).astype(np.float32)
        else:
            clean = np.where(valid, band, 0)
            sums = np.add.reduceat(clean.reshape(groups, rows, self.width).sum(axis=1, dtype=np.float32),
                                   self._starts, axis=1)
            counts = np.add.reduceat(valid.reshape(groups, rows, self.width).sum(axis=1, dtype=np.float32),
                                     self._starts, axis=1)
            lowest = -np.inf if band.dtype.kind == "f" else np.iinfo(band.dtype).min
            brightest = np.maximum.reduceat(np.where(valid, band, lowest).reshape(groups, rows, self.width)
                                            .max(axis=1), self._starts, axis=1).astype(np.float32)
        if self.factor >= REJECT_FROM_FACTOR:  # the brightest pixel of each block left out (see the docstring)
            many = counts > 1
            sums = np.where(many, sums - np.where(many, brightest, 0), sums)
            counts = np.where(many, counts - 1, counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.float32(np.nan))
        return self._scaled(means)

    def _scaled(self, means: lazy.np.ndarray) -> lazy.np.ndarray:
        np = lazy.np
        means = means.astype(np.float32, copy=False)
        if self.layout.bscale != 1.0:
            means *= np.float32(self.layout.bscale)
        if self.layout.bzero != 0.0:
            means += np.float32(self.layout.bzero)
        return means

    def sample(self) -> lazy.np.ndarray:
        """The raw pixels sampled so far (see PixelSample)."""
        return self._sampler.result()

    def result(self) -> lazy.np.ndarray:
        if self._carry is not None:
            self._store(self._reduce(self._carry, self._carry.shape[0]))
            self._carry = None
        return self._out[:self._filled]

    def _store(self, means: lazy.np.ndarray) -> None:
        end = self._filled + means.shape[0]
        if end > self._out.shape[0]:  # more rows than the header said: grow (never for a valid file)
            self._out = lazy.np.concatenate([self._out[:self._filled], means])
        else:
            self._out[self._filled:end] = means
        self._filled = end


def reduction_factor(width: int, height: int, target: tuple[int, int]) -> int:
    """The block size that keeps the reduced image at least `target` (so a final resample has pixels)."""
    return max(1, min(width // max(1, target[0]), height // max(1, target[1])))


def reduce_bands(bands: Iterable[lazy.np.ndarray], layout: Layout, factor: int) -> lazy.np.ndarray:
    return reduce_and_sample(bands, layout, factor)[0]


def reduce_and_sample(bands: Iterable[lazy.np.ndarray], layout: Layout,
                      factor: int) -> tuple[lazy.np.ndarray, lazy.np.ndarray]:
    """(block means, sample of the raw pixels) in one pass over the bands."""
    means = BlockMeans(layout, factor)
    for band in bands:
        means.add(band)
    return means.result(), means.sample()


@dataclass(frozen=True)
class Reduced:
    """A frame reduced by `factor`; `width`×`height` is the full frame's size. `sample` holds raw pixels
    of the full-resolution frame (physical units, finite; see PixelSample) for the display statistics;
    None when there is none (a frame made in memory), and the statistics then use `data`."""

    data: lazy.np.ndarray
    width: int
    height: int
    factor: int
    sample: lazy.np.ndarray | None = None


def _chunks(body: BinaryIO) -> Iterator[bytes]:
    while chunk := body.read(STREAM_CHUNK):
        yield chunk


def _fz_bands(data: bytes, factor_for: Callable[[int, int], int], max_pixels: int) -> tuple[Layout, int, Iterator]:
    fits = lazy.fits
    try:
        with warnings.catch_warnings():  # astropy warns about each oddity it repairs; errors still raise
            warnings.simplefilter("ignore")
            # Stored values: BSCALE/BZERO are applied to the block means (BlockMeans), not to every pixel.
            hdul = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=True, do_not_scale_image_data=True)
            hdu = next((h for h in hdul if isinstance(h, fits.CompImageHDU)), None)
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise Unreadable(f"unreadable .fits.fz file: {exc}") from exc
    if hdu is None:
        raise Unreadable("the .fits.fz file holds no tile-compressed image")
    header = {key: str(value) for key, value in hdu.header.items() if key not in ("COMMENT", "HISTORY", "")}
    layout = layout_of(header, max_pixels)
    width, height = layout.width, layout.height
    factor = factor_for(width, height)
    step = band_rows(width, factor)

    def bands() -> Iterator[lazy.np.ndarray]:
        try:
            # One pass over every tile, in the stored type (2 bytes a pixel for 16-bit data): astropy reads
            # the whole heap at once for that, while a band-by-band section re-reads it tile by tile
            # (1.5x slower, measured). The bands are views of it, reduced as they are.
            pixels = hdu.data.reshape(height, width)
        except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise Unreadable(f"unreadable .fits.fz tile data: {exc}") from exc
        finally:
            hdul.close()
        for start in range(0, height, step):
            yield pixels[start:start + step]

    return layout, factor, bands()


def _bz2_chunks(data: bytes, workers: int | None) -> Iterator[bytes]:
    try:
        yield from decompress(data, workers)
    except Bz2Error as exc:
        raise Unreadable(str(exc)) from exc


def reduce_fits(body: BinaryIO, ext: str, target_for: Callable[[int, int], tuple[int, int]], *,
                max_pixels: int, header_limit: int, bz2_workers: int | None = None) -> Reduced:
    """Read the FITS object `body` (extension `ext`: fits, fits.bz2, fits.fz) and reduce it so that it
    is at least `target_for(width, height)` pixels. `bz2_workers` threads decode bzip2 (default: one
    per idle CPU, bz2_blocks.default_workers)."""

    def factor_for(width: int, height: int) -> int:
        return reduction_factor(width, height, target_for(width, height))

    if ext == "fits.fz":
        layout, factor, bands = _fz_bands(body.read(), factor_for, max_pixels)
    else:
        reader = ByteReader(_bz2_chunks(body.read(), bz2_workers) if ext == "fits.bz2" else _chunks(body))
        layout = find_image(reader, header_limit, max_pixels)
        factor = factor_for(layout.width, layout.height)
        bands = stream_bands(reader, layout, factor)
    data, sample = reduce_and_sample(bands, layout, factor)
    return Reduced(data, layout.width, layout.height, factor, sample)

"""A FITS image reduced to about the size it will be shown at, in bounded memory.

Why not `astropy.io.fits.open(...).data`: that holds the whole frame, and the usual next step (float64,
as the reference service did) multiplies it by four: a 4k×4k 16-bit frame becomes 128 MB before a
single statistic. The picture we make is a few hundred pixels wide, so we never hold the frame:

- the data is read in bands of rows and averaged into blocks of `factor`×`factor` pixels as it arrives,
  in sums straight from the stored values (float32 for integers, float64 for floats; BSCALE/BZERO
  applied to the means; NaN, ±inf and BLANK pixels left out of each block's mean; a block with nothing
  left stays NaN), so memory is one band plus the reduced image;
- `.fits`: the object's body is streamed; headers are read by archive.formats.headers (no astropy: a Lambda
  serving JPEG renders or cache hits never imports it);
- `.fits.bz2`: decompressed on the fly, on the CPUs there are to spare (archive.formats.bz2_blocks), or
  on one as it streams in when the object is larger than BZ2_PARALLEL_MAX_BYTES; no step holds more
  than a chunk of its output, however little input stands for it;
- `.fits.fz`: streamed too, its tiles decoded one row of tiles at a time (archive.formats.fz_tiles) into
  bands of the reduction;
- the image is the primary HDU's, or the first image extension's when the primary has none. A frame
  that is not 2-D (a cube with more than one plane) or has no pixels is `Unreadable`; one over a
  budget (`Budget`: sides, pixels, decompressed bytes, .fz tile rows) is `TooLarge`, and one whose
  header declares more data than the file holds is `Unreadable`, all from its headers before any data
  is read;
- a band is about BAND_BYTES whatever the frame's shape (a strip 10^5 pixels wide reduced by 500 is
  summed a few rows at a time), and `checkpoint()` is called between bands: the render's deadline;
- while the bands pass, a sample of the raw pixels (about `SAMPLE_TARGET`, on a grid spread over the
  whole frame, in physical units, finite and not BLANK) is kept beside the block means: the display
  statistics (sky level, noise, zscale limits) must come from the data at full resolution, where the
  noise still dithers the sky, not from the averaged image, where it has been averaged away;
- blocks of REJECT_FROM_FACTOR×REJECT_FROM_FACTOR pixels and up leave their brightest pixel out of
  their mean (see BlockMeans): a hot pixel is not a bright dot in a thumbnail.

Only the reduction is done here; the display stretch (archive.render.stretch) runs on the reduced image
with the statistics of the sample.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from archive import lazy
from archive.errors import TooLarge, Unreadable
from archive.formats import fz_tiles
from archive.formats.bz2_blocks import Bz2Error, decompress, sequential
from archive.formats.fits_header import BLOCK, card_int, find_end
from archive.formats.headers import CARD, Header, HeaderError, parse_header

STREAM_CHUNK = 1 << 20
BAND_BYTES = 8 << 20  # float32 bytes per band of rows
# A .fits.bz2 up to this size is read whole and decoded on every core; a larger one streams through one.
BZ2_PARALLEL_MAX_BYTES = 96 << 20
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


@dataclass(frozen=True)
class Budget:
    """What one render may cost, all checked from headers before any data is read (None: no limit).

    `max_pixels` and `max_axis` bound the frame, `max_data_bytes` what it decompresses to (the time a
    .bz2 or .fz takes), `max_tile_bytes` what one row of .fz tiles decompresses to (held at once),
    `header_limit` the bytes read looking for a header's END card. The settings' names are in the
    messages, so a 413 says which limit to raise.
    """

    max_pixels: int
    header_limit: int
    max_axis: int | None = None
    max_data_bytes: int | None = None
    max_tile_bytes: int | None = None


def check_pixels(width: int, height: int, max_pixels: int, max_axis: int | None = None) -> None:
    if max_axis is not None and max(width, height) > max_axis:
        raise TooLarge(f"the image is {width}×{height} pixels: a side over the budget of {max_axis} "
                       "(RENDER_MAX_AXIS)")
    if width * height > max_pixels:
        raise TooLarge(f"the image is {width}×{height} = {width * height} pixels, over the budget of {max_pixels} "
                       "(RENDER_MAX_PIXELS)")


def check_data_bytes(width: int, height: int, bitpix: int, budget: Budget) -> None:
    size = width * height * (abs(bitpix) // 8)
    if budget.max_data_bytes is not None and size > budget.max_data_bytes:
        raise TooLarge(f"the {width}×{height} image is {size} bytes of pixels, over the budget of "
                       f"{budget.max_data_bytes} (RENDER_MAX_DATA_BYTES)")


def layout_of(header: Mapping[str, str], max_pixels: int, budget: Budget | None = None) -> Layout:
    width, height = image_dimensions(header)
    check_pixels(width, height, max_pixels, budget.max_axis if budget else None)
    bitpix = _int(header, "BITPIX")
    if bitpix not in DTYPES:
        raise Unreadable(f"BITPIX = {bitpix} is not a FITS pixel type")
    if budget is not None:
        check_data_bytes(width, height, bitpix, budget)
    blank = _int(header, "BLANK") if bitpix > 0 and "BLANK" in header else None
    return Layout(width, height, bitpix, _float(header, "BSCALE", 1.0), _float(header, "BZERO", 0.0), blank)


class ByteReader:
    """Exact-length reads over a sequence of byte chunks (an S3 body, a decompressor's output)."""

    def __init__(self, chunks: Iterable[bytes], checkpoint: Callable[[], None] | None = None) -> None:
        self._chunks = iter(chunks)
        self._pending: deque[memoryview] = deque()  # chunks not yet handed out (views: no copies)
        self._held = 0
        self._checkpoint = checkpoint
        self.position = 0  # bytes handed out so far

    def read(self, count: int) -> bytes:
        """`count` bytes, fewer only at the end of the data."""
        while self._held < count:
            if self._checkpoint is not None:
                self._checkpoint()
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            if chunk:
                self._pending.append(memoryview(chunk))
                self._held += len(chunk)
        out = bytearray()
        while len(out) < count and self._pending:
            view = self._pending[0]
            take = min(count - len(out), len(view))
            out += view[:take]
            if take == len(view):
                self._pending.popleft()
            else:
                self._pending[0] = view[take:]
        self._held -= len(out)
        self.position += len(out)
        return bytes(out)

    def skip(self, count: int) -> None:
        while count > 0:
            got = len(self.read(min(count, STREAM_CHUNK)))
            if not got:
                return
            count -= got

    def close(self) -> None:
        """Stop the source now (a bzip2 decoder's threads end before the answer goes out)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def read_header(reader: ByteReader, limit: int, first: bool) -> Header:
    """One HDU's header cards (through END), leaving the reader at the start of its data."""
    text = bytearray()
    while True:
        block = reader.read(BLOCK)
        if len(block) < BLOCK:
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


def find_image(reader: ByteReader, header_limit: int, max_pixels: int, budget: Budget | None = None,
               file_bytes: int | None = None) -> Layout:
    """The layout of the primary image, or of the first IMAGE extension when the primary has none.
    `file_bytes`, when known (a plain .fits), is checked against the data the header declares."""
    header = read_header(reader, header_limit, first=True)
    if _int(header, "NAXIS", 0) == 0:
        header = read_header(reader, header_limit, first=False)
        kind = header.get("XTENSION", "").strip()
        if kind != "IMAGE":
            hint = " (a tile-compressed image: name the file .fits.fz)" if header.get("ZIMAGE") == "T" else ""
            raise Unreadable(f"the FITS file's first extension is a {kind or 'nameless'} HDU, not an image{hint}")
    layout = layout_of(header, max_pixels, budget)
    fz_tiles.data_size_in_file(header, reader, file_bytes)
    return layout


def stored_rows(raw: bytes, layout: Layout, rows: int) -> lazy.np.ndarray:
    """`rows` rows of FITS pixels as stored (big-endian, no scaling): a view of `raw`, no copy."""
    count = rows * layout.width
    return lazy.np.frombuffer(raw, dtype=DTYPES[layout.bitpix], count=count).reshape(rows, layout.width)


def band_rows(width: int, factor: int) -> int:
    """Rows per band, about BAND_BYTES of float32: a whole number of reduction blocks when a block's
    rows fit in that, else fewer rows (BlockMeans sums a block row over several bands)."""
    rows = max(1, BAND_BYTES // (4 * width))
    return rows // factor * factor if rows >= factor else rows


def stream_bands(reader: ByteReader, layout: Layout, factor: int,
                 checkpoint: Callable[[], None] | None = None) -> Iterator[lazy.np.ndarray]:
    """The image's rows as stored, in bands read from the stream as they are needed."""
    step = band_rows(layout.width, factor)
    for start in range(0, layout.height, step):
        if checkpoint is not None:
            checkpoint()
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
        if values.dtype.kind in "iu" and self.layout.blank is not None:
            values = values[values != self.layout.blank]
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = values.astype(np.float64)
            if self.layout.bscale != 1.0:
                scaled *= self.layout.bscale
            if self.layout.bzero != 0.0:
                scaled += self.layout.bzero
        scaled = scaled[np.isfinite(scaled)]
        limit = float(np.finfo(np.float32).max)
        self._parts.append(np.clip(scaled, -limit, limit).astype(np.float32))

    def result(self) -> lazy.np.ndarray:
        np = lazy.np
        return np.concatenate(self._parts) if self._parts else np.empty(0, np.float32)


class BlockMeans:
    """Averages of `factor`×`factor` blocks of an image fed band by band, in physical units.

    Bands come as stored: integers are summed as they are (they are always finite; BLANK pixels, when
    the header declares them, are left out) and BSCALE/BZERO applied to the means, which is the same
    as applying it to every pixel first, for a fraction of the work. Float pixels that are NaN or ±inf
    are left out. Edge blocks average what they have; a block with nothing left is NaN.

    Sums are float32 for integers of up to 4 bytes (exact enough, and fastest) and float64 for floats
    and 64-bit integers, and the scaling is done in float64 on the small reduced image: a finite pixel
    beyond float32's ±3.4e38 (or a BSCALE that takes it there) is clipped to float32's range, never
    turned into an infinity that would leave a frame with "no finite pixels".

    From REJECT_FROM_FACTOR (3×3 blocks) up, each block's brightest pixel is left out of its mean. A
    hot pixel or a cosmic-ray hit is one pixel: averaged in, it would make its block a bright dot in
    the picture (a 0.2 %-hot frame at 300 pixels was peppered with them), where a renderer that
    stretches every pixel first (fits2image) clips it to white and averages it away. A star spans
    several pixels and keeps its block bright. Smaller blocks keep every pixel: leaving one of four
    out would lower the sky's noise-free level by a quarter of a σ.

    At factor 1 (a picture as large as the frame) the pixels are the means, converted once, and the
    reduced image is filled in place as bands come (never a list of rows concatenated: at factor 1
    that would be the whole frame twice). A PixelSample of the raw pixels is kept on the way (`sample()`).
    """

    def __init__(self, layout: Layout, factor: int) -> None:
        np = lazy.np
        self.layout, self.width, self.factor = layout, layout.width, factor
        self._starts = np.arange(0, layout.width, factor)
        self._widths = np.diff(np.append(self._starts, layout.width)).astype(np.float64)
        self._out = np.empty((-(-layout.height // factor), len(self._starts)), np.float32)
        self._stored = 0  # rows of _out filled
        self._sampler = PixelSample(layout)
        # A block row being filled by bands shorter than a block: its sums, counts and brightest pixels
        # so far (float64).
        self._filled = 0
        self._sums = np.zeros(len(self._starts))
        self._counts = np.zeros(len(self._starts))
        self._brightest = np.full(len(self._starts), -np.inf)

    def add(self, band: lazy.np.ndarray) -> None:
        """Rows of the image, top to bottom, any number at a time: whole blocks are reduced at once,
        a band shorter than a block (a wide strip reduced by a large factor) is summed into the block
        row being filled, so no band ever has to hold `factor` full rows."""
        self._sampler.add(band)
        at, rows = 0, band.shape[0]
        while at < rows:
            if self._filled == 0 and rows - at >= self.factor:
                whole = (rows - at) // self.factor * self.factor
                self._store(self._reduce(band[at:at + whole], self.factor))
                at += whole
                continue
            take = min(self.factor - self._filled, rows - at)
            self._accumulate(band[at:at + take])
            at += take
            if self._filled == self.factor:
                self._flush()

    def _accumulate(self, part: lazy.np.ndarray) -> None:
        np = lazy.np
        valid = self._valid(part)
        with np.errstate(over="ignore", invalid="ignore"):
            if valid is None:
                self._sums += np.add.reduceat(part.sum(axis=0, dtype=np.float64), self._starts)
                self._counts += part.shape[0] * self._widths
                brightest = np.maximum.reduceat(part.max(axis=0), self._starts)
            else:
                clean = np.where(valid, part, 0)
                self._sums += np.add.reduceat(clean.sum(axis=0, dtype=np.float64), self._starts)
                self._counts += np.add.reduceat(valid.sum(axis=0, dtype=np.float64), self._starts)
                brightest = np.maximum.reduceat(np.where(valid, part, _lowest(part.dtype)).max(axis=0), self._starts)
            np.maximum(self._brightest, brightest.astype(np.float64), out=self._brightest)
        self._filled += part.shape[0]

    def _flush(self) -> None:
        np = lazy.np
        sums, counts = self._sums, self._counts
        if self.factor >= REJECT_FROM_FACTOR:
            sums, counts = _without_brightest(sums, counts, self._brightest)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        self._store(self._scaled(means[np.newaxis, :]))
        self._filled = 0
        self._sums = np.zeros(len(self._starts))
        self._counts = np.zeros(len(self._starts))
        self._brightest = np.full(len(self._starts), -np.inf)

    def _valid(self, band: lazy.np.ndarray) -> lazy.np.ndarray | None:
        """Which pixels count, or None when all of them do (the common case: no mask is built)."""
        np = lazy.np
        if band.dtype.kind in "iu":
            return None if self.layout.blank is None else band != self.layout.blank
        finite = np.isfinite(band)
        return None if finite.all() else finite

    def _means(self, band: lazy.np.ndarray, rows: int) -> lazy.np.ndarray:
        """Unscaled block means of `band` (float32 or float64, by the pixel type)."""
        np = lazy.np
        wide = band.dtype.kind == "f" or band.dtype.itemsize > 4
        acc = np.float64 if wide else np.float32
        groups = band.shape[0] // rows
        valid = self._valid(band)
        if self.factor == 1:  # a picture as large as the frame: the pixels themselves, no sums
            means = band.astype(acc)
            if valid is not None:
                means[~valid] = np.nan
            return means
        shaped = band.reshape(groups, rows, self.width)
        if valid is None:
            sums = np.add.reduceat(shaped.sum(axis=1, dtype=acc), self._starts, axis=1)
            counts = np.broadcast_to(self._widths.astype(acc) * rows, sums.shape)
            brightest = np.maximum.reduceat(shaped.max(axis=1), self._starts, axis=1)
        else:
            clean = np.where(valid, band, 0)
            sums = np.add.reduceat(clean.reshape(groups, rows, self.width).sum(axis=1, dtype=acc),
                                   self._starts, axis=1)
            counts = np.add.reduceat(valid.reshape(groups, rows, self.width).sum(axis=1, dtype=acc),
                                     self._starts, axis=1)
            brightest = np.maximum.reduceat(np.where(valid, band, _lowest(band.dtype)).reshape(groups, rows, self.width)
                                            .max(axis=1), self._starts, axis=1)
        if self.factor >= REJECT_FROM_FACTOR:
            sums, counts = _without_brightest(sums, counts, brightest.astype(acc))
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), acc(np.nan))
        if wide and np.isinf(means).any():
            # Finite pixels near float64's limit whose sum overflows: average them scaled down.
            with np.errstate(over="ignore", invalid="ignore"):
                return self._means(band * 2.0**-64, rows) * 2.0**64
        return means

    def _reduce(self, band: lazy.np.ndarray, rows: int) -> lazy.np.ndarray:
        return self._scaled(self._means(band, rows))

    def _scaled(self, means: lazy.np.ndarray) -> lazy.np.ndarray:
        """Block means in physical units, float32: BSCALE/BZERO applied in float64, then clipped (in
        float32 in place for the means of integers of up to 4 bytes with a moderate scaling: a
        4000-pixel picture's frame is not copied to float64)."""
        np = lazy.np
        bscale, bzero = self.layout.bscale, self.layout.bzero
        if means.dtype == np.float32 and self.layout.bitpix in (8, 16, 32) and abs(bscale) < 1e6 and abs(bzero) < 1e30:
            if bscale != 1.0:
                means *= np.float32(bscale)
            if bzero != 0.0:
                means += np.float32(bzero)
            return means
        if bscale != 1.0 or bzero != 0.0 or means.dtype != np.float32:
            with np.errstate(over="ignore", invalid="ignore"):
                scaled = means.astype(np.float64)
                if bscale != 1.0:
                    scaled *= bscale
                if bzero != 0.0:
                    scaled += bzero
            limit = float(np.finfo(np.float32).max)
            means = np.clip(scaled, -limit, limit).astype(np.float32)
        return means

    def _store(self, means: lazy.np.ndarray) -> None:
        end = self._stored + means.shape[0]
        if end > self._out.shape[0]:  # more rows than the header said: grow (never for a valid file)
            self._out = lazy.np.concatenate([self._out[:self._stored], means])
        else:
            self._out[self._stored:end] = means
        self._stored = end

    def sample(self) -> lazy.np.ndarray:
        """The raw pixels sampled so far (see PixelSample)."""
        return self._sampler.result()

    def result(self) -> lazy.np.ndarray:
        if self._filled:
            self._flush()
        return self._out[:self._stored]


def _lowest(dtype: lazy.np.dtype) -> float | int:
    """A value below every pixel of `dtype` (what a left-out pixel counts as when the brightest is sought)."""
    np = lazy.np
    return -np.inf if dtype.kind == "f" else int(np.iinfo(dtype).min)


def _without_brightest(sums: lazy.np.ndarray, counts: lazy.np.ndarray,
                       brightest: lazy.np.ndarray) -> tuple[lazy.np.ndarray, lazy.np.ndarray]:
    """Block sums and counts with each block's brightest pixel left out, where a block has two or more."""
    np = lazy.np
    many = counts > 1
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(many, sums - np.where(many, brightest, 0), sums), np.where(many, counts - 1, counts)


def reduction_factor(width: int, height: int, target: tuple[int, int]) -> int:
    """The block size that brings the frame to `target` along the axis that limits the fit (the one
    reduced the most), so the reduced image is about the target's size on that axis and no larger on
    the other: a 1×10^7 strip is reduced by 5×10^4 to 1×200, not kept whole because its width is 1."""
    return max(1, width // max(1, target[0]), height // max(1, target[1]))


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


def _fz_bands(reader: ByteReader, budget: Budget, file_bytes: int | None, factor_for: Callable[[int, int], int],
              checkpoint: Callable[[], None] | None) -> tuple[Layout, int, Iterator[lazy.np.ndarray]]:
    """A .fits.fz image, tile by tile (archive.formats.fz_tiles), in bands for the reduction."""
    np = lazy.np
    layouts: list[Layout] = []

    def check_image(header: Mapping[str, str]) -> None:
        layouts.append(layout_of(header, budget.max_pixels, budget))

    tiles = fz_tiles.find_tile_image(reader, lambda first: read_header(reader, budget.header_limit, first),
                                     file_bytes, check_image, budget.max_tile_bytes)
    stored = layouts[0]
    # Tiles come decoded: BSCALE/BZERO still apply (to the means); integer blanks are ZBLANK's value.
    blank = tiles.header.get("BLANK") if "ZBLANK" not in tiles.table else tiles.table.get("ZBLANK")
    layout = Layout(stored.width, stored.height, stored.bitpix, stored.bscale, stored.bzero,
                    _int({"BLANK": blank}, "BLANK") if blank is not None and stored.bitpix > 0 else None)
    factor = factor_for(layout.width, layout.height)
    step = band_rows(layout.width, factor)

    def bands() -> Iterator[lazy.np.ndarray]:
        held: list[lazy.np.ndarray] = []
        rows = 0
        for tile_row in fz_tiles.tile_rows(reader, tiles, checkpoint):
            held.append(tile_row)
            rows += tile_row.shape[0]
            if rows >= step:
                yield held[0] if len(held) == 1 else np.concatenate(held)
                held, rows = [], 0
        if held:
            yield np.concatenate(held)

    return layout, factor, bands()


def _bz2_chunks(data: bytes, workers: int | None) -> Iterator[bytes]:
    try:
        yield from decompress(data, workers)
    except Bz2Error as exc:
        raise Unreadable(str(exc)) from exc


def _bz2_stream(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """bzip2 decoded on one thread as the compressed chunks arrive (nothing held but a chunk)."""
    try:
        yield from sequential(chunks)
    except Bz2Error as exc:
        raise Unreadable(str(exc)) from exc


def reduce_fits(body: BinaryIO, ext: str, target_for: Callable[[int, int], tuple[int, int]], *,
                max_pixels: int, header_limit: int, bz2_workers: int | None = None, max_axis: int | None = None,
                max_data_bytes: int | None = None, max_tile_bytes: int | None = None,
                source_bytes: int | None = None, checkpoint: Callable[[], None] | None = None) -> Reduced:
    """Read the FITS object `body` (extension `ext`: fits, fits.bz2, fits.fz) and reduce it to about
    `target_for(width, height)` pixels, as it streams in: memory is the reduced image and one band (or
    one row of .fz tiles), whatever the file's size. Every budget (see `Budget`) is checked from the
    headers before the data is read; `source_bytes` (the object's size) is checked against what the
    headers declare. `checkpoint()` is called between bands, tiles and chunks: it raises to stop the
    work (the render's deadline). `bz2_workers` threads decode bzip2 (default: one per idle CPU,
    bz2_blocks.default_workers); a .bz2
    larger than BZ2_PARALLEL_MAX_BYTES is decoded on one thread as it streams in instead of being held.
    """
    budget = Budget(max_pixels, header_limit, max_axis, max_data_bytes, max_tile_bytes)

    def factor_for(width: int, height: int) -> int:
        return reduction_factor(width, height, target_for(width, height))

    if ext == "fits.bz2":
        if source_bytes is not None and source_bytes > BZ2_PARALLEL_MAX_BYTES:
            chunks: Iterator[bytes] = _bz2_stream(_chunks(body))
        else:
            chunks = _bz2_chunks(body.read(), bz2_workers)
    else:
        chunks = _chunks(body)
    reader = ByteReader(chunks, checkpoint)
    try:
        if ext == "fits.fz":
            layout, factor, bands = _fz_bands(reader, budget, source_bytes, factor_for, checkpoint)
        else:
            layout = find_image(reader, header_limit, max_pixels, budget,
                                source_bytes if ext == "fits" else None)
            factor = factor_for(layout.width, layout.height)
            bands = stream_bands(reader, layout, factor, checkpoint)
        data, sample = reduce_and_sample(bands, layout, factor)
        return Reduced(data, layout.width, layout.height, factor, sample)
    finally:
        reader.close()

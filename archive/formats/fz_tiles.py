"""Tile-compressed FITS (`.fits.fz`) read as a stream, one row of tiles at a time, in bounded memory.

Why not `astropy.io.fits.open(...)[1].data`: that decompresses the whole frame at once (a 10000² float64
image in one tile is 800 MB), needs the whole file in memory first, and trusts the headers (a primary
header declaring NAXIS1 = 10^9 sends it skipping and allocating until the process dies). Here:

- the headers are read by our own parser (archive.formats.headers, bounded by FITS_HEADER_MAX_BYTES) and
  every size in them is checked before any data is read: the data an HDU declares must fit in the file,
  the image must fit the render budget (sides, pixels, decompressed bytes), one row of tiles decoded
  (ZTILE2 rows × NAXIS1 × 8 bytes, the widest a decoded pixel can be) must fit RENDER_MAX_TILE_BYTES,
  and every tile's descriptor must point inside the heap;
- the tile table (a few bytes a tile) is read, then the heap is streamed past, each tile decoded as its
  bytes go by with astropy's codecs (the same C code `CompImageHDU` uses: Rice, gzip, PLIO, HCOMPRESS,
  quantisation with dithering) and handed on in rows of tiles; a heap whose tiles are not stored in
  order (no writer we know does that) is read whole only when it is small;
- gzip tiles are inflated here with a bound (a zlib bomb in one tile cannot take more than its pixels
  need); everything a tile's bytes can make the codecs raise is `Unreadable`, naming the tile.

The caller (archive.formats.fits_data) feeds the rows of tiles to its block reduction.
"""

from __future__ import annotations

import math
import re
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from archive import lazy
from archive.errors import ArchiveError, TooLarge, Unreadable
from archive.formats.fits_header import card_int, data_size, image_header
from archive.formats.headers import Header, HeaderError

DECODED_BYTES_PER_PIXEL = 8  # the widest a decoded pixel gets (float64 after quantisation, RICE bytepix 8)
MAX_EXTENSIONS = 16  # HDUs skipped looking for the compressed image
SMALL_HEAP_BYTES = 64 << 20  # a heap read whole when its tiles are out of order
MAX_TILES = 200_000  # rows of the tile table (one-row tiles of a 100,000-row image fit twice over)
ALGORITHMS = ("RICE_1", "RICE_ONE", "GZIP_1", "GZIP_2", "PLIO_1", "HCOMPRESS_1", "NOCOMPRESS")
_TFORM = re.compile(r"\s*(\d*)([LXBIJKAEDCMPQ])([BIJKED])?(?:\(\d*\))?\s*")
_SIZES = {"L": 1, "X": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8, "M": 16, "P": 8, "Q": 16}
_ELEMENTS = {"B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}
PIXEL_TYPES = {8: "u1", 16: "i2", 32: "i4", 64: "i8", -32: "f4", -64: "f8"}  # native order, as decoded
_DATA_COLUMNS = ("COMPRESSED_DATA", "GZIP_COMPRESSED_DATA", "UNCOMPRESSED_DATA")


class Reader(Protocol):
    """What the caller streams the file through (archive.formats.fits_data.ByteReader)."""

    position: int

    def read(self, count: int) -> bytes: ...

    def skip(self, count: int) -> None: ...


@dataclass(frozen=True)
class TileImage:
    """A compressed image's header, checked, and where its tiles are."""

    header: Header  # the image's header (NAXISn, BITPIX, BSCALE… as an uncompressed HDU would have them)
    table: Header  # the binary table's header
    width: int
    height: int
    zbitpix: int
    tile_width: int
    tile_height: int
    algorithm: str


def _int(header: Header, keyword: str, default: int | None = None) -> int:
    try:
        return card_int(header, keyword, default, where="the compressed image's table header")
    except HeaderError as exc:
        raise Unreadable(exc.reason) from None


def _text(header: Header, keyword: str, default: str = "") -> str:
    return header.get(keyword, default).strip().strip("'").strip().upper()


def _column_dtype(table: Header) -> tuple[Any, dict[str, str]]:
    """The table's row as a numpy dtype, and the heap element type of each descriptor column."""
    np = lazy.np
    fields = _int(table, "TFIELDS", 0)
    if not 1 <= fields <= 999:
        raise Unreadable(f"the compressed image's table has TFIELDS = {fields}")
    names: list[str] = []
    formats: list[Any] = []
    offsets: list[int] = []
    elements: dict[str, str] = {}
    offset = 0
    for i in range(1, fields + 1):
        tform = table.get(f"TFORM{i}", "").strip().strip("'")
        match = _TFORM.fullmatch(tform)
        if match is None:
            raise Unreadable(f"TFORM{i} = {tform[:20]!r} is not a binary table column format")
        repeat = int(match[1] or 1) if len(match[1] or "1") <= 6 else 10**7
        kind, element = match[2], match[3]
        name = table.get(f"TTYPE{i}", "").strip().strip("'").strip().upper() or f"COL{i}"
        if name in _DATA_COLUMNS:
            if kind not in "PQ" or element not in _ELEMENTS or repeat != 1:
                raise Unreadable(f"the {name} column's format {tform!r} is not an array descriptor (1PB, 1QB…)")
            elements[name] = _ELEMENTS[element]
            names.append(name)
            formats.append((">i4" if kind == "P" else ">i8", 2))
            offsets.append(offset)
        elif name in ("ZSCALE", "ZZERO", "ZBLANK") and repeat == 1 and kind in "BIJKED":
            names.append(name)
            formats.append(_ELEMENTS[kind])
            offsets.append(offset)
        offset += repeat * _SIZES[kind]
    if offset != _int(table, "NAXIS1"):
        raise Unreadable(f"the compressed image's table columns take {offset} bytes a row, "
                         f"but NAXIS1 = {_int(table, 'NAXIS1')}")
    if offset == 0:
        raise Unreadable("the compressed image's table has no columns")
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": offset}), elements


def find_tile_image(reader: Reader, read_header: Callable[[bool], Header], file_bytes: int | None,
                    check_image: Callable[[Header], None], max_tile_bytes: int | None) -> TileImage:
    """Skip to the first tile-compressed image HDU and check everything its headers declare."""
    header = read_header(True)
    for _ in range(MAX_EXTENSIONS):
        size = data_size_in_file(header, reader, file_bytes)
        if header.get("ZIMAGE") == "T" and header.get("XTENSION", "").strip().strip("'").strip() == "BINTABLE":
            return _tile_image(header, reader, file_bytes, check_image, max_tile_bytes, size)
        reader.skip(size)
        try:
            header = read_header(False)
        except Unreadable as exc:
            raise Unreadable(f"the .fits.fz file holds no tile-compressed image ({exc.reason})") from exc
    raise Unreadable(f"no tile-compressed image in the first {MAX_EXTENSIONS} HDUs of the .fits.fz file")


def data_size_in_file(header: Header, reader: Reader, file_bytes: int | None) -> int:
    """The HDU's data bytes (padded), refused when the file cannot hold them: a header declaring 10^9
    pixels in a 5 kB file is found out here, before anything tries to read or skip them."""
    try:
        size = data_size(header)
    except HeaderError as exc:
        raise Unreadable(exc.reason) from exc
    if file_bytes is not None and size > file_bytes - reader.position:
        raise Unreadable(f"a header declares {size} bytes of data, but only {max(0, file_bytes - reader.position)} "
                         "bytes follow it (truncated or corrupt file)")
    return size


def _tile_image(table: Header, reader: Reader, file_bytes: int | None, check_image: Callable[[Header], None],
                max_tile_bytes: int | None, size: int) -> TileImage:
    image = image_header(table)
    check_image(image)  # sides, pixels, decompressed bytes: 413 before anything else is read
    width, height = _int(table, "ZNAXIS1"), _int(table, "ZNAXIS2")
    zbitpix = _int(table, "ZBITPIX")
    algorithm = _text(table, "ZCMPTYPE")
    if algorithm not in ALGORITHMS:
        raise Unreadable(f"ZCMPTYPE = {algorithm[:20]!r} is not a FITS tile compression")
    tile_width = _int(table, "ZTILE1", width)
    tile_height = _int(table, "ZTILE2", 1)
    extra = [_int(table, f"ZTILE{i}", 1) for i in range(3, _int(table, "ZNAXIS") + 1)]
    if tile_width < 1 or tile_height < 1 or any(t != 1 for t in extra):
        raise Unreadable(f"the tiles are {tile_width}×{tile_height}{''.join(f'×{t}' for t in extra)}: "
                         "only 2-D tiles of at least one pixel are rendered")
    tile_width, tile_height = min(tile_width, width), min(tile_height, height)
    row_bytes = tile_height * width * DECODED_BYTES_PER_PIXEL
    if max_tile_bytes is not None and row_bytes > max_tile_bytes:
        raise TooLarge(f"one row of tiles ({tile_width}×{tile_height} tiles across {width} pixels) decodes to up "
                       f"to {row_bytes} bytes, over the budget of {max_tile_bytes} (RENDER_MAX_TILE_BYTES)")
    return TileImage(image, table, width, height, zbitpix, tile_width, tile_height, algorithm)


def _settings(table: Header, algorithm: str, zbitpix: int) -> dict[str, Any]:
    """The codec's settings from ZNAMEn/ZVALn, checked (the C codecs trust them)."""
    named: dict[str, str] = {}
    for i in range(1, 1000):
        name = table.get(f"ZNAME{i}")
        if name is None:
            break
        named[name.strip().strip("'").strip().upper()] = table.get(f"ZVAL{i}", "").strip()

    def number(key: str, default: int, allowed: tuple[int, ...] | None = None) -> int:
        raw = named.get(key)
        try:
            value = default if raw is None else int(float(raw))
        except (ValueError, OverflowError):
            raise Unreadable(f"the compression setting {key} = {str(raw)[:20]!r} is not a number") from None
        if allowed is not None and value not in allowed:
            raise Unreadable(f"the compression setting {key} = {value} is not one of {allowed}")
        return value

    if algorithm in ("RICE_1", "RICE_ONE"):
        return {"blocksize": number("BLOCKSIZE", 32, (16, 32)), "bytepix": number("BYTEPIX", 4, (1, 2, 4, 8))}
    if algorithm == "HCOMPRESS_1":
        scale = number("SCALE", 0)
        if not 0 <= scale < 2**31:
            raise Unreadable(f"the HCOMPRESS scale {scale} is out of range")
        return {"bytepix": 8, "scale": scale, "smooth": number("SMOOTH", 0, (0, 1))}
    if algorithm == "GZIP_2":
        return {"itemsize": abs(zbitpix) // 8}
    return {}


def inflate(data: bytes, limit: int) -> bytes:
    """gzip (or zlib) data, refused when it inflates to more than `limit` bytes or is not whole."""
    decoder = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
    try:
        out = decoder.decompress(data, limit + 1)
    except zlib.error as exc:
        raise Unreadable(f"corrupt gzip tile ({exc})") from exc
    if len(out) > limit:
        raise Unreadable(f"a gzip tile inflates to more than the {limit} bytes its pixels can fill")
    if not decoder.eof:
        raise Unreadable("a gzip tile ends before its data does (truncated)")
    return out


class TileDecoder:
    """Decodes the tiles of one image, as astropy's `decompress_image_data_section` does, tile by tile."""

    def __init__(self, tiles: TileImage, rows: Any, elements: dict[str, str]) -> None:
        np = lazy.np
        self.tiles, self.rows, self.elements = tiles, rows, elements
        self.names = rows.dtype.names
        self.quantized = "ZSCALE" in self.names
        if self.quantized and "ZZERO" not in self.names:
            raise Unreadable("the compressed image is quantised (ZSCALE) but has no ZZERO column")
        self.settings = _settings(tiles.table, tiles.algorithm, tiles.zbitpix)
        quantiz = _text(tiles.table, "ZQUANTIZ", "NO_DITHER")
        methods = lazy.fits_quantization.DITHER_METHODS
        if quantiz not in methods:
            raise Unreadable(f"ZQUANTIZ = {quantiz[:30]!r} is not a FITS quantisation method")
        self.dither = methods[quantiz]
        self.seed = _int(tiles.table, "ZDITHER0", 0)
        if not 0 <= self.seed <= 10000:
            raise Unreadable(f"ZDITHER0 = {self.seed} is outside 0-10000")
        self.zblank: int | None = None  # the value of blank pixels in integer tiles
        if "ZBLANK" in tiles.table:
            self.zblank = _int(tiles.table, "ZBLANK")
        elif "BLANK" in tiles.header:
            self.zblank = _int(tiles.header, "BLANK")
        self.dtype = np.dtype(PIXEL_TYPES[tiles.zbitpix])

    def decode(self, index: int, shape: tuple[int, int], data: dict[str, bytes]) -> Any:
        """Tile `index` (its rows, columns) from its heap bytes, as the image's pixel type."""
        np, tiled = lazy.np, lazy.fits_tiles
        pixels = shape[0] * shape[1]
        limit = pixels * DECODED_BYTES_PER_PIXEL
        if "COMPRESSED_DATA" in data:
            raw = np.frombuffer(data["COMPRESSED_DATA"], dtype=self.elements["COMPRESSED_DATA"])
            algorithm = self.tiles.algorithm
            if algorithm in ("GZIP_1", "GZIP_2"):
                inflated = np.frombuffer(inflate(raw.tobytes(), limit), dtype=np.uint8)
                if algorithm == "GZIP_2":
                    itemsize = inflated.size // pixels if pixels else 0
                    if itemsize not in (1, 2, 4, 8) or itemsize * pixels != inflated.size:
                        raise Unreadable(f"a GZIP_2 tile holds {inflated.size} bytes for {pixels} pixels")
                    inflated = inflated.reshape(itemsize, -1).T.ravel()
                buffer = inflated
            else:
                settings = tiled._update_tile_settings(dict(self.settings), algorithm, shape)
                buffer = tiled._decompress_tile(raw, algorithm=algorithm, **settings)
            tile = tiled._finalize_array(buffer, bitpix=self.tiles.zbitpix, tile_shape=shape,
                                         algorithm=algorithm if algorithm not in ("GZIP_1", "GZIP_2") else "GZIP_1",
                                         lossless=not self.quantized)
            zblank = self.zblank
            if "ZBLANK" in self.names:
                zblank = int(self.rows["ZBLANK"][index])
            blank_mask = tile == zblank if zblank is not None else None
            if self.quantized:
                quantize = lazy.fits_quantization.Quantize(
                    row=(index + self.seed) if self.dither != -1 else 0, dither_method=self.dither,
                    quantize_level=None, bitpix=self.tiles.zbitpix)
                tile = np.asarray(quantize.decode_quantized(tile, float(self.rows["ZSCALE"][index]),
                                                            float(self.rows["ZZERO"][index]))).reshape(shape)
            tile = tile.astype(self.dtype, copy=False)
            if blank_mask is not None and blank_mask.any():
                if not tile.flags.writeable:
                    tile = tile.copy()
                tile[blank_mask] = np.nan if self.tiles.zbitpix < 0 else zblank
            return tile
        if "GZIP_COMPRESSED_DATA" in data:
            raw = np.frombuffer(inflate(data["GZIP_COMPRESSED_DATA"], limit), dtype=np.uint8)
            tile = tiled._finalize_array(raw, bitpix=self.tiles.zbitpix, tile_shape=shape, algorithm="GZIP_1",
                                         lossless=True)
            return tile.astype(self.dtype, copy=False)
        if "UNCOMPRESSED_DATA" in data:
            element = self.elements["UNCOMPRESSED_DATA"]
            return np.frombuffer(data["UNCOMPRESSED_DATA"], dtype=element).reshape(shape).astype(self.dtype)
        raise Unreadable(f"tile {index + 1} has no data (empty COMPRESSED_DATA and no other data column)")


def _read_table(reader: Reader, tiles: TileImage) -> tuple[Any, dict[str, str], int, int]:
    """(the tile table's rows, the descriptor columns' element types, tiles across, heap bytes)."""
    np = lazy.np
    table = tiles.table
    dtype, elements = _column_dtype(table)
    across = math.ceil(tiles.width / tiles.tile_width)
    down = math.ceil(tiles.height / tiles.tile_height)
    count = _int(table, "NAXIS2")
    if count != across * down:
        raise Unreadable(f"the table has {count} rows for {across}×{down} = {across * down} tiles")
    if count > MAX_TILES:
        raise TooLarge(f"the image is cut into {count} tiles, more than the {MAX_TILES} a render reads "
                       "(each tile is a step of its own)")
    table_bytes = dtype.itemsize * count
    pcount = _int(table, "PCOUNT", 0)
    theap = _int(table, "THEAP", table_bytes)
    if pcount < 0 or not table_bytes <= theap <= table_bytes + pcount:
        raise Unreadable(f"the heap (THEAP = {theap}, PCOUNT = {pcount}) is not after the {table_bytes}-byte table")
    raw = reader.read(table_bytes)
    if len(raw) < table_bytes:
        raise Unreadable("the .fits.fz file ends inside its tile table (truncated?)")
    reader.skip(theap - table_bytes)
    return np.frombuffer(raw, dtype=dtype, count=count), elements, across, table_bytes + pcount - theap


def _heap_parts(rows: Any, elements: dict[str, str], heap_bytes: int,
                tiles: TileImage) -> list[list[tuple[str, int, int]]]:
    """What each tile reads from the heap, (column, offset, bytes), checked to lie inside it and to be
    no larger than its pixels could need."""
    np = lazy.np
    itemsizes = {name: np.dtype(element).itemsize for name, element in elements.items()}
    most = tiles.tile_width * tiles.tile_height * DECODED_BYTES_PER_PIXEL * 2 + 65536
    wanted: list[list[tuple[str, int, int]]] = []
    for index in range(rows.size):
        parts = []
        for name in _DATA_COLUMNS:
            if name not in elements:
                continue
            length, offset = (int(v) for v in rows[name][index])
            if length <= 0:
                continue
            size = length * itemsizes[name]
            if offset < 0 or offset + size > heap_bytes:
                raise Unreadable(f"tile {index + 1}'s {name} lies outside the heap "
                                 f"(offset {offset}, {size} bytes, heap {heap_bytes} bytes)")
            if size > most:
                raise Unreadable(f"tile {index + 1}'s {name} is {size} bytes, more than its pixels could need")
            parts.append((name, offset, size))
            if name == "COMPRESSED_DATA":
                break  # the other columns are only read for tiles whose COMPRESSED_DATA is empty
        wanted.append(parts)
    return wanted


class _Heap:
    """The heap's bytes as the tiles ask for them: streamed past in order, or (tiles out of order, a
    small heap) read whole."""

    def __init__(self, reader: Reader, size: int, in_order: bool) -> None:
        self.reader, self.at = reader, 0
        self.whole: bytes | None = None
        if not in_order:
            if size > SMALL_HEAP_BYTES:
                raise TooLarge(f"the tiles are stored out of order in a heap of {size} bytes; such a heap "
                               f"is only read whole up to {SMALL_HEAP_BYTES} bytes")
            self.whole = reader.read(size)
            if len(self.whole) < size:
                raise Unreadable("the .fits.fz file ends inside its heap (truncated?)")

    def get(self, offset: int, size: int) -> bytes:
        if self.whole is not None:
            return self.whole[offset:offset + size]
        self.reader.skip(offset - self.at)
        data = self.reader.read(size)
        self.at = offset + size
        if len(data) < size:
            raise Unreadable("the .fits.fz file ends inside its heap (truncated?)")
        return data


def tile_rows(reader: Reader, tiles: TileImage, checkpoint: Callable[[], None] | None = None) -> Iterator[Any]:
    """The image's rows, top to bottom (FITS order), one row of tiles at a time, in its pixel type
    (native byte order). Memory: the tile table, one row of tiles and the tile being decoded."""
    np = lazy.np
    rows, elements, across, heap_bytes = _read_table(reader, tiles)
    decoder = TileDecoder(tiles, rows, elements)
    wanted = _heap_parts(rows, elements, heap_bytes, tiles)
    heap = _Heap(reader, heap_bytes, _in_order(wanted))
    for top in range(0, tiles.height, tiles.tile_height):
        if checkpoint is not None:
            checkpoint()
        height = min(tiles.tile_height, tiles.height - top)
        out = None
        for left in range(0, tiles.width, tiles.tile_width):
            index = top // tiles.tile_height * across + left // tiles.tile_width
            width = min(tiles.tile_width, tiles.width - left)
            data = {name: heap.get(offset, size) for name, offset, size in wanted[index]}
            tile = _decoded(decoder, index, (height, width), data)
            if across == 1:
                out = tile
                continue
            if out is None:
                out = np.empty((height, tiles.width), dtype=tile.dtype)
            out[:, left:left + width] = tile
        yield out


def _in_order(wanted: list[list[tuple[str, int, int]]]) -> bool:
    end = 0
    for parts in wanted:
        for _, offset, size in parts:
            if offset < end:
                return False
            end = offset + size
    return True


def _decoded(decoder: TileDecoder, index: int, shape: tuple[int, int], data: dict[str, bytes]) -> Any:
    """One tile decoded; whatever the codecs make of bad bytes is the file's fault (422), named."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with lazy.np.errstate(all="ignore"):
                return decoder.decode(index, shape, data)
    except (ArchiveError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - the C codecs raise CfitsioException, OverflowError, ValueError…
        raise Unreadable(f"tile {index + 1} cannot be decoded: {type(exc).__name__}: {exc}"[:300]) from exc

"""A FITS file's header, read from the start of its S3 object without downloading the file.

Why: a FITS file can be hundreds of MB, and an exposure whose `.txt` header never came still needs its
header (docs/contracts.md §1). The header is at most a few blocks at the front, so we read ranged GETs that
grow geometrically (8 blocks, then 4x more each time) until the END card, up to
`settings.fits_header_max_bytes`:

- `.fits`: the primary header;
- `.fits.bz2`: the same, stream-decompressed from the ranged reads (bzip2 emits nothing until a whole
  compressed block, up to ~900 kB, has arrived, so those reads go further);
- `.fits.fz`: fpack keeps the image in a compressed binary table in the *second* HDU. We skip the
  primary HDU's data by its size from NAXISn/BITPIX/PCOUNT/GCOUNT and return that table's header
  turned back into the image's header (ZBITPIX -> BITPIX, ...), as astropy presents it.

Cards are read by `archive.formats.headers` (no astropy). Whatever the file's own bytes make go wrong (no END
card, garbage dimensions, numbers too large for a float, a structure that points outside the file) is
a `HeaderError` (permanent: no retry can change the bytes), and a missing object `ObjectMissing`
(permanent); only S3's own failures (throttling, 5xx, connection errors) propagate unchanged so that
the caller retries them.

A file decides where we read next (the .fz extension starts after the primary data it declares), so
the reader distrusts it: every range is `bytes=a-b` with 0 <= a <= b and within the object, no response
is read beyond the budget (the body is streamed and closed), and a server that ignores the range and
answers 200 with the whole object is read only up to the budget.
"""

from __future__ import annotations

import bz2
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from archive.aws import client, is_missing_object
from archive.errors import ArchiveError, ObjectMissing
from archive.formats.headers import CARD, Header, HeaderError, parse_header
from archive.settings import get_settings

BLOCK = 2880
FIRST_READ = BLOCK * 8  # most headers (< ~290 cards) and an fpack primary+table header fit in one GET
GROWTH = 4
# bzip2 decompresses whole blocks of up to 900 kB; a block of incompressible data is a little bigger.
BZ2_BLOCK_MAX = 1_000_000
BITPIX_VALUES = frozenset({8, 16, 32, 64, -32, -64})  # FITS standard 4.4.1.1
MAX_NAXIS = 999

logger = logging.getLogger(__name__)


class RangedObject:
    """Reads byte ranges of one S3 object, remembering the last range so overlapping reads are free.

    `budget` caps what one response may deliver: a read asks for at most that much and stops reading
    the body there, whatever the server sends.
    """

    def __init__(self, bucket: str, key: str, budget: int) -> None:
        self.bucket, self.key = bucket, key
        self.budget = budget
        self.size: int | None = None
        self._window_start = 0
        self._window = b""

    def cached(self, start: int) -> bytes:
        """What the last read already holds from `start` on (b"" if `start` is outside it)."""
        offset = start - self._window_start
        return self._window[offset:] if 0 <= offset < len(self._window) else b""

    def at_end(self, offset: int) -> bool:
        return self.size is not None and offset >= self.size

    def read(self, start: int, length: int) -> bytes:
        """Bytes [start, start + min(length, budget)): fewer at the end of the object, b"" past it."""
        if start < 0:
            raise HeaderError(f"the file points before its own start (byte {start})")
        length = min(length, self.budget)
        if length < 1:
            return b""
        held = self.cached(start)
        if len(held) >= length:
            return held[:length]
        if self.at_end(start):
            return b""
        data = self._get(start, length)
        self._window_start, self._window = start, data
        return data

    def _get(self, start: int, length: int) -> bytes:
        try:
            response = client("s3").get_object(
                Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{start + length - 1}"
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if is_missing_object(exc):
                raise ObjectMissing() from exc
            if error.get("Code") == "InvalidRange" or status == 416:  # start is past the end
                self.size = start if self.size is None else self.size
                return b""
            raise  # throttling, 5xx, permissions: not ours to judge
        body = response["Body"]
        try:
            total = _total_size(response)
            if total is not None:
                self.size = total
                return body.read(length)
            # 200: the range was ignored and the object comes from its first byte. Read no further
            # than the budget allows; what lies beyond it is out of reach.
            if start + length > self.budget:
                raise HeaderError(
                    f"the server ignored the byte range; bytes {start}-{start + length - 1} lie beyond "
                    f"the {self.budget}-byte header budget"
                )
            data = body.read(start + length)
            self.size = int(response.get("ContentLength") or len(data))
            return data[start:]
        finally:
            body.close()  # unread bytes stay on the wire; the connection is dropped, not drained


def _total_size(response: dict[str, Any]) -> int | None:
    """The object's size from `Content-Range: bytes 0-99/1234`, or None without one."""
    content_range = response.get("ContentRange") or ""
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else None


def find_end(buf: bytes | bytearray, start: int) -> int | None:
    """Offset of the END card (on an 80-byte card boundary, rest of the card blank) at or after `start`."""
    i = buf.find(b"END", start)
    while i >= 0:
        if i % CARD == 0 and len(buf) >= i + CARD and not buf[i + 3 : i + CARD].strip(b" "):
            return i
        i = buf.find(b"END", i + 1)
    return None


def _header_length(end: int) -> int:
    """Bytes the header occupies in the file: through its END card, padded to whole blocks."""
    return math.ceil((end + CARD) / BLOCK) * BLOCK


def _read_header(source: RangedObject, start: int, limit: int, magic: bytes, what: str) -> tuple[bytes, int]:
    """The header text starting at `start` (through END) and the offset where its data begins.

    Starts from what the previous read already fetched (an fpack file's second header usually came
    with the first read), then reads on in growing ranges.
    """
    buf = bytearray(source.cached(start)[:limit])
    want = min(FIRST_READ, limit)
    scan_from = 0
    while True:
        if buf[: len(magic)] != magic[: len(buf)]:
            raise HeaderError(f"not {what}: the data does not start with {magic.decode()!r}")
        end = find_end(buf, scan_from)
        if end is not None:
            return bytes(buf[: end + CARD]), start + _header_length(end)
        if len(buf) >= limit:
            raise HeaderError(f"no END card in the first {limit} bytes of {what}")
        chunk = b""
        if not source.at_end(start + len(buf)):
            chunk = source.read(start + len(buf), min(want, limit - len(buf)))
        if not chunk:
            if not buf:
                raise HeaderError("object is empty" if start == 0 else f"file ends before {what}")
            raise HeaderError(f"file ends before the END card of {what} (truncated?)")
        scan_from = max(0, (len(buf) // CARD - 1) * CARD)
        buf += chunk
        want *= GROWTH


def _check_bz2_start(data: bytes) -> None:
    if not data:
        raise HeaderError("object is empty")
    if not data.startswith(b"BZh"[: len(data)]):
        raise HeaderError("not bzip2 data (a .fits.bz2 name, but no 'BZh' signature)")


def _read_bz2_header(source: RangedObject, limit: int) -> bytes:
    """The primary header of a bzip2-compressed FITS file, decompressing ranged reads as they come."""
    compressed_limit = max(limit, BZ2_BLOCK_MAX)
    decompressor = bz2.BZ2Decompressor()
    out = bytearray()
    pending = b""
    offset = 0
    want = min(FIRST_READ, limit)
    exhausted = False
    while True:
        if decompressor.eof:  # a multi-stream file (pbzip2, lbzip2): the next stream follows
            pending = decompressor.unused_data + pending
            if (not pending and exhausted) or not pending.startswith(b"BZh"[: len(pending)]):
                raise HeaderError("the .bz2 data ends before the header's END card")
            decompressor = bz2.BZ2Decompressor()
        if decompressor.needs_input and not pending:
            if exhausted:
                raise HeaderError("the .bz2 data ends before the header's END card (truncated file?)")
            if offset >= compressed_limit:
                raise HeaderError(f"no END card in the first {compressed_limit} compressed bytes")
            pending = source.read(offset, want)
            exhausted = len(pending) < want
            if offset == 0:
                _check_bz2_start(pending)
            offset += len(pending)
            want = max(1, min(want * GROWTH, compressed_limit - offset))
        scan_from = max(0, (len(out) // CARD - 1) * CARD)
        try:
            out += decompressor.decompress(pending, max_length=BLOCK * 64)
        except (OSError, EOFError, ValueError) as exc:
            raise HeaderError(f"corrupt bzip2 data ({exc})") from exc
        pending = b""
        if len(out) >= 9 and not out.startswith(b"SIMPLE  ="):
            raise HeaderError("not a FITS file inside the .bz2: it does not start with 'SIMPLE  ='")
        end = find_end(out, scan_from)
        if end is not None:
            return bytes(out[: end + CARD])
        if len(out) >= limit:
            raise HeaderError(f"no END card in the first {limit} bytes of the header")


def card_int(header: Mapping[str, str], keyword: str, default: int | None = None, where: str = "primary header") -> int:
    """An integer keyword of the structure; HeaderError when absent (without a default) or not an integer."""
    text = header.get(keyword)
    if text is None or not text.strip():
        if default is None:
            raise HeaderError(f"{where} has no {keyword}")
        return default
    try:
        return int(text)
    except ValueError:
        raise HeaderError(f"{where}'s {keyword} = {text[:20]!r} is not an integer") from None


def data_size(header: Header) -> int:
    """Bytes of an HDU's data, padded to whole blocks (FITS standard 4.4.1), from checked dimensions.

    Integer arithmetic only (a float overflows on NAXISn = 10^60); negative or absurd values are the
    file's error, reported as a HeaderError, never a negative offset.
    """
    naxis = card_int(header, "NAXIS", 0)
    if not 0 <= naxis <= MAX_NAXIS:
        raise HeaderError(f"primary header's NAXIS = {naxis} is outside 0-{MAX_NAXIS}")
    if naxis == 0:
        return 0
    bitpix = card_int(header, "BITPIX")
    if bitpix not in BITPIX_VALUES:
        raise HeaderError(f"primary header's BITPIX = {bitpix} is not one of 8, 16, 32, 64, -32, -64")
    dims = [card_int(header, f"NAXIS{i}") for i in range(1, naxis + 1)]
    pcount = card_int(header, "PCOUNT", 0)
    gcount = card_int(header, "GCOUNT", 1)
    negative = [f"{name} = {value}" for name, value in (*((f"NAXIS{i}", d) for i, d in enumerate(dims, 1)),
                                                         ("PCOUNT", pcount), ("GCOUNT", gcount)) if value < 0]
    if negative:
        raise HeaderError(f"primary header declares negative data dimensions ({', '.join(negative)})")
    if header.get("GROUPS") == "T" and dims[0] == 0:  # random groups: NAXIS1 = 0 is not a dimension
        dims = dims[1:]
    size = abs(bitpix) // 8 * gcount * (pcount + math.prod(dims))
    return -(-size // BLOCK) * BLOCK


# The compressed-image table's keywords that describe the table, not the image (FITS standard 10.1).
_TABLE_KEYWORDS = frozenset(
    {"XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT", "TFIELDS", "THEAP", "CHECKSUM",
     "DATASUM", "ZIMAGE", "ZCMPTYPE", "ZQUANTIZ", "ZDITHER0", "ZMASKCMP", "ZTABLE"}
)
_TABLE_KEYWORD = re.compile(r"(TTYPE|TFORM|TUNIT|TNULL|TSCAL|TZERO|TDISP|TDIM|ZTILE|ZNAME|ZVAL|ZFORM|ZCTYP)\d+")
_IMAGE_RENAMES = {
    "ZSIMPLE": "SIMPLE", "ZTENSION": "XTENSION", "ZBITPIX": "BITPIX", "ZNAXIS": "NAXIS", "ZEXTEND": "EXTEND",
    "ZBLOCKED": "BLOCKED", "ZPCOUNT": "PCOUNT", "ZGCOUNT": "GCOUNT", "ZHECKSUM": "CHECKSUM", "ZDATASUM": "DATASUM",
}
_ZNAXIS = re.compile(r"ZNAXIS(\d+)")


def image_header(table: Header) -> Header:
    """The header of the image stored in a tile-compressed table (unchanged if it is not one)."""
    if table.get("ZIMAGE") != "T":
        return table
    values: dict[str, str] = {}
    comments: dict[str, str] = {}
    for key, value in table.items():
        name = _IMAGE_RENAMES.get(key)
        if name is None and (m := _ZNAXIS.fullmatch(key)):
            name = f"NAXIS{m.group(1)}"
        if name is None:
            if key in _TABLE_KEYWORDS or _TABLE_KEYWORD.fullmatch(key):
                continue
            if key == "EXTNAME" and value == "COMPRESSED_IMAGE":  # the default name fpack gives the table
                continue
            name = key
        values.setdefault(name, value)
        comments.setdefault(name, table.comments.get(key, ""))
    return Header(values, comments)


def read_fits_header(bucket: str, key: str) -> Header:
    """The header of the FITS object `key`: primary HDU, or for `.fz` the compressed image's header.

    Raises:
        HeaderError: anything the file's bytes make go wrong (permanent; the file still exists).
        ObjectMissing: the object was deleted (permanent).
        botocore errors: S3 itself failed, for `archive.failures.classify` (throttling: retry).
    """
    try:
        return _read_fits_header(bucket, key)
    except (ArchiveError, ClientError, BotoCoreError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever else the bytes provoke is the file's doing
        logger.warning("unexpected error reading a FITS header", extra={"key": key}, exc_info=True)
        raise HeaderError(f"unreadable header data ({type(exc).__name__}: {str(exc)[:200]})") from exc


def _read_fits_header(bucket: str, key: str) -> Header:
    limit = get_settings().fits_header_max_bytes
    name = key.lower()
    if name.endswith(".bz2"):
        return parse_header(_read_bz2_header(RangedObject(bucket, key, max(limit, BZ2_BLOCK_MAX)), limit))
    source = RangedObject(bucket, key, limit)
    primary, data_start = _read_header(source, 0, limit, b"SIMPLE  =", "a FITS file")
    if not name.endswith(".fz"):
        return parse_header(primary)
    primary_data = data_size(parse_header(primary))
    extension_start = data_start + primary_data
    if source.at_end(extension_start):
        raise HeaderError(
            f"file ends before the compressed image extension (the primary HDU declares {primary_data} data "
            f"bytes after its header; the file has {source.size} bytes)"
        )
    table, _ = _read_header(source, extension_start, limit, b"XTENSION=", "the compressed image extension")
    return image_header(parse_header(table))

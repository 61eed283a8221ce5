"""A FITS file's header, read from the start of its S3 object without downloading the file.

Why: a FITS file can be hundreds of MB, and an exposure whose `.txt` header never came still needs its
header (DESIGN.md 2.1). The header is at most a few blocks at the front, so we read ranged GETs that
grow geometrically (8 blocks, then 4x more each time) until the END card, up to
`settings.fits_header_max_bytes`:

- `.fits`: the primary header;
- `.fits.bz2`: the same, stream-decompressed from the ranged reads (bzip2 emits nothing until a whole
  compressed block, up to ~900 kB, has arrived, so those reads go further);
- `.fits.fz`: fpack keeps the image in a compressed binary table in the *second* HDU. We skip the
  primary HDU's data by its size from NAXISn/BITPIX/PCOUNT/GCOUNT and return that table's header
  turned back into the image's header (ZBITPIX -> BITPIX, ...), as astropy presents it.

Cards are read by `archive.headers` (no astropy). Unreadable data raises `HeaderError` (permanent), a
missing object `ObjectMissing` (permanent); throttling and 5xx errors propagate unchanged so that the
caller retries them.
"""

from __future__ import annotations

import bz2
import math
import re
from typing import Any

from botocore.exceptions import ClientError

from archive.aws import client, is_missing_object
from archive.errors import ObjectMissing
from archive.headers import CARD, Header, HeaderError, parse_header
from archive.settings import get_settings

BLOCK = 2880
FIRST_READ = BLOCK * 8  # most headers (< ~290 cards) and an fpack primary+table header fit in one GET
GROWTH = 4
# bzip2 decompresses whole blocks of up to 900 kB; a block of incompressible data is a little bigger.
BZ2_BLOCK_MAX = 1_000_000


class RangedObject:
    """Reads byte ranges of one S3 object, remembering the last range so overlapping reads are free."""

    def __init__(self, bucket: str, key: str) -> None:
        self.bucket, self.key = bucket, key
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
        """Bytes [start, start + length): fewer at the end of the object, b"" past it."""
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
        data = response["Body"].read()
        total = _total_size(response)
        if total is None:  # the range was ignored and the whole object sent: use it, it is all we get
            self.size = len(data)
            return data[start : start + length]
        self.size = total
        return data


def _total_size(response: dict[str, Any]) -> int | None:
    """The object's size from `Content-Range: bytes 0-99/1234`, or None without one."""
    content_range = response.get("ContentRange") or ""
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else None


def _find_end(buf: bytes | bytearray, start: int) -> int | None:
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
        end = _find_end(buf, scan_from)
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
        end = _find_end(out, scan_from)
        if end is not None:
            return bytes(out[: end + CARD])
        if len(out) >= limit:
            raise HeaderError(f"no END card in the first {limit} bytes of the header")


def _data_size(header: Header) -> int:
    """Bytes of an HDU's data, padded to whole blocks (FITS standard 4.4.1)."""
    try:
        naxis = int(header.get("NAXIS", "0"))
        if naxis == 0:
            return 0
        bitpix = abs(int(header["BITPIX"]))
        dims = [int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
        pcount = int(header.get("PCOUNT", "0") or 0)
        gcount = int(header.get("GCOUNT", "1") or 1)
    except (KeyError, ValueError) as exc:
        raise HeaderError(f"primary header has unreadable data dimensions ({exc})") from exc
    if header.get("GROUPS") == "T" and dims[0] == 0:  # random groups: NAXIS1 = 0 is not a dimension
        dims = dims[1:]
    size = bitpix // 8 * gcount * (pcount + math.prod(dims))
    return math.ceil(size / BLOCK) * BLOCK


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
        HeaderError: the bytes are not a readable FITS header (permanent; the file still exists).
        ObjectMissing: the object was deleted (permanent).
        botocore errors: anything else from S3, for `archive.failures.classify` (throttling: retry).
    """
    limit = get_settings().fits_header_max_bytes
    source = RangedObject(bucket, key)
    name = key.lower()
    if name.endswith(".bz2"):
        return parse_header(_read_bz2_header(source, limit))
    primary, data_start = _read_header(source, 0, limit, b"SIMPLE  =", "a FITS file")
    if not name.endswith(".fz"):
        return parse_header(primary)
    extension_start = data_start + _data_size(parse_header(primary))
    table, _ = _read_header(source, extension_start, limit, b"XTENSION=", "the compressed image extension")
    return image_header(parse_header(table))

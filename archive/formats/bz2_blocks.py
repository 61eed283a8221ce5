"""bzip2 decompression on every core: the blocks of a .bz2 file are independent, so decode them at once.

Why: decompression is most of the time a `.fits.bz2` render takes (a 4k×4k frame is ~1.5 s of
bzip2 on one core, the rest of the render ~0.1 s), and Python's decompressor releases the GIL.

How: a bzip2 stream is `BZh<level>`, then blocks that each start with the 48-bit magic 0x314159265359
and their CRC, then the end-of-stream magic 0x177245385090 and the combined CRC, padded to a byte. The
magics are bit-aligned, so they are searched at each of the 8 bit shifts (a byte search for the five
whole bytes, then the partial ones checked). Each block is re-packed as a one-block stream of its own
(its bits shifted to a byte boundary, an end-of-stream marker whose CRC is the block's own, which is
what the combined CRC of one block is) and decoded in a thread pool; the outputs come back in order,
a bounded number in flight. Every block's CRC is still checked by the decoder.

Anything unexpected (a magic found by chance inside compressed data, a block that fails to decode or
expands past BLOCK_OUTPUT_MAX, a single block) falls back to the plain sequential decoder, skipping
what was already delivered, so the result is always exactly what `bz2.decompress` gives — or its
error. The sequential decoder hands out at most SEQUENTIAL_CHUNK at a time, so a few bytes standing
for gigabytes are never held at once.
"""

from __future__ import annotations

import bz2
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

BLOCK_MAGIC = 0x314159265359
END_MAGIC = 0x177245385090
_MASK48 = (1 << 48) - 1
SEQUENTIAL_CHUNK = 1 << 20
BLOCK_OUTPUT_MAX = 8 << 20  # a block decoded in a thread (real data: ~0.9 MB; runs of one byte: up to ~45 MB)


class Bz2Error(ValueError):
    """The data is not valid bzip2 (corrupt, truncated, or not bzip2 at all)."""


def _shift_patterns(magic: int) -> list[tuple[int, bytes]]:
    """(bit shift, whole bytes of the magic at that shift, starting one byte in unless the shift is 0)."""
    patterns = [(0, magic.to_bytes(6, "big"))]
    for shift in range(1, 8):
        seven = (magic << (8 - shift)).to_bytes(7, "big")  # the magic starts `shift` bits into byte 0
        patterns.append((shift, seven[1:6]))
    return patterns


_PATTERNS = {magic: _shift_patterns(magic) for magic in (BLOCK_MAGIC, END_MAGIC)}


def _bits(data: bytes, start: int, count: int) -> int:
    """`count` bits of `data` from bit `start` (big-endian bit order, as bzip2 writes them)."""
    first, last = start // 8, (start + count + 7) // 8
    value = int.from_bytes(data[first:last], "big")
    return (value >> (last * 8 - start - count)) & ((1 << count) - 1)


def find_magic(data: bytes, magic: int) -> list[int]:
    """Bit offsets of every occurrence of a 48-bit magic in `data`."""
    found = []
    for shift, pattern in _PATTERNS[magic]:
        lead = 0 if shift == 0 else 1
        i = data.find(pattern)
        while i >= 0:
            bit = (i - lead) * 8 + shift
            if bit >= 0 and bit + 48 <= len(data) * 8 and _bits(data, bit, 48) == magic:
                found.append(bit)
            i = data.find(pattern, i + 1)
    return sorted(found)


def _stream_header_before(data: bytes, bit: int) -> bool:
    """Whether a block magic at `bit` is the first block of a stream (`BZh1`..`BZh9` right before it)."""
    byte = bit // 8
    return bit % 8 == 0 and byte >= 4 and data[byte - 4:byte - 1] == b"BZh" and 0x31 <= data[byte - 1] <= 0x39


def _end_marker_before(data: bytes, boundary: int) -> int | None:
    """Bit offset of the end-of-stream marker that the byte-aligned `boundary` follows (marker, CRC and
    0-7 bits of padding), or None."""
    for pad in range(8):
        bit = boundary - 80 - pad
        if bit >= 0 and _bits(data, bit, 48) == END_MAGIC:
            return bit
    return None


def block_spans(data: bytes) -> list[tuple[int, int]] | None:
    """(start bit, end bit) of every block, in order, or None when the layout is not a clean sequence
    of streams (`BZh` + blocks + end marker each) and only the sequential decoder can be trusted.

    End markers are looked for only where they must be (before each stream header, and at the end of
    the data), which halves the search."""
    blocks = find_magic(data, BLOCK_MAGIC)
    if not blocks or blocks[0] != 32 or not _stream_header_before(data, 32):
        return None
    boundaries = [bit - 32 for bit in blocks[1:] if _stream_header_before(data, bit)] + [len(data) * 8]
    ends = []
    for boundary in boundaries:
        end = _end_marker_before(data, boundary)
        if end is None:
            return None
        ends.append(end)
    marks = sorted([*blocks, *ends])
    end_set = set(ends)
    spans = [(bit, marks[i + 1]) for i, bit in enumerate(marks) if bit not in end_set]
    return spans


def single_block_stream(data: bytes, start: int, end: int) -> bytes:
    """The block at bits [start, end) of `data` as a complete one-block bzip2 stream."""
    count = end - start
    crc = _bits(data, start + 48, 32)
    value = (((_bits(data, start, count) << 48) | END_MAGIC) << 32) | crc
    count += 80
    pad = -count % 8
    return b"BZh9" + (value << pad).to_bytes((count + pad) // 8, "big")


def _decode(block: bytes) -> bytes:
    """One block's output, refused past BLOCK_OUTPUT_MAX: a block of long runs can stand for ~45 MB, and
    several in flight at once would hold all of it. The caller then decodes the rest sequentially, a
    bounded chunk at a time."""
    decoder = bz2.BZ2Decompressor()
    out = decoder.decompress(block, BLOCK_OUTPUT_MAX)
    if not decoder.eof:
        raise ValueError(f"a bzip2 block expands beyond {BLOCK_OUTPUT_MAX} bytes")
    return out


def sequential(chunks: Iterable[bytes], skip: int = 0) -> Iterator[bytes]:
    """Decompress concatenated bzip2 streams from `chunks`, dropping the first `skip` output bytes.

    As `bz2.decompress`: bytes after a complete stream that do not start another are ignored; data
    that ends inside a stream is an error."""
    decompressor: bz2.BZ2Decompressor | None = None
    fed = False  # the current decompressor has been given data
    streams = 0
    for chunk in chunks:
        data = chunk
        while data or (decompressor is not None and not decompressor.eof and not decompressor.needs_input):
            if decompressor is None or decompressor.eof:
                decompressor, fed = bz2.BZ2Decompressor(), False
            try:
                # At most a chunk out per call: a few compressed bytes can stand for gigabytes of output.
                out = decompressor.decompress(data, SEQUENTIAL_CHUNK)
            except (OSError, EOFError, ValueError) as exc:
                if streams and not fed:
                    return  # trailing bytes that are not a stream
                raise Bz2Error(f"corrupt bzip2 data ({exc})") from exc
            fed = True
            data = b""
            if decompressor.eof:
                streams += 1
                data = decompressor.unused_data
            if skip:
                dropped = min(skip, len(out))
                out, skip = out[dropped:], skip - dropped
            if out:
                yield out
    if decompressor is None:
        raise Bz2Error("empty .bz2 data")
    if fed and not decompressor.eof:
        raise Bz2Error("the .bz2 data ends in the middle of a block (truncated file?)")


def _chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), SEQUENTIAL_CHUNK):
        yield data[i:i + SEQUENTIAL_CHUNK]


def decompress(data: bytes, workers: int | None = None) -> Iterator[bytes]:
    """The decompressed bytes of `data` (one or more bzip2 streams), in order, block by block."""
    workers = workers or os.cpu_count() or 1
    spans = block_spans(data) if workers > 1 else None
    if not spans or len(spans) < 2:
        yield from sequential(_chunks(data))
        return
    delivered = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bz2")
    try:
        pending: deque[Future[bytes]] = deque()
        spans_left = iter(spans)

        def submit() -> None:
            span = next(spans_left, None)
            if span is not None:
                pending.append(pool.submit(_decode, single_block_stream(data, *span)))

        for _ in range(2 * workers):
            submit()
        while pending:
            try:
                out = pending.popleft().result()
            except (OSError, EOFError, ValueError):
                break  # the sequential decoder below reports the real error, or succeeds
            submit()
            delivered += len(out)
            yield out
        else:
            return
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    yield from sequential(_chunks(data), skip=delivered)

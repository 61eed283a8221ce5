"""bzip2 decompression on the CPUs there are: a .bz2 file's blocks are independent, so decode runs of
them at once.

Why: decompression is most of the time a `.fits.bz2` render takes (a 4k×4k frame is ~1.5 s of
bzip2 on one core, the rest of the render ~0.1 s), and Python's decompressor releases the GIL.

Costs no more CPU than the sequential decoder (within a few per cent), so threads are worth it
wherever there is a second CPU and never a loss where there is not. Earlier this decoded each
~900 kB block as a stream of its own: every block paid a decoder's set-up (3.6 MB of tables
allocated and touched) and the whole file was searched at 8 bit shifts for block magics; 1.3× the
CPU of one `bz2.decompress`. Now:

- several streams (pbzip2 writes one per block; concatenated files): runs of whole streams of about
  `UNIT_BYTES`, found by their byte-aligned `BZh` headers, each decoded as it is;
- one stream (the `bzip2` tool's output): cut into runs of blocks of about `UNIT_BYTES`. A block
  starts with the 48-bit magic 0x314159265359, bit-aligned, so after each cut point the next one is
  searched at the 8 bit shifts (a byte search for the five whole bytes, then the partial ones
  checked), in a window, not in the whole file. Each run is shifted to a byte boundary behind the
  stream's own `BZh<level>` and decoded without an end-of-stream marker: the decoder checks every
  block's CRC and hands out all the blocks it has completed. (The combined CRC of the whole stream
  is not checked: it only repeats the blocks' CRCs in one number.)

Threads: `available_cpus` — the process's affinity mask, and on Lambda its memory setting (one vCPU
per 1,769 MB; fewer is one) — and of those only the ones the machine leaves idle (its load average):
two decoders time-sharing one CPU cost 1.4-1.6× the CPU of one. With one, or a file of one unit, the
sequential decoder runs alone.
Anything unexpected (a magic found by chance inside compressed data, a unit that fails to decode or
expands past UNIT_OUTPUT_MAX, trailing bytes) falls back to the plain sequential decoder, skipping what
was already delivered, so the result is always exactly what `bz2.decompress` gives — or its error. The
sequential decoder hands out at most SEQUENTIAL_CHUNK at a time, so a few bytes standing for gigabytes
are never held at once.
"""

from __future__ import annotations

import bz2
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from archive.settings import get_settings

BLOCK_MAGIC = 0x314159265359
END_MAGIC = 0x177245385090
_MASK48 = (1 << 48) - 1
SEQUENTIAL_CHUNK = 1 << 20
UNIT_BYTES = 2 << 20  # compressed bytes a thread decodes at once: 2-3 blocks of a 9 (900 kB) file
SPLIT_WINDOW = 2 << 20  # where the next block magic is looked for after a cut (a block is < 1 MB)
LAMBDA_MB_PER_VCPU = 1769  # Lambda gives one vCPU per 1,769 MB of memory
# What one unit decoded in a thread may expand to (real data: 2-3× its 2 MB; a block of runs of one byte
# can stand for ~45 MB): beyond it, the rest is decoded sequentially, a bounded chunk at a time.
UNIT_OUTPUT_MAX = 16 << 20


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
_STREAM_OPENINGS = (BLOCK_MAGIC.to_bytes(6, "big"), END_MAGIC.to_bytes(6, "big"))


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


# --- parallel decoding in units of several blocks ------------------------------------------------------


def available_cpus(lambda_memory_mb: int | None = None) -> int:
    """The CPUs this process may run on: its affinity mask (not the machine's count: a container or a
    `taskset` gives fewer), and on Lambda no more than its memory buys (one vCPU per 1,769 MB, so
    fewer than 1,769 MB is one vCPU and 2,048 MB about 1.2)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if lambda_memory_mb is not None:
        cpus = min(cpus, max(1, lambda_memory_mb // LAMBDA_MB_PER_VCPU))
    return max(1, cpus)


def decode_workers(cpus: int, load: float, machine_cpus: int) -> int:
    """Threads for `cpus` available CPUs on a machine of `machine_cpus` running `load` tasks on
    average: ours, plus one per CPU nobody else is using. Two decoders sharing one CPU each evict the
    other's 3.6 MB of tables at every switch: measured, 1.4-1.6× the CPU of one decoder and a longer
    wall time, so on a busy machine one thread is both cheaper and faster."""
    idle = machine_cpus - load
    return max(1, min(cpus, 1 + int(idle)))


def default_workers() -> int:
    """Decoding threads when the caller does not say (see available_cpus and decode_workers)."""
    cpus = available_cpus(get_settings().lambda_memory_mb)
    if cpus == 1:
        return 1
    return decode_workers(cpus, os.getloadavg()[0], os.cpu_count() or cpus)


def stream_starts(data: bytes) -> list[int]:
    """Byte offsets of every bzip2 stream header (`BZh1`-`BZh9` then a block or end-of-stream magic,
    byte-aligned as every stream starts) in `data`, first one at 0 for a valid file."""
    found = []
    i = data.find(b"BZh")
    while i >= 0:
        if i + 10 <= len(data) and 0x31 <= data[i + 3] <= 0x39 and data[i + 4:i + 10] in _STREAM_OPENINGS:
            found.append(i)
        i = data.find(b"BZh", i + 1)
    return found


def next_block(data: bytes, bit: int, window: int = SPLIT_WINDOW) -> int | None:
    """Bit offset of the first block magic at or after `bit`, looked for in the next `window` bytes."""
    best = None
    first = bit // 8
    stop = min(len(data), first + window)
    for shift, pattern in _PATTERNS[BLOCK_MAGIC]:
        lead = 0 if shift == 0 else 1
        i = data.find(pattern, first + lead, stop)
        while i >= 0:
            found = (i - lead) * 8 + shift
            if found >= bit and _bits(data, found, 48) == BLOCK_MAGIC:
                best = found if best is None else min(best, found)
                break
            i = data.find(pattern, i + 1, stop)
    return best


def aligned_bits(data: bytes, start: int, end: int) -> bytes:
    """Bits [start, end) of `data` shifted to start on a byte; the last byte's 0-7 spare bits are left
    as they come (a decoder never reads a byte it does not have whole)."""
    first, shift = divmod(start, 8)
    last = (end + 7) // 8
    value = int.from_bytes(data[first:last], "big") << shift
    return value.to_bytes(last - first + 1, "big")[1:(end - start + 7) // 8 + 1]


Unit = tuple[str, int, int]  # ("streams", first byte, end byte) or ("blocks", first bit, end bit)


def plan_units(data: bytes, unit_bytes: int = UNIT_BYTES) -> list[Unit] | None:
    """How to cut `data` into independently decodable units of about `unit_bytes`, in order, or None
    when only the sequential decoder can be trusted with it.

    Several streams (pbzip2's output, or files concatenated): runs of whole streams, decoded as they
    are. One stream: runs of whole blocks, cut where a block magic follows each `unit_bytes` (found
    by a search of the next SPLIT_WINDOW bytes at every bit shift, not of the whole file), each
    decoded as a stream without its end marker; the stream's end marker must end the data."""
    starts = stream_starts(data)
    if not starts or starts[0] != 0:
        return None
    if len(starts) > 1:
        cuts = [0]
        for start in starts[1:]:
            if start - cuts[-1] >= unit_bytes:
                cuts.append(start)
        return [("streams", a, b) for a, b in zip(cuts, [*cuts[1:], len(data)], strict=True)]
    end = _end_marker_before(data, len(data) * 8)
    if end is None or _bits(data, 32, 48) != BLOCK_MAGIC:
        return None
    cuts = [32]
    while (cut := next_block(data, cuts[-1] + unit_bytes * 8)) is not None and cut < end:
        cuts.append(cut)
    return [("blocks", a, b) for a, b in zip(cuts, [*cuts[1:], end], strict=True)]


def decode_unit(data: bytes, unit: Unit) -> bytes:
    """One unit's output (every block's CRC checked by the decoder); ValueError when it is not whole."""
    kind, start, end = unit
    if kind == "streams":
        parts, total, rest = [], 0, data[start:end]
        while rest:
            decoder = bz2.BZ2Decompressor()
            parts.append(decoder.decompress(rest, UNIT_OUTPUT_MAX + 1 - total))
            total += len(parts[-1])
            if total > UNIT_OUTPUT_MAX or not decoder.eof:
                raise ValueError(f"a unit of streams expands beyond {UNIT_OUTPUT_MAX} bytes or is not whole")
            rest = decoder.unused_data
        return b"".join(parts)
    decoder = bz2.BZ2Decompressor()
    out = decoder.decompress(data[:4] + aligned_bits(data, start, end), UNIT_OUTPUT_MAX + 1)
    if len(out) > UNIT_OUTPUT_MAX or decoder.eof or not decoder.needs_input:
        raise ValueError(f"a unit of blocks expands beyond {UNIT_OUTPUT_MAX} bytes or does not end with a block")
    return out


def decompress(data: bytes, workers: int | None = None) -> Iterator[bytes]:
    """The decompressed bytes of `data` (one or more bzip2 streams), in order, unit by unit.

    With more than one worker and more than one unit (archive of a few MB and up), the units are
    decoded in a thread pool (bz2 releases the GIL), at most two per worker in flight; otherwise, or
    when a unit fails, the plain sequential decoder (from where the units stopped) — so the result is
    always exactly what `bz2.decompress` gives, or its error."""
    workers = workers or default_workers()
    units = plan_units(data, UNIT_BYTES) if workers > 1 and len(data) > UNIT_BYTES else None
    if not units or len(units) < 2:
        yield from sequential(_chunks(data))
        return
    delivered = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bz2")
    try:
        pending: deque[Future[bytes]] = deque()
        units_left = iter(units)

        def submit() -> None:
            unit = next(units_left, None)
            if unit is not None:
                pending.append(pool.submit(decode_unit, data, unit))

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

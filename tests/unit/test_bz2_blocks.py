"""Block-parallel bzip2: exactly what bz2.decompress gives, for one stream or several, or its error."""

from __future__ import annotations

import bz2

import numpy as np
import pytest

from archive.formats.bz2_blocks import Bz2Error, block_spans, decompress, single_block_stream

# Incompressible enough that level 1 (100 kB blocks) makes several blocks of ~400 kB of data.
DATA = np.random.default_rng(7).normal(1000, 30, 200_000).astype(">i2").tobytes()


def joined(data: bytes, workers: int = 2) -> bytes:
    return b"".join(decompress(data, workers=workers))


def test_every_block_is_found_and_decodes_alone_to_its_part():
    compressed = bz2.compress(DATA, 1)
    spans = block_spans(compressed)
    assert spans is not None and len(spans) >= 3
    parts = [bz2.decompress(single_block_stream(compressed, *span)) for span in spans]
    assert b"".join(parts) == DATA and all(parts)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_parallel_output_is_the_sequential_output(workers):
    compressed = bz2.compress(DATA, 1)
    assert joined(compressed, workers) == bz2.decompress(compressed) == DATA


def test_concatenated_streams_of_different_levels_decode_in_order():
    streams = bz2.compress(DATA[:150_000], 1) + bz2.compress(DATA[150_000:], 3) + bz2.compress(b"", 9)
    assert block_spans(streams) is not None
    assert joined(streams) == DATA


def test_a_single_small_stream_and_an_empty_one_decode():
    assert joined(bz2.compress(b"SIMPLE  =", 9)) == b"SIMPLE  ="
    assert joined(bz2.compress(b"")) == b""


def test_corrupt_truncated_and_foreign_data_raise_bz2_errors():
    compressed = bytearray(bz2.compress(DATA, 1))
    compressed[len(compressed) // 2] ^= 0x55
    with pytest.raises(Bz2Error, match="corrupt"):
        joined(bytes(compressed))
    with pytest.raises(Bz2Error, match="truncated"):
        joined(bz2.compress(DATA, 1)[:-2000])
    with pytest.raises(Bz2Error):
        joined(b"SIMPLE  = T" * 100)
    with pytest.raises(Bz2Error, match="empty"):
        joined(b"")
    assert block_spans(b"not bzip2 at all") is None


def test_trailing_bytes_fall_back_to_the_sequential_decoder_which_ignores_them_as_bz2_does():
    compressed = bz2.compress(DATA, 1) + b"\x00" * 10
    assert block_spans(compressed) is None
    assert joined(compressed) == bz2.decompress(compressed) == DATA


def test_a_small_last_stream_arriving_with_the_previous_one_is_not_lost():
    streams = bz2.compress(b"first", 9) + bz2.compress(b"second", 9)
    assert joined(streams, workers=1) == b"firstsecond"


def test_a_block_of_long_runs_is_decoded_sequentially_a_bounded_chunk_at_a_time():
    data = bz2.compress(bytes(40 << 20), 9) * 3  # three one-block streams of 40 MiB of zeros each
    chunks = list(decompress(data, workers=2))
    assert sum(len(c) for c in chunks) == 3 * (40 << 20) and all(c.count(0) == len(c) for c in chunks[:3])
    assert max(len(c) for c in chunks) <= 1 << 20  # never a whole block's 40 MiB at once

"""Block-parallel bzip2: exactly what bz2.decompress gives, for one stream or several, or its error."""

from __future__ import annotations

import bz2
import os
import subprocess
import sys

import numpy as np
import pytest

from archive.formats import bz2_blocks
from archive.formats.bz2_blocks import (
    Bz2Error,
    available_cpus,
    block_spans,
    decode_workers,
    decompress,
    plan_units,
    single_block_stream,
)

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
@pytest.fixture
def small_units(monkeypatch):
    """Units of ~100 kB, so the test data makes several (real files: 2 MB)."""
    monkeypatch.setattr(bz2_blocks, "UNIT_BYTES", 100_000)


@pytest.mark.parametrize("workers", [2, 3])
def test_one_stream_is_cut_into_runs_of_blocks_that_decode_to_the_whole(small_units, workers):
    compressed = bz2.compress(DATA * 3, 1)
    units = plan_units(compressed, bz2_blocks.UNIT_BYTES)
    assert units is not None and len(units) >= 3 and {kind for kind, _, _ in units} == {"blocks"}
    spans = block_spans(compressed)
    assert spans is not None and len(units) < len(spans), "runs of several blocks, not one each"
    assert {start for _, start, _ in units} <= {start for start, _ in spans}, "every cut is a block's start"
    assert joined(compressed, workers) == DATA * 3


def test_several_streams_are_decoded_as_runs_of_whole_streams(small_units):
    streams = b"".join(bz2.compress(DATA[i:i + 100_000], 9) for i in range(0, len(DATA), 100_000))
    units = plan_units(streams, bz2_blocks.UNIT_BYTES)
    assert units is not None and len(units) >= 2 and {kind for kind, _, _ in units} == {"streams"}
    assert joined(streams) == DATA


def test_a_corrupt_unit_falls_back_to_the_sequential_error(small_units):
    compressed = bytearray(bz2.compress(DATA * 3, 1))
    compressed[len(compressed) * 2 // 3] ^= 0x55
    with pytest.raises(Bz2Error, match="corrupt"):
        joined(bytes(compressed))


def test_the_worker_count_follows_the_cpus_the_lambdas_memory_and_the_idle_ones():
    cpus = len(os.sched_getaffinity(0))
    assert available_cpus() == cpus
    assert available_cpus(lambda_memory_mb=1024) == 1  # under 1,769 MB: one vCPU
    assert available_cpus(lambda_memory_mb=2048) == 1  # ~1.2 vCPU: a second thread only competes
    assert available_cpus(lambda_memory_mb=10240) == min(cpus, 5)
    assert decode_workers(4, load=0.0, machine_cpus=4) == 4
    assert decode_workers(4, load=1.2, machine_cpus=4) == 3  # one CPU is someone else's
    assert decode_workers(2, load=13.0, machine_cpus=2) == 1  # a busy machine: no thread to spare
    assert decode_workers(2, load=0.0, machine_cpus=64) == 2  # a container's share of a big machine
    env = {**os.environ, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1536"}
    assert subprocess.run([sys.executable, "-c", "from archive.formats.bz2_blocks import default_workers;"
                           "print(default_workers())"], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "1"


THREADS_SCRIPT = """
import bz2, os, sys, threading
import numpy as np
from archive.formats import bz2_blocks
os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:int(sys.argv[1])]))
bz2_blocks.UNIT_BYTES = 100_000
data = np.random.default_rng(7).normal(1000, 30, 600_000).astype(">i2").tobytes()
workers = int(sys.argv[2]) or None
seen = set()
for chunk in bz2_blocks.decompress(bz2.compress(data, 1), workers):
    seen |= {t.name for t in threading.enumerate() if t.name.startswith("bz2")}
print(bz2_blocks.default_workers(), len(seen))
"""


def threads_seen(cpus: int, workers: int) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"}
    return subprocess.run([sys.executable, "-c", THREADS_SCRIPT, str(cpus), str(workers)], env=env,
                          capture_output=True, text=True, check=True, timeout=60).stdout.split()


def test_a_process_pinned_to_one_cpu_decodes_without_threads():
    assert threads_seen(cpus=1, workers=0) == ["1", "0"]


def test_the_workers_asked_for_are_the_threads_that_decode():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this machine lets the tests run on one CPU")
    assert threads_seen(cpus=2, workers=2)[1] == "2"

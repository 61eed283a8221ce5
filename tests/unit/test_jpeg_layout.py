"""A JPEG's layout read from its markers, and the decode memory estimated from it (archive/formats/jpeg_layout.py).

The estimate is checked against libjpeg's own sizing; tests/integration/test_hostile_inputs.py measures
the real peak memory of decoding in a subprocess.
"""

from __future__ import annotations

import struct

import pytest

from archive.formats.jpeg_layout import JpegLayoutError, coefficient_bytes, decode_bytes, draft_scale, read_layout
from tests.hostile import declaring, jpeg, with_metadata

MIB = 2**20


def sof0(width: int, height: int, components: int) -> bytes:
    body = struct.pack(">BHHB", 8, height, width, components)
    body += b"".join(bytes([i + 1, 0x11, 0]) for i in range(components))
    return b"\xff\xc0" + struct.pack(">H", len(body) + 2) + body


def sos(*components: int) -> bytes:
    body = bytes([len(components), *(b for c in components for b in (c, 0x00)), 0, 63, 0])
    return b"\xff\xda" + struct.pack(">H", len(body) + 2) + body


def test_a_baseline_file_is_one_scan_and_holds_no_coefficient_buffer():
    layout = read_layout(jpeg("RGB", (40, 30)))
    assert (layout.width, layout.height, layout.components, layout.first_scan_components) == (40, 30, 3, 3)
    assert not layout.progressive and not layout.buffers_coefficients
    assert coefficient_bytes(layout) == 0


def test_a_progressive_file_keeps_every_coefficient_of_the_full_image_whatever_the_scale():
    layout = read_layout(declaring(jpeg("L", progressive=True), 10000, 10000))
    assert layout.progressive and layout.buffers_coefficients
    assert coefficient_bytes(layout) == 1250 * 1250 * 128  # 8×8 blocks of 16-bit coefficients
    assert decode_bytes(layout, 8) > coefficient_bytes(layout) > 190 * MIB


@pytest.mark.parametrize(
    ("mode", "options", "samples_per_pixel"),
    [("RGB", {}, 1.5), ("RGB", {"subsampling": 0}, 3), ("CMYK", {}, 4)],
    ids=["rgb-4:2:0", "rgb-4:4:4", "cmyk"],
)
def test_the_coefficient_buffer_follows_the_components_and_their_sampling(mode, options, samples_per_pixel):
    layout = read_layout(declaring(jpeg(mode, progressive=True, **options), 4096, 4096))
    assert coefficient_bytes(layout) == int(4096 * 4096 * samples_per_pixel * 2)


def test_a_sequential_file_in_several_scans_is_buffered_like_a_progressive_one():
    entropy = b"\x12\x34\xff\x00\x56"
    stream = b"\xff\xd8" + sof0(800, 600, 3) + b"".join(sos(c) + entropy for c in (1, 2, 3)) + b"\xff\xd9"
    layout = read_layout(stream)
    assert not layout.progressive and layout.first_scan_components == 1 and layout.buffers_coefficients
    assert coefficient_bytes(layout) == 3 * 100 * 75 * 128


def test_a_sequential_file_whose_first_scan_holds_every_component_is_decoded_row_by_row():
    stream = b"\xff\xd8" + sof0(64, 64, 3) + sos(1, 2, 3) + b"\x01\xff\x00\x02\xff\xd0\x03" + b"\xff\xd9"
    layout = read_layout(stream)
    assert not layout.buffers_coefficients and coefficient_bytes(layout) == 0


def test_metadata_segments_are_counted_because_pillow_keeps_copies_of_them():
    layout = read_layout(with_metadata(jpeg("L"), 5 * MIB))
    assert layout.metadata_bytes > 5 * MIB
    assert decode_bytes(layout, 1) > 15 * MIB


def test_the_draft_scale_is_the_largest_power_of_two_the_requested_size_allows():
    layout = read_layout(declaring(jpeg("L"), 3000, 2000))
    assert draft_scale(layout, (336, 224)) == 8
    assert draft_scale(layout, (1000, 700)) == 2
    assert draft_scale(layout, (4000, 4000)) == 1
    scaled_down = decode_bytes(layout, 8)
    assert scaled_down < decode_bytes(layout, 1) / 32


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"GIF89a", "no start-of-image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "runs past the end"),
        (b"\xff\xd8" + sos(1), "scan before any frame"),
        (b"\xff\xd8\xff\xc0\x00\x05\x08\x00\x10" + sos(1), "frame header too short"),
        (b"\xff\xd8" + sof0(0, 100, 1) + sos(1), "declares 0×100"),
        (b"\xff\xd8\xff\xd9", "before the first scan"),
        (b"\xff\xd8" + sof0(10, 10, 1), "ends before the first scan"),
    ],
    ids=["gif", "cut-segment", "scan-first", "short-frame", "zero-width", "eoi-first", "no-scan"],
)
def test_a_file_whose_markers_do_not_describe_an_image_is_a_layout_error(data, problem):
    with pytest.raises(JpegLayoutError, match=problem):
        read_layout(data)

"""A JPEG's structure read from its markers, and the memory decoding it will take, before any decoding.

Why: a file of a few hundred bytes can declare 10000×10000 pixels, and what decoding it costs depends
on more than the pixel count. libjpeg decodes a single-scan (baseline) file row by row, and with DCT
scaling (Pillow's `draft`) only the reduced image is ever allocated. A progressive file, or a
sequential one in several scans (its first scan does not hold every component), must keep every DCT
coefficient of the whole image until its last scan:
two bytes per sample at full resolution, whatever the output scale (10000×10000 CMYK: 760 MiB). Pillow
also keeps a copy of every APPn/COM segment. So the thumbnailer reads the layout here (frame size,
sampling factors, progressive or not, the first scan's components, metadata bytes), estimates what the decoder will
allocate, and refuses a file over its budget before Pillow sees it.

Pure functions over bytes; the standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Start-of-frame markers (ITU T.81 table B.1): C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
FRAME_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_LOSSLESS = frozenset({0xC3, 0xC7, 0xCB, 0xCF})  # no DCT, so no scaled decoding
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
SOI, EOI, SOS, COM = 0xD8, 0xD9, 0xDA, 0xFE
COEFFICIENT_BYTES = 64 * 2  # one 8×8 block of 16-bit coefficients
# Pillow keeps each APPn/COM payload (`applist`) and joins ICC chunks into one more copy; with the
# bytes of the file itself that is about three copies of the metadata while the header is read.
METADATA_COPIES = 3


class JpegLayoutError(ValueError):
    """The markers do not describe a JPEG image (truncated or garbage); `args[0]` says where."""


@dataclass(frozen=True, slots=True)
class JpegLayout:
    width: int
    height: int
    precision: int  # bits per sample (8; 12 and 16 exist, Pillow decodes neither)
    sampling: tuple[tuple[int, int], ...]  # (horizontal, vertical) factor of each component
    progressive: bool
    lossless: bool
    first_scan_components: int  # components in the first scan (all of them in a single-scan file)
    metadata_bytes: int  # APPn and COM segments before the first scan

    @property
    def buffers_coefficients(self) -> bool:
        """Whether libjpeg must hold the whole image's coefficients: when the file is progressive or
        its first scan leaves out a component (more scans follow), as libjpeg decides at that scan.
        A sequential file carries each component in exactly one scan (T.81), so a first scan holding
        them all is the only one."""
        return self.progressive or self.first_scan_components < self.components

    @property
    def components(self) -> int:
        return len(self.sampling)


def _u16(data: bytes, at: int) -> int:
    if at + 2 > len(data):
        raise JpegLayoutError(f"the data ends inside a marker segment (byte {at})")
    return data[at] << 8 | data[at + 1]


def read_layout(data: bytes) -> JpegLayout:
    """The layout of JPEG `data`, from its markers up to the first scan's header (no entropy data read).

    Raises JpegLayoutError when there is no SOI, no frame header before the first scan, or a segment
    runs past the end of the data.
    """
    if data[:2] != b"\xff\xd8":
        raise JpegLayoutError("no start-of-image marker")
    at, metadata, frame = 2, 0, None
    while True:
        marker, at = _next_marker(data, at)
        if marker in _STANDALONE or marker == 0x00:
            continue
        if marker in (SOI, EOI):
            raise JpegLayoutError(f"marker {marker:02X} before the first scan")
        length = _u16(data, at)
        if length < 2 or at + length > len(data):
            raise JpegLayoutError(f"a segment (marker {marker:02X}) runs past the end of the data")
        if 0xE0 <= marker <= 0xEF or marker == COM:
            metadata += length
        elif marker in FRAME_MARKERS:
            frame = (marker, data[at + 2 : at + length])
        elif marker == SOS:
            if frame is None:
                raise JpegLayoutError("a scan before any frame header")
            scan_components = data[at + 2] if length > 2 else 0
            return _layout(frame[0], frame[1], scan_components, metadata)
        at += length


def _next_marker(data: bytes, at: int) -> tuple[int, int]:
    """The next marker's code at or after `at`, and the offset just past it. Stray bytes before a
    marker are skipped, as libjpeg does, and so are fill bytes (repeated FF)."""
    marker_at = data.find(b"\xff", at)
    if marker_at < 0:
        raise JpegLayoutError("the data ends before the first scan")
    at = marker_at + 1
    while at < len(data) and data[at] == 0xFF:
        at += 1
    if at >= len(data):
        raise JpegLayoutError("the data ends before the first scan")
    return data[at], at + 1


def _layout(marker: int, segment: bytes, scan_components: int, metadata: int) -> JpegLayout:
    if len(segment) < 6:
        raise JpegLayoutError("frame header too short")
    precision, height, width, count = segment[0], _u16(segment, 1), _u16(segment, 3), segment[5]
    if len(segment) < 6 + 3 * count or count == 0:
        raise JpegLayoutError(f"frame header declares {count} components but does not hold them")
    sampling = tuple((segment[6 + 3 * i + 1] >> 4, segment[6 + 3 * i + 1] & 15) for i in range(count))
    if any(not (1 <= h <= 4 and 1 <= v <= 4) for h, v in sampling):
        raise JpegLayoutError("a component's sampling factor is outside 1-4")
    if width == 0 or height == 0:
        raise JpegLayoutError(f"frame declares {width}×{height} pixels")
    return JpegLayout(
        width=width,
        height=height,
        precision=precision,
        sampling=sampling,
        progressive=marker in _PROGRESSIVE,
        lossless=marker in _LOSSLESS,
        first_scan_components=scan_components,
        metadata_bytes=metadata,
    )


def coefficient_bytes(layout: JpegLayout) -> int:
    """The whole-image coefficient buffer libjpeg allocates for a multi-scan file (0 for one scan).

    Per component: its size in 8×8 blocks (scaled by its sampling factor against the largest),
    rounded up to whole MCUs, as libjpeg sizes its virtual arrays.
    """
    if not layout.buffers_coefficients:
        return 0
    max_h = max(h for h, _ in layout.sampling)
    max_v = max(v for _, v in layout.sampling)
    total = 0
    for h, v in layout.sampling:
        blocks_w = math.ceil(math.ceil(layout.width * h / max_h) / 8)
        blocks_h = math.ceil(math.ceil(layout.height * v / max_v) / 8)
        total += _round_up(blocks_w, h) * _round_up(blocks_h, v) * COEFFICIENT_BYTES
    return total


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def draft_scale(layout: JpegLayout, requested: tuple[int, int]) -> int:
    """The DCT scaling denominator (1, 2, 4 or 8) a draft request for `requested` pixels gets (as Pillow
    picks it); 1 for lossless files, which libjpeg cannot scale."""
    if layout.lossless:
        return 1
    ratio = min(layout.width // max(1, requested[0]), layout.height // max(1, requested[1]))
    return next((s for s in (8, 4, 2) if ratio >= s), 1)


def decode_bytes(layout: JpegLayout, scale: int) -> int:
    """Bytes decoding `layout` at 1/`scale` allocates beyond the file itself: the metadata copies, the
    coefficient buffer, the output image (Pillow stores 1 byte per pixel for one band, 4 otherwise)
    and its conversion to RGB (CMYK), and libjpeg's per-row buffers.
    """
    out_w, out_h = -(-layout.width // scale), -(-layout.height // scale)
    pixel = 1 if layout.components == 1 else 4
    images = 1 if layout.components in (1, 3) else 2
    rows = out_w * layout.components * 16 * max(v for _, v in layout.sampling) * 2
    return (
        METADATA_COPIES * layout.metadata_bytes
        + coefficient_bytes(layout)
        + images * out_w * out_h * pixel
        + rows
    )

"""The JPEG codec both ingest (thumbnails) and render (pictures from a JPG) use: checked, then decoded small.

Why it is built this way:
- Speed. A site's medium JPG can be several megapixels and a thumbnail is 128 px high, so the JPEG is
  decoded at a reduced scale (libjpeg's DCT scaling through Pillow's `draft`): the decoder never
  produces the full-size image. It keeps at least `DRAFT_MARGIN` times the target size so the final
  Lanczos resample still has real pixels to filter, which keeps the result within JPEG re-encoding
  noise of a full-decode resize (`make bench` measures both).
- Safety. Only JPEG data is accepted. Before Pillow sees the file, its markers are read
  (`archive.formats.jpeg_layout`): the pixel count is checked against a pixel limit, and the memory
  the decoder will really allocate (a progressive or multi-scan file keeps every coefficient of the
  full image, whatever the draft scale; Pillow copies the metadata) against a decode-memory limit, so
  a 1 kB file declaring 10000×10000 progressive CMYK is refused, not decoded into 800 MiB. Every bad
  input raises `JpegError` with a reason and an upload-log status.
- Cold start. Pillow is deferred (`archive.lazy`).
- Repeatability. `encode_jpeg` writes no metadata: the same image gives the same bytes.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable

from archive import lazy
from archive.errors import PermanentError
from archive.formats.jpeg_layout import JpegLayout, JpegLayoutError, decode_bytes, draft_scale, read_layout
from archive.settings import get_settings
from archive.statuses import FAILED, REJECTED

SizeFor = Callable[[int, int], tuple[int, int]]  # displayed (width, height) -> output (width, height)

# Decode at no less than this multiple of the target size, then Lanczos-resample to it. libvips keeps 2;
# 1.75 lets a 3000×2000 frame decode at 1/8 (exact 8×8 block means, 375×250) instead of 1/4, which is
# what makes it 2.5× faster than a full decode (entropy decoding is the rest of the cost), while the
# difference from a full-decode resize stays about half of what JPEG re-encoding alone makes.
DRAFT_MARGIN = 1.75
ORIENTATION_TAG = 0x0112

# Leading bytes of formats that plausibly land in the archive under a .jpg name, for a useful reason.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"SIMPLE  =", "FITS"),
    (b"BZh", "bzip2"),
    (b"BM", "BMP"),
)


class JpegError(PermanentError, ValueError):
    """JPEG data no retry can decode (for a thumbnail or a render).

    `status` is the upload-log status: `rejected` when the data is not a JPEG at all, `failed` when it
    is a JPEG that cannot be decoded (empty, truncated, corrupt, unsupported, or too many pixels).
    `over_budget` marks a refusal for the pixel or decode-memory budget, checked before decoding: the
    image API answers those 413, the data's own faults 422.
    """

    topic = "thumbnail"  # the upload log's word for the step that decodes a medium JPG

    def __init__(self, status: str, reason: str, over_budget: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.over_budget = over_budget


def _kind_of(data: bytes) -> str:
    if data[4:12] == b"ftypavif" or data[4:12] == b"ftypheic":
        return "HEIF/AVIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return "unrecognised"


def jpeg_signature_problem(data: bytes) -> JpegError | None:
    """Why `data` is not JPEG data at all (empty, or another format), else None."""
    if not data:
        return JpegError(FAILED, "empty file (0 bytes)")
    if not data.startswith(b"\xff\xd8"):
        return JpegError(REJECTED, f"not a JPEG: the data is {_kind_of(data)} ({len(data)} bytes)")
    return None


def _layout(data: bytes) -> JpegLayout:
    """The JPEG's layout from its markers (no pixels, no Pillow), or JpegError saying what is wrong."""
    problem = jpeg_signature_problem(data)
    if problem is not None:
        raise problem
    try:
        return read_layout(data)
    except JpegLayoutError as exc:
        raise JpegError(FAILED, f"unreadable JPEG header: {exc}") from exc


def _open_jpeg(data: bytes) -> lazy.Image.Image:
    """Read the JPEG header with Pillow (no pixels), or raise JpegError saying what is wrong."""
    # The JPEG plugin directly, not Image.open: its errors keep their reason ("cannot handle 12-bit
    # layers"), and our own limits are the only ones applied.
    try:
        with warnings.catch_warnings():  # broken EXIF (read here for DPI) warns per tag; it is dropped anyway
            warnings.simplefilter("ignore")
            return lazy.JpegImagePlugin.JpegImageFile(io.BytesIO(data))
    except (SyntaxError, OSError, ValueError, IndexError) as exc:  # struct errors surface as these
        raise JpegError(FAILED, f"unreadable JPEG header: {exc or type(exc).__name__}") from exc


def _check_limits(layout: JpegLayout, size_for: SizeFor, max_pixels: int, max_decode_bytes: int) -> None:
    """Refuse, before decoding, a JPEG with too many pixels or one whose decoding needs too much memory.

    The draft scale depends on the EXIF orientation, which only Pillow reads; both orientations are
    tried and the larger need counts.
    """
    width, source_height = layout.width, layout.height
    if width * source_height > max_pixels:
        raise JpegError(
            FAILED,
            f"{width}×{source_height} = {width * source_height} pixels is over the limit of {max_pixels} "
            "(a decompression bomb?)",
            over_budget=True,
        )
    need = max(decode_bytes(layout, draft_scale(layout, _draft_request(layout.width, layout.height, size_for, turned)))
               for turned in (False, True))
    if need > max_decode_bytes:
        kind = "progressive" if layout.progressive else "multi-scan" if layout.buffers_coefficients else "single-scan"
        if layout.lossless:
            kind = "lossless (cannot be decoded scaled)"
        metadata = layout.metadata_bytes // 2**20
        raise JpegError(
            REJECTED,
            f"decoding this {kind} {width}×{source_height} JPEG with {layout.components} component(s) would "
            f"take about {need // 2**20} MiB, over the {max_decode_bytes // 2**20} MiB limit"
            + (f" (its APPn/COM metadata alone is {metadata} MiB)" if metadata else ""),
            over_budget=True,
        )


def _draft_request(width: int, height: int, size_for: SizeFor, turned: bool) -> tuple[int, int]:
    """The size asked of the decoder (stored frame): the target with DRAFT_MARGIN to spare."""
    target = _target(width, height, size_for, turned)
    return math.ceil(target[0] * DRAFT_MARGIN), math.ceil(target[1] * DRAFT_MARGIN)


def _target(width: int, height: int, size_for: SizeFor, turned: bool) -> tuple[int, int]:
    """The output's size in the stored (unrotated) frame; `turned` for EXIF orientations 5-8."""
    shown = (height, width) if turned else (width, height)
    out_w, out_h = size_for(*shown)
    return (out_h, out_w) if turned else (out_w, out_h)


def _orientation(image: lazy.Image.Image) -> int:
    """The EXIF orientation (1–8), 1 when absent or unreadable: bad metadata is not worth a failure."""
    try:
        with warnings.catch_warnings():  # Pillow warns about each broken tag; we ignore them all
            warnings.simplefilter("ignore")
            value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF is ignored; the output carries none anyway
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _transposition(orientation: int) -> lazy.Image.Transpose | None:
    return {
        2: lazy.Image.Transpose.FLIP_LEFT_RIGHT,
        3: lazy.Image.Transpose.ROTATE_180,
        4: lazy.Image.Transpose.FLIP_TOP_BOTTOM,
        5: lazy.Image.Transpose.TRANSPOSE,
        6: lazy.Image.Transpose.ROTATE_270,
        7: lazy.Image.Transpose.TRANSVERSE,
        8: lazy.Image.Transpose.ROTATE_90,
    }.get(orientation)


def fit_size(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """Size of a `width`×`height` image fitted inside the box: aspect kept, never enlarged. The side
    that limits the scale gets the box's size exactly; the other is rounded."""
    if width <= box_width and height <= box_height:
        return width, height
    if width * box_height >= height * box_width:  # width limits
        return box_width, max(1, min(box_height, round(height * box_width / width)))
    return max(1, min(box_width, round(width * box_height / height))), box_height


def to_jpeg_mode(image: lazy.Image.Image) -> lazy.Image.Image:
    """`image` in a mode a JPEG can hold and a browser shows as intended: L for one band, else RGB.

    A JPEG decodes to L, RGB or CMYK; the other cases (palette, 16-bit and float, alpha) are what
    other sources give, and are mapped here so one function decides how any image is displayed:
    16-bit is scaled to 8 bits (not clipped, as `convert("L")` would), 32-bit and float are stretched
    from their minimum to their maximum, alpha is dropped.
    """
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode.startswith("I;16"):
        return image.convert("I").point(lambda v: v * (255 / 65535) + 0.5).convert("L")
    if mode in ("I", "F"):  # no fixed range: stretch what is there
        low, high = image.getextrema()
        assert isinstance(low, int | float) and isinstance(high, int | float)  # one band: (min, max)
        scale = 255 / ((high - low) or 1)
        return image.convert("F").point(lambda v: (v - low) * scale + 0.5).convert("L")
    if mode in ("1", "LA", "La"):
        return image.convert("L")
    if mode in ("P", "PA"):
        palette_mode = image.palette.mode if image.palette else "RGB"
        return image.convert("L" if palette_mode == "L" else "RGB")
    return image.convert("RGB")  # RGBA, RGBa, RGBX, CMYK, YCbCr, LAB, HSV


def decode_jpeg(
    data: bytes, size_for: SizeFor, *, max_pixels: int | None = None, max_decode_bytes: int | None = None
) -> lazy.Image.Image:
    """JPEG `data` decoded to the size `size_for(width, height)` gives for its displayed size.

    EXIF orientation is applied and the result is L or RGB with no metadata. Decoding is scaled down by
    libjpeg (draft) as far as the target allows; the limits (default: the THUMBNAIL_MAX_PIXELS and
    THUMBNAIL_MAX_DECODE_BYTES settings) are checked on the frame headers before any pixel is decoded.

    Raises:
        JpegError: not a JPEG, one that cannot be decoded, or over the pixel or memory limit.
    """
    settings = get_settings()
    layout = _layout(data)
    _check_limits(
        layout,
        size_for,
        settings.thumbnail_max_pixels if max_pixels is None else max_pixels,
        settings.thumbnail_max_decode_bytes if max_decode_bytes is None else max_decode_bytes,
    )
    image = _open_jpeg(data)
    if image.size != (layout.width, layout.height):  # the limits were checked on the layout's size
        raise JpegError(FAILED, f"inconsistent frame headers ({image.size} and {layout.width}×{layout.height})")
    width, source_height = image.size
    orientation = _orientation(image)
    transpose = _transposition(orientation)
    turned = orientation >= 5  # orientations 5-8 turn the image a quarter: width and height trade places
    target = _target(width, source_height, size_for, turned)

    # The mode stays as stored: asking draft for "L" would turn a colour image grey.
    drafted = image.draft(image.mode, _draft_request(width, source_height, size_for, turned))
    box = drafted[1] if drafted else None
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise JpegError(FAILED, f"corrupt or truncated JPEG: {exc}") from exc
    image = to_jpeg_mode(image)
    if image.size != target:
        image = image.resize(target, lazy.Image.Resampling.LANCZOS, box=box)
    if transpose is not None:
        image = image.transpose(transpose)
    image.info = {}  # Pillow would otherwise carry a JPEG comment over into the output
    return image


def encode_jpeg(image: lazy.Image.Image, quality: int) -> bytes:
    """Baseline JPEG with optimised Huffman tables and no metadata: the same image, the same bytes."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()



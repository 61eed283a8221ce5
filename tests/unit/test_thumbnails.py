"""make_thumbnail: sizes, orientation, modes, bad data, determinism (write_thumbnail against S3:
tests/integration/test_thumbnail_writes.py)."""

from __future__ import annotations

import io
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from archive.formats.jpeg import JpegError, to_jpeg_mode
from archive.ingest.thumbnails import make_thumbnail, thumbnail_size
from bench.bench_thumbnails import naive_resized, sky_jpeg


def jpeg(image: Image.Image, **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **{"quality": 90, **save})
    return out.getvalue()


def noise_jpeg(width: int, height: int, mode: str = "RGB", seed: int = 1) -> bytes:
    bands = 3 if mode == "RGB" else 1
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, bands), dtype=np.uint8)
    return jpeg(Image.fromarray(pixels.squeeze(axis=2) if bands == 1 else pixels, mode))


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    image.load()
    return image


def failure(data: bytes, **kwargs: object) -> JpegError:
    with pytest.raises(JpegError) as caught:
        make_thumbnail(data, **kwargs)
    return caught.value


def patch_sof(data: bytes, *, width: int | None = None, height: int | None = None, bits: int | None = None) -> bytes:
    """The same JPEG with its frame header (SOF0) claiming other dimensions or precision."""
    at = data.index(b"\xff\xc0") + 4  # marker, 2-byte length, then precision, height, width
    patched = bytearray(data)
    if bits is not None:
        patched[at] = bits
    if height is not None:
        patched[at + 1 : at + 3] = struct.pack(">H", height)
    if width is not None:
        patched[at + 3 : at + 5] = struct.pack(">H", width)
    return bytes(patched)


# --------------------------------------------------------------------------------------------------
# Sizes


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ((900, 600), (192, 128)),  # landscape
        ((600, 900), (85, 128)),  # portrait: 600 * 128 / 900 = 85.3
        ((500, 500), (128, 128)),  # square
        ((100, 60), (100, 60)),  # smaller than the target: kept, not upscaled
        ((4000, 3000), (171, 128)),  # large enough to be decoded at 1/8
    ],
    ids=["landscape", "portrait", "square", "tiny", "large"],
)
def test_thumbnail_is_target_height_with_aspect_ratio_kept(source, expected):
    assert opened(make_thumbnail(noise_jpeg(*source))).size == expected


def test_height_and_quality_arguments_are_honoured():
    data = sky_jpeg(900, 600, "L")
    low, high = make_thumbnail(data, height=64, quality=30), make_thumbnail(data, height=64, quality=95)
    assert opened(low).size == opened(high).size == (96, 64)
    assert len(low) < len(high)


def test_thumbnail_stays_close_to_a_full_decode_lanczos_resize():
    """Reduced-scale decoding must cost less fidelity than JPEG re-encoding itself does."""
    data = sky_jpeg(3000, 2000, "L")
    reference = naive_resized(data)
    reencoded = np.asarray(opened(jpeg(reference, quality=85)), dtype=float)
    floor = np.abs(np.asarray(reference, dtype=float) - reencoded).mean()
    ours = np.asarray(opened(make_thumbnail(data, 128, 85)), dtype=float)
    assert ours.shape == reencoded.shape
    assert np.abs(ours - reencoded).mean() < floor


# --------------------------------------------------------------------------------------------------
# Orientation, modes, metadata


ORIENTATION, MAKE = 0x0112, 0x010F


def exif_bytes(tags: dict[int, object]) -> bytes:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    return exif.tobytes()


def marked_image(width: int, height: int) -> Image.Image:
    """Black, with a white block in the stored top-left corner, to see where rotation puts it."""
    image = Image.new("L", (width, height), 0)
    image.paste(255, (0, 0, width // 4, height // 4))
    return image


def bright_corner(image: Image.Image) -> str:
    w, h = image.size
    corners = {
        "top-left": (w // 10, h // 10),
        "top-right": (w - 1 - w // 10, h // 10),
        "bottom-left": (w // 10, h - 1 - h // 10),
        "bottom-right": (w - 1 - w // 10, h - 1 - h // 10),
    }
    bright = [name for name, xy in corners.items() if image.getpixel(xy) > 200]
    assert len(bright) == 1, bright
    return bright[0]


@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [
        (1, (192, 128), "top-left"),
        (3, (192, 128), "bottom-right"),  # turned half way
        (6, (85, 128), "top-right"),  # shown turned a quarter clockwise: width and height swap
        (8, (85, 128), "bottom-left"),  # a quarter anticlockwise
    ],
)
def test_exif_orientation_is_applied_to_size_and_pixels(orientation, size, corner):
    data = jpeg(marked_image(600, 400), exif=exif_bytes({ORIENTATION: orientation}))
    thumbnail = opened(make_thumbnail(data))
    assert thumbnail.size == size
    assert bright_corner(thumbnail) == corner


def test_output_carries_no_metadata():
    exif = exif_bytes({ORIENTATION: 1, MAKE: "SecretCameraMaker"})
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = jpeg(Image.new("RGB", (400, 300), (10, 20, 30)), exif=exif, icc_profile=icc, comment=b"site note")
    source = Image.open(io.BytesIO(data))
    assert {"exif", "icc_profile", "comment"} <= source.info.keys()  # the input really has them

    out = make_thumbnail(data)
    assert b"SecretCameraMaker" not in out and b"ICC_PROFILE" not in out and b"site note" not in out
    thumbnail = opened(out)
    assert not thumbnail.getexif()
    assert not {"exif", "icc_profile", "comment"} & thumbnail.info.keys()


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_grey_stays_grey_and_colour_stays_colour(mode):
    assert opened(make_thumbnail(noise_jpeg(400, 300, mode))).mode == mode


def test_cmyk_jpeg_becomes_an_rgb_thumbnail_of_the_same_colour():
    data = jpeg(Image.new("CMYK", (400, 300), (0, 255, 255, 0)))  # pure red in Pillow's CMYK mapping
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    thumbnail = opened(make_thumbnail(data))
    assert thumbnail.mode == "RGB" and thumbnail.size == (171, 128)
    red, green, blue = thumbnail.getpixel((85, 64))
    assert red > 240 and green < 15 and blue < 15


def test_16_bit_image_is_scaled_to_8_bits_not_clipped():
    image = Image.new("I;16", (4, 1))
    for x, value in enumerate((0, 1000, 40000, 65535)):
        image.putpixel((x, 0), value)
    converted = to_jpeg_mode(image)
    assert converted.mode == "L"
    assert [converted.getpixel((x, 0)) for x in range(4)] == [0, 4, 156, 255]


def test_float_image_is_stretched_over_its_range():
    image = Image.new("F", (3, 1))
    for x, value in enumerate((-2.0, 0.5, 3.0)):
        image.putpixel((x, 0), value)
    converted = to_jpeg_mode(image)
    assert [converted.getpixel((x, 0)) for x in range(3)] == [0, 128, 255]


def test_palette_image_keeps_its_colours():
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 200, 30, 40] + [0] * 762)
    image.putpixel((1, 0), 1)
    converted = to_jpeg_mode(image)
    assert converted.mode == "RGB"
    assert converted.getpixel((1, 0)) == (200, 30, 40)


def test_12_bit_jpeg_fails_with_the_reason():
    error = failure(patch_sof(noise_jpeg(64, 64, "L"), bits=12))
    assert error.status == "failed"
    assert "12-bit" in error.reason


# --------------------------------------------------------------------------------------------------
# Bad data


def test_zero_bytes_fail():
    error = failure(b"")
    assert error.status == "failed" and "empty" in error.reason


def test_truncated_jpeg_fails():
    data = noise_jpeg(800, 600)
    error = failure(data[: len(data) // 2])
    assert error.status == "failed" and "truncated" in error.reason


def test_jpeg_cut_inside_its_header_fails():
    error = failure(noise_jpeg(64, 64)[:40])
    assert error.status == "failed" and "header" in error.reason


# Progressive, with EXIF: the most parsing paths a damaged file can break.
EXIF_PROGRESSIVE = jpeg(
    Image.open(io.BytesIO(noise_jpeg(120, 80))), progressive=True, exif=exif_bytes({ORIENTATION: 6, MAKE: "x"})
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(min_value=0, max_value=len(EXIF_PROGRESSIVE)),
    changes=st.lists(st.tuples(st.integers(0, len(EXIF_PROGRESSIVE) - 1), st.integers(0, 255)), max_size=4),
)
def test_damaged_jpeg_gives_a_thumbnail_or_a_thumbnail_error_never_anything_else(cut, changes):
    """Any other exception would be taken for a transient fault and the event retried forever."""
    damaged = bytearray(EXIF_PROGRESSIVE)
    for position, value in changes:
        damaged[position] = value
    try:
        out = make_thumbnail(bytes(damaged[:cut]))
    except JpegError as error:
        assert error.status in ("failed", "rejected") and error.reason
    else:
        assert opened(out).height <= 128


def test_png_renamed_jpg_is_rejected():
    out = io.BytesIO()
    Image.new("RGB", (50, 50)).save(out, "PNG")
    error = failure(out.getvalue())
    assert error.status == "rejected"
    assert "not a JPEG" in error.reason and "PNG" in error.reason


def test_fits_file_named_jpg_is_rejected():
    error = failure(b"SIMPLE  =                    T" + b" " * 2850)
    assert error.status == "rejected" and "FITS" in error.reason


def test_image_over_the_pixel_limit_fails_before_decoding(settings_env):
    settings_env(THUMBNAIL_MAX_PIXELS="100000")
    assert opened(make_thumbnail(noise_jpeg(300, 300))).size == (128, 128)  # 90 000 pixels: allowed
    error = failure(noise_jpeg(400, 300))  # 120 000 pixels
    assert error.status == "failed" and "over the limit of 100000" in error.reason


def test_decompression_bomb_header_is_refused_without_decoding():
    # 60000×60000 claimed by a 64×64 file: decoding would need 3.6 GB, or hit the end of the data and
    # say "truncated". A limit error shows the header alone decided.
    bomb = patch_sof(noise_jpeg(64, 64, "L"), width=60000, height=60000)
    error = failure(bomb)
    assert error.status == "failed"
    assert "3600000000 pixels is over the limit" in error.reason


def test_max_pixels_argument_overrides_the_setting():
    error = failure(noise_jpeg(100, 100), max_pixels=9999)
    assert "over the limit of 9999" in error.reason


# --------------------------------------------------------------------------------------------------
# Repeatability and cold start


def test_same_input_gives_identical_bytes():
    data = sky_jpeg(1536, 1024, "RGB")
    assert make_thumbnail(data) == make_thumbnail(data)


def test_importing_the_module_does_not_import_pillow():
    code = "import sys, archive.ingest.thumbnails; print('PIL' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("target", [1, 96, 128, 300])
def test_a_thumbnail_is_the_target_height_with_the_aspect_kept_and_never_enlarged(target):
    for width in (1, 2, 3, 127, 128, 129, 1000, 3000, 65535):
        for height in (1, 2, 3, 127, 128, 129, 1000, 2000, 65535):
            expected = (width, height) if height <= target else (max(1, round(width * target / height)), target)
            assert thumbnail_size(width, height, target) == expected, (width, height)

"""Hostile files, made on purpose: JPEGs declaring sizes their data does not hold, odd modes and
metadata floods, FITS headers with garbage structure keywords. Shared by the unit, integration and
memory tests; each maker returns bytes.
"""

from __future__ import annotations

import struct
import tempfile

import numpy as np
from PIL import Image

CARD = 80
BLOCK = 2880


def jpeg(mode: str = "L", size: tuple[int, int] = (16, 16), *, progressive: bool = False, seed: int = 0,
         quality: int = 50, **options: object) -> bytes:
    """A real JPEG of noise, as Pillow writes it (`options` go to `Image.save`)."""
    bands = {"L": 1, "RGB": 3, "CMYK": 4}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], bands), dtype=np.uint8)
    image = Image.fromarray(pixels[:, :, 0] if bands == 1 else pixels, mode=mode)
    with tempfile.TemporaryFile() as out:  # a real file: Pillow's buffer for progressive output can run short
        image.save(out, "JPEG", progressive=progressive, quality=quality, **options)
        out.seek(0)
        return out.read()


def segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, offset of its FF, segment length) of each marker segment before the first scan."""
    found, at = [], 2
    while at < len(data):
        marker = data[at + 1]
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        found.append((marker, at, length))
        if marker == 0xDA:
            break
        at += 2 + length
    return found


def declaring(data: bytes, width: int, height: int, precision: int | None = None) -> bytes:
    """`data` with its frame header changed to declare `width`×`height` (the scans stay as they were)."""
    for marker, at, _ in segments(data):
        if marker in (0xC0, 0xC1, 0xC2):
            bits = data[at + 4] if precision is None else precision
            return data[: at + 4] + struct.pack(">BHH", bits, height, width) + data[at + 9 :]
    raise ValueError("no frame header")


def with_metadata(data: bytes, total_bytes: int, marker: int = 0xFE) -> bytes:
    """`data` with `total_bytes` of COM (or another APPn) segments after its SOI."""
    chunk = 65533
    full, rest = divmod(total_bytes, chunk)
    pieces = [bytes([0xFF, marker]) + struct.pack(">H", chunk + 2) + b"x" * chunk] * full
    if rest:
        pieces.append(bytes([0xFF, marker]) + struct.pack(">H", rest + 2) + b"x" * rest)
    return data[:2] + b"".join(pieces) + data[2:]


def card(keyword: str, value: str) -> bytes:
    return f"{keyword:<8}= {value:>20}".ljust(CARD).encode()


def header_block(cards: list[bytes]) -> bytes:
    text = b"".join(cards) + b"END".ljust(CARD)
    return text + b" " * (-len(text) % BLOCK)


def fz_file(primary_cards: list[bytes], *, data_bytes: int = 0, extension: bool = True) -> bytes:
    """A `.fits.fz`-shaped file: a primary header with the given structure cards, `data_bytes` of data,
    then (when `extension`) a compressed-image table header holding DATE-OBS."""
    primary = header_block([card("SIMPLE", "T"), *primary_cards])
    table = header_block([
        card("XTENSION", "'BINTABLE'"), card("BITPIX", "8"), card("NAXIS", "2"), card("NAXIS1", "8"),
        card("NAXIS2", "1"), card("PCOUNT", "0"), card("GCOUNT", "1"), card("TFIELDS", "1"),
        card("ZIMAGE", "T"), card("ZBITPIX", "16"), card("ZNAXIS", "2"), card("ZNAXIS1", "4"),
        card("ZNAXIS2", "2"), card("DATE-OBS", "'2022-06-29T03:12:45'"),
    ])
    return primary + b"\0" * data_bytes + (table + b"\0" * BLOCK if extension else b"")

"""Draws img/stretch-compare.png, docs/image-api.md's side by side: `python img/stretch_compare.py`.

Four of the reference frames of bench/stretch_reference.py (a 4 % sky gradient, a bright galaxy,
faint nebulosity, hot pixels and cosmic rays), each rendered to 300 pixels by the fits2image-style
renderer (zscale limits on the frame's own pixels, linear, Pillow's thumbnail) and by the image API's
own code (archive.formats.fits_data + archive.render.picture) with the default `zscale` and with
`asinh`; under each, the figures tests/unit/test_stretch_quality.py checks: the share of pixels at
≤ 5 (of 255), the sky's grey (the picture's median), the share at 255.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stretch_reference import (  # noqa: E402 - the repository root is put on the path first
    fits2image_picture,
    fits_bytes,
    our_picture,
    picture_figures,
    reference_frame,
)

FRAMES = ("gradient-4", "galaxy", "nebula", "hot-pixels")
PANEL = 300
BACKGROUND = (250, 250, 247)
INK = (40, 44, 52)
TITLE = ImageFont.load_default(size=15)
SMALL = ImageFont.load_default(size=12)


def columns(body: bytes) -> list[tuple[str, Image.Image]]:
    box = (PANEL, PANEL)
    return [("fits2image-style", fits2image_picture(body, box)),
            ("ours, zscale (default)", our_picture(body, box)),
            ("ours, stretch=asinh", our_picture(body, box, stretch="asinh"))]


def main() -> None:
    margin, label_width, caption = 16, 150, 34
    rows = []
    for name in FRAMES:
        frame = reference_frame(name)
        rows.append((frame, columns(fits_bytes(frame.data))))
    heights = [max(p.height for _, p in cols) for _, cols in rows]
    width = margin + label_width + 3 * (PANEL + margin)
    height = margin + 22 + sum(h + caption + margin for h in heights)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, (title, _) in enumerate(rows[0][1]):
        draw.text((margin + label_width + i * (PANEL + margin), margin), title, font=TITLE, fill=INK)
    y = margin + 22
    for (frame, cols), row_height in zip(rows, heights, strict=True):
        draw.multiline_text((margin, y), frame.name + "\n" + "\n".join(_wrap(frame.description, 22)), font=SMALL,
                            fill=INK)
        for i, (_, picture) in enumerate(cols):
            x = margin + label_width + i * (PANEL + margin)
            canvas.paste(picture.convert("RGB"), (x, y))
            f = picture_figures(picture)
            draw.text((x, y + picture.height + 4),
                      f"<=5: {f['dark'] * 100:.1f} %   sky grey {f['sky']:.0f}   255: {f['white'] * 100:.2f} %",
                      font=SMALL, fill=INK)
        y += row_height + caption + margin
    out = Path(__file__).with_name("stretch-compare.png")
    canvas.save(out, optimize=True)
    print(f"wrote {out} ({canvas.width}×{canvas.height})")


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


if __name__ == "__main__":
    main()

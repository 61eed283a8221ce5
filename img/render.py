"""Draws img/render.png, the README's picture of the image API: `python img/render.py`.

A simulated 1536×1024 exposure (the site simulator's sky, with a faint nebula so the stretch has
something to show) is written as a `.fits.bz2`, then rendered by the very code the API runs
(archive.formats.fits_data + archive.render.picture): left, the FITS data as it is, scaled from its minimum to
its maximum (what a plain viewer shows); middle, `GET /thumbnails/{base}?width=360&label=…` (zscale);
right, `color=true` from three frames of one smart stack through rp, gp and B.
"""

from __future__ import annotations

import bz2
import io
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive.formats.fits_data import reduce_fits  # noqa: E402 - the repository root is put on the path first
from archive.formats.jpeg import fit_size  # noqa: E402
from archive.local.simulate import FILTER_BANDS, star_field  # noqa: E402
from archive.render.params import RenderParams  # noqa: E402
from archive.render.picture import finish, fits_picture  # noqa: E402

SHAPE = (1024, 1536)
PANEL = 360
BACKGROUND = (250, 250, 247)
INK = (40, 44, 52)
TITLE = ImageFont.load_default(size=15)
SMALL = ImageFont.load_default(size=12)


def frame(band: str | None = None, seed: int = 3) -> np.ndarray:
    """Stars over a faint elliptical nebula, 16-bit counts like a site's raw frame."""
    stars = star_field(np.random.default_rng(seed), SHAPE, stars=400, sky=np.random.default_rng(42),
                       band=band).astype(np.float64)
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    glow = {"red": 260.0, "green": 120.0, "blue": 60.0}.get(band or "", 160.0)
    stars += glow * np.exp(-(((xx - 760) / 330) ** 2 + ((yy - 540) / 190) ** 2))
    return np.clip(stars, 0, 65535).astype(np.uint16)


def fits_bz2(data: np.ndarray) -> bytes:
    out = io.BytesIO()
    fits.PrimaryHDU(data).writeto(out)
    return bz2.compress(out.getvalue(), 9)


def render(frames: list[np.ndarray], params: RenderParams) -> Image.Image:
    reduced = [reduce_fits(io.BytesIO(fits_bz2(f)), "fits.bz2", lambda w, h: fit_size(w, h, *params.box),
                           max_pixels=10**8, header_limit=2880 * 100) for f in frames]
    return Image.open(io.BytesIO(finish(fits_picture(reduced, params), params)))


def as_is(data: np.ndarray) -> Image.Image:
    """The data scaled from its minimum to its maximum, rows flipped as a picture's."""
    scaled = (data - data.min()) / max(1, int(data.max()) - int(data.min())) * 255
    picture = Image.fromarray(scaled.astype(np.uint8)[::-1])
    return picture.resize(fit_size(*picture.size, PANEL, PANEL), Image.Resampling.LANCZOS)


def main() -> None:
    grey = frame()
    panels = [
        (as_is(grey), "the FITS data, min to max", "tst-kb001ms-…-EX00.fits.bz2, 1536 x 1024"),
        (render([grey], RenderParams(width=PANEL, height=PANEL, label="M 42  rp  60 s")),
         "GET /thumbnails/{base}", "width=360, label=M 42 rp 60 s, zscale"),
        (render([frame(FILTER_BANDS[f], seed=i) for i, f in enumerate(("rp", "gp", "B"))],
                RenderParams(width=PANEL, height=PANEL, color=True)),
         "GET /thumbnails/{base}?color=true", "red, green, blue: rp, gp, B of one smart stack"),
    ]
    margin, caption = 16, 44
    canvas = Image.new("RGB", (margin + len(panels) * (PANEL + margin), margin + caption + PANEL * 2 // 3 + margin),
                       BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, (picture, title, detail) in enumerate(panels):
        x = margin + i * (PANEL + margin)
        draw.text((x, margin), title, font=TITLE, fill=INK)
        draw.text((x, margin + 20), detail, font=SMALL, fill=INK)
        canvas.paste(picture.convert("RGB"), (x, margin + caption))
    out = Path(__file__).with_name("render.png")
    canvas.save(out, optimize=True)
    print(f"wrote {out} ({canvas.width}×{canvas.height})")


if __name__ == "__main__":
    main()

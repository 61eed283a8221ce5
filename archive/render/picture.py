"""Pixels to picture: reduced FITS frames or a medium JPG -> the JPEG the image API serves.

- Size: the picture fits inside the requested box, keeps the frame's aspect and is never enlarged
  (`archive.formats.jpeg.fit_size`, as the ingest thumbnails).
- FITS: each frame (already reduced to about that size, archive.formats.fits_data) is stretched
  (archive.render.stretch, on statistics of the full-resolution frame), made 8-bit, resampled
  (Hamming window), and flipped vertically: FITS rows run from the bottom of the sky up, pictures from the top down.
- Colour: red, green and blue frames are stretched each on its own statistics; frames of different
  shapes are each fitted to the box and then cropped about their centres to the size they share.
- Label: white text with a dark outline in the lower-left corner, sized to the picture and shrunk
  until it fits its width (measured with `textbbox`, which Pillow 10 kept when it removed the `getsize`
  the reference service crashed on). The font is DejaVu Sans, bundled in `fonts/` (Lambda has no
  system fonts, and Pillow's own covers Latin only): Latin, Greek, Cyrillic and the symbols labels
  use (Hα, —, °, ★, ☉, ±, Å). No CJK font is bundled: one is 5-20 MB against DejaVu's 0.7 MB, in a zip
  kept under Lambda's limit, for labels that name objects, filters and exposures; such characters
  draw as boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from archive import lazy
from archive.formats.fits_data import Reduced
from archive.formats.jpeg import JpegError, decode_jpeg, encode_jpeg, fit_size
from archive.render.params import RenderParams, TooLarge, Unrenderable
from archive.render.stretch import NoFiniteData, stretch

LABEL_MIN_PX = 7
LABEL_MAX_PX = 48
LABEL_FONT = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"


@lru_cache(maxsize=64)
def label_font(size: int) -> lazy.ImageFont.FreeTypeFont:
    """The bundled label font at `size` pixels (loaded once per size per process)."""
    return lazy.ImageFont.truetype(str(LABEL_FONT), size=size)


def channel(frame: Reduced, params: RenderParams) -> lazy.np.ndarray:
    """One frame as display grey levels (uint8) at its output size, FITS orientation.

    Stretched first (on the full-resolution statistics of `frame.sample`), then made 8-bit and
    resampled: an 8-bit resample is several times faster than a float one (what a 4000-pixel picture
    spends its time on), for at most half a grey level of difference. The reduction leaves less than
    twice the output's size, so this step only interpolates; it uses a Hamming window, not Lanczos,
    whose outer lobes ring around the spikes block averaging leaves of a hot pixel or a star's core
    (dark halos and white overshoot, measured: 1.4 % of a 200-pixel picture black around hot pixels)."""
    np, Image = lazy.np, lazy.Image
    try:
        # The reduced frame is this render's own: stretched in place (a 4000-pixel picture: 64 MB less).
        shown = stretch(frame.data, params.stretch, params.percentile, params.median, frame.sample, overwrite=True)
    except NoFiniteData as exc:
        raise Unrenderable(f"nothing to show: {exc}") from exc
    size = fit_size(frame.width, frame.height, *params.box)
    picture = Image.fromarray(to_bytes(shown), mode="L")
    if picture.size != size:
        picture = picture.resize(size, Image.Resampling.HAMMING)
    return np.asarray(picture, dtype=np.uint8)


def centre_crop(planes: Sequence[lazy.np.ndarray]) -> list[lazy.np.ndarray]:
    """The planes cut about their centres to the rows and columns they all have."""
    rows = min(p.shape[0] for p in planes)
    cols = min(p.shape[1] for p in planes)
    out = []
    for plane in planes:
        top, left = (plane.shape[0] - rows) // 2, (plane.shape[1] - cols) // 2
        out.append(plane[top:top + rows, left:left + cols])
    return out


def to_bytes(plane: lazy.np.ndarray) -> lazy.np.ndarray:
    """Brightness 0-1 (float32) as grey levels 0-255, rounded, in place of the float plane."""
    np = lazy.np
    plane *= np.float32(255)
    plane += np.float32(0.5)
    np.clip(plane, 0, 255, out=plane)
    return plane.astype(np.uint8)


def fits_picture(frames: Sequence[Reduced], params: RenderParams) -> lazy.Image.Image:
    """A grey picture of one frame, or the colour composite of three (red, green, blue)."""
    np, Image = lazy.np, lazy.Image
    planes = [channel(frame, params) for frame in frames]
    if len(planes) == 1:
        picture = Image.fromarray(planes[0], mode="L")
    else:
        picture = Image.fromarray(np.dstack(centre_crop(planes)), mode="RGB")
    return picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM)


def jpg_picture(data: bytes, params: RenderParams, max_pixels: int) -> lazy.Image.Image:
    """A medium JPG fitted to the box (decoded at a reduced scale where libjpeg can)."""
    try:
        return decode_jpeg(data, lambda w, h: fit_size(w, h, *params.box), max_pixels=max_pixels)
    except JpegError as exc:
        if exc.over_budget:
            raise TooLarge(f"the JPG is over a budget: {exc.reason}") from exc
        raise Unrenderable(f"the JPG cannot be rendered: {exc.reason}") from exc


def draw_label(picture: lazy.Image.Image, text: str) -> lazy.Image.Image:
    """`text` in the lower-left corner, white on a dark outline, as large as fits (7-48 px); a label
    too long even at 7 px is cut short with an ellipsis."""
    if not text:
        return picture
    width, height = picture.size
    size = max(LABEL_MIN_PX, min(LABEL_MAX_PX, round(min(width, height) * 0.08)))
    draw = lazy.ImageDraw.Draw(picture)
    while True:
        font = label_font(size)
        margin, stroke = max(2, size // 5), max(1, size // 12)
        left, _, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
        fits = right - left <= width - 2 * margin
        if fits or size <= LABEL_MIN_PX:
            break
        size -= 1
    while not fits and len(text) > 1:
        text = text[:-2] + "…" if len(text) > 2 else text[:1]
        left, _, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
        fits = right - left <= width - 2 * margin
    white = 255 if picture.mode == "L" else (255, 255, 255)
    black = 0 if picture.mode == "L" else (0, 0, 0)
    draw.text((margin - left, height - margin - bottom), text, font=font, fill=white, stroke_width=stroke,
              stroke_fill=black)
    return picture


def finish(picture: lazy.Image.Image, params: RenderParams) -> bytes:
    return encode_jpeg(draw_label(picture, params.label), params.quality)

"""A contact sheet: the thumbnails the archive made, tiled with their names, as one PNG.

It shows at a glance that thumbnails exist, are the right shape and look like the sky; the demo saves
one and the README shows it. Pure (bytes in, PNG bytes out), so it can be tested without the stack.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (24, 26, 32)
LABEL = (200, 204, 212)
MISSING = (90, 30, 30)


def contact_sheet(
    tiles: Sequence[tuple[str, bytes | None]], *, columns: int = 8, tile_height: int = 128, title: str = ""
) -> bytes:
    """PNG of `(label, jpeg bytes or None)` tiles, `columns` per row; a missing image is a red box."""
    if not tiles:
        raise ValueError("a contact sheet needs at least one tile")
    images: list[tuple[str, Image.Image | None]] = []
    for label, data in tiles:
        picture = None
        if data is not None:
            picture = Image.open(io.BytesIO(data)).convert("RGB")
            if picture.height != tile_height:
                width = max(1, round(picture.width * tile_height / picture.height))
                picture = picture.resize((width, tile_height))
        images.append((label, picture))
    tile_width = max((p.width for _, p in images if p is not None), default=tile_height)
    font = ImageFont.load_default()
    label_height, pad = 14, 6
    title_height = 22 if title else 0
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    sheet = Image.new(
        "RGB",
        (pad + columns * (tile_width + pad), title_height + pad + rows * (tile_height + label_height + pad)),
        BACKGROUND,
    )
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 5), title, fill=LABEL, font=font)
    for index, (label, picture) in enumerate(images):
        row, col = divmod(index, columns)
        x = pad + col * (tile_width + pad)
        y = title_height + pad + row * (tile_height + label_height + pad)
        if picture is None:
            draw.rectangle((x, y, x + tile_width - 1, y + tile_height - 1), fill=MISSING)
        else:
            sheet.paste(picture, (x + (tile_width - picture.width) // 2, y))
        draw.text((x, y + tile_height + 1), label[:30], fill=LABEL, font=font)
    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=True)
    return out.getvalue()

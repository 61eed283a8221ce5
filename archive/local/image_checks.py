"""The demo's checks of the image API, from the outside: HTTP to the local front, then the picture's link.

One exposure is rendered from its large FITS (`.fits.bz2`) with a label, one colour composite from a
smart stack taken through three filters; each answer must be a 200 whose link serves a JPEG of the size
it announces (grey, or with three different channels), and asking again must be a cache hit. The
pictures are saved beside the contact sheet.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def get_json(url: str) -> Answer:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return Answer(response.status, json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, json.loads(exc.read() or b"{}"))


def get_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return bytes(response.read())


def judge(endpoint: str, first: Answer, again: Answer, picture: bytes | None, colour: bool) -> tuple[bool, str]:
    """(whether one render came back as promised, what was seen); pure: the fetching is the caller's."""
    if first.status != 200 or picture is None:
        return False, f"{endpoint} answered {first.status}: {first.body.get('message', first.body)}"
    image = Image.open(io.BytesIO(picture))
    problems = []
    if image.format != "JPEG" or image.size != (first.body["width"], first.body["height"]):
        problems.append(f"got a {image.format} {image.size[0]}×{image.size[1]}, announced "
                        f"{first.body['width']}×{first.body['height']}")
    if colour:
        bands = np.asarray(image.convert("RGB"), dtype=float)
        if image.mode != "RGB" or np.abs(bands[..., 0] - bands[..., 2]).mean() < 1:
            problems.append(f"not a colour picture ({image.mode})")
    elif image.mode != "L":
        problems.append(f"a grey frame came back as {image.mode}")
    if first.body.get("cached") is not False or again.body.get("cached") is not True:
        problems.append(f"cached {first.body.get('cached')} then {again.body.get('cached')}, not false then true")
    if problems:
        return False, f"{endpoint}: {'; '.join(problems)}"
    return True, f"{image.size[0]}×{image.size[1]} {image.mode}, a cache hit the second time: {endpoint}"


def check_render(api_url: str, base_filename: str, query: dict[str, str], saved: Path) -> tuple[bool, str]:
    """Ask the image API twice for one picture, fetch it by its link, and save it to `saved`."""
    endpoint = f"{api_url}/thumbnails/{base_filename}?{urlencode(query)}"
    first = get_json(endpoint)
    picture = get_bytes(first.body["url"]) if first.status == 200 else None
    again = get_json(endpoint)
    if picture is not None:
        saved.write_bytes(picture)
    return judge(endpoint, first, again, picture, colour=query.get("color") == "true")

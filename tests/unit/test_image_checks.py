"""The demo's verdict on an image API answer (the HTTP part runs in tests/e2e)."""

from __future__ import annotations

import io

from PIL import Image

from archive.local.image_checks import Answer, judge


def picture(mode: str, size: tuple[int, int], tint: bool = False) -> bytes:
    colour = (200, 100, 50) if tint else (90, 90, 90)
    out = io.BytesIO()
    Image.new(mode, size, colour if mode == "RGB" else 90).save(out, format="JPEG")
    return out.getvalue()


FIRST = Answer(200, {"url": "u", "width": 64, "height": 48, "cached": False})
AGAIN = Answer(200, {**FIRST.body, "cached": True})


def test_a_picture_of_the_announced_size_that_is_cached_the_second_time_passes():
    assert judge("e", FIRST, AGAIN, picture("L", (64, 48)), colour=False)[0]
    assert judge("e", FIRST, AGAIN, picture("RGB", (64, 48), tint=True), colour=True)[0]


def test_wrong_colours_sizes_cache_flags_and_statuses_are_named():
    assert "not a colour picture" in judge("e", FIRST, AGAIN, picture("RGB", (64, 48)), colour=True)[1]
    assert "came back as RGB" in judge("e", FIRST, AGAIN, picture("RGB", (64, 48)), colour=False)[1]
    assert "announced 64×48" in judge("e", FIRST, AGAIN, picture("L", (60, 48)), colour=False)[1]
    assert "not false then true" in judge("e", FIRST, FIRST, picture("L", (64, 48)), colour=False)[1]
    ok, detail = judge("e", Answer(404, {"message": "no exposure"}), AGAIN, None, colour=False)
    assert not ok and "404: no exposure" in detail

"""The image API's query parameters: parsed strictly, normalised, and hashed into a cache key.

Why strict: the reference service turned bad numbers into 500s, read booleans two ways and ignored
typos. Here every parameter has one spelling, one type and one range, and anything else is a
`BadParameter` (HTTP 400) naming the parameter, so a client learns what to fix. Unknown parameters
are refused too: `widht=300` silently giving a 200-pixel image is a bug report waiting to happen.

Why canonical: the cache key must be the same for every request that would render the same pixels,
in every process (the reference used Python's per-process `hash`, so every cold start missed). The
key is the SHA-256 of a sorted JSON document holding the normalised parameters that affect pixels,
the source objects (key + ETag: a re-uploaded file is a new image) and RENDER_VERSION, which is bumped
whenever the rendering itself changes or the document changes shape. Only what changes the picture
goes in, so requests that would draw the same picture share one object:

- `percentile` only where it is used (`asinh`, `linear`, or `median=true`; `zscale` ignores it), and
  snapped to a grid when parsed (0.1, finer from 99: `PERCENTILE_STEP`, below, says why), so 98.01 and
  98.02 are one picture (and the snapped value is the one rendered, so the key never lies);
- FITS options not at all for a JPG source;
- for a FITS source whose dimensions are known, the size the picture comes out at rather than the
  box asked for: a FITS picture depends on the box only through `fit_size(width, height, *box)` (the
  reduction factor and the resample both start from it), so 200×200 and 200×150 on a 4:3 frame are one;
- a colour composite under its set, not under the member the request named: one object whichever
  of the three frames was asked for (`cache_directory`).

Imports no numpy or Pillow (the JPEG codec defers Pillow): the handler parses and answers 400s without them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from archive import errors
from archive.errors import ArchiveError, PermanentError, TemporaryError
from archive.formats.filenames import FilenameError, parse_base_filename, parse_filename
from archive.formats.jpeg import fit_size

# 2: the key document holds the output size and drops unused options; 3: statistics from the
# full-resolution sample, the sky a dark grey, highlights rolled off (issue 19's stretch).
RENDER_VERSION = 3
SIZE_RANGE = (16, 4000)
QUALITY_RANGE = (10, 95)
PERCENTILE_RANGE = (50.0, 100.0)
# The percentile grid: steps of 0.1 below 99, of 0.01 from 99 up. Why a grid: every distinct float
# was a render and an object of its own, while 98.01 and 98.02 put the white point 0.01 % of the
# pixels apart, which no eye tells from each other. Why these steps: what a snap can change is half a
# step of rank, and it matters in proportion to the fraction clipped (100 - percentile). Measured on
# star fields (200×150 and 800×600, asinh and linear): a half step of 0.05 changes at most 1-2 % of
# the pixels by more than 2 grey levels below 99, but at 99.9 it is half the clipped stars (up to 45
# levels), and 99.95 would become 100, no clipping at all; a half step of 0.005 at 99-99.9 changes no
# pixel by more than 3 levels. So the grid is fine where the white point is sensitive, coarse where
# it is not, and the snapped value is the one rendered.
PERCENTILE_STEP = 0.1
PERCENTILE_FINE_FROM = 99.0
PERCENTILE_FINE_STEP = 0.01
# Stretches whose white point is the `percentile` (archive/render/stretch.py); `zscale` finds its own
# and reads `percentile` only with median=true. Checked against the renderer by a test.
PERCENTILE_STRETCHES = ("asinh", "linear")
LABEL_MAX = 100
# Unicode categories a label may not hold: controls, format characters (invisible, bidi overrides),
# surrogates, private use, unassigned, line and paragraph separators. Every letter, mark, number,
# punctuation, symbol and space is accepted (`str.isprintable` also refused U+00A0 and the other spaces).
LABEL_REFUSED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
SOURCES = ("auto", "jpg", "small", "large")
STRETCHES = ("zscale", "asinh", "linear")
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
CHANNEL_PARAMS = ("r", "g", "b")
# Options only FITS data can honour: with one of these set, `source=auto` never picks the JPG.
FITS_ONLY = ("median", "percentile", "stretch", "color")
KNOWN = ("width", "height", "quality", "label", "image", "median", "percentile", "color", "source", "stretch",
         *CHANNEL_PARAMS)


class RenderError(ArchiveError):
    """A request the image API answers with an error status; `payload()` is the JSON body. Client
    errors are permanent (asking again changes nothing); throttling and outages are temporary."""

    http_status = 500
    topic = "render"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details

    @property
    def message(self) -> str:
        return self.reason

    def payload(self) -> dict[str, Any]:
        return {"message": self.reason, **self.details}


class BadParameter(RenderError, PermanentError):
    http_status = 400

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message, param=param)


class NotFound(RenderError, PermanentError):
    http_status = 404


class TooLarge(RenderError, errors.TooLarge):
    http_status = 413


class Unrenderable(RenderError, errors.Unreadable):
    http_status = 422


class Throttled(RenderError, TemporaryError):
    http_status = 429


class UpstreamFailed(RenderError, TemporaryError):
    http_status = 502


class UpstreamTimeout(RenderError, TemporaryError):
    http_status = 504


class RenderTimeout(RenderError, TemporaryError):
    """The render passed its deadline (RENDER_DEADLINE_SECONDS) and was stopped; 504 naming the source."""

    http_status = 504


@dataclass(frozen=True)
class RenderParams:
    width: int = 200
    height: int = 200
    quality: int = 80
    label: str = ""
    image: bool = False  # answer a 302 to the picture instead of JSON; not part of the cache key
    median: bool = False
    percentile: float = 99.5
    color: bool = False
    source: str = "auto"
    stretch: str = "zscale"
    channels: tuple[str, str, str] | None = None  # explicit r, g, b base filenames for color
    fits_only_given: tuple[str, ...] = ()  # which FITS-only options the request set

    @property
    def box(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def uses_percentile(self) -> bool:
        return self.median or self.stretch in PERCENTILE_STRETCHES

    def pixel_options(self, for_fits: bool, sizes: tuple[tuple[int, int], ...] | None = None) -> dict[str, Any]:
        """What changes the pixels, normalised: FITS-only options do not apply to a JPG source, nor
        `percentile` to a stretch that ignores it. `sizes` are the FITS sources' full dimensions when
        known: the box is then replaced by the size each comes out at, which is all it decides."""
        options: dict[str, Any] = {"quality": self.quality, "label": self.label}
        if for_fits and sizes is not None and len(sizes) > 0:
            options["output"] = [list(fit_size(*size, *self.box)) for size in sizes]
        else:
            options.update(width=self.width, height=self.height)
        if for_fits:
            options.update(median=self.median, stretch=self.stretch, color=self.color)
            if self.uses_percentile:
                options["percentile"] = self.percentile
        return options


INTEGER = re.compile(r"[+-]?[0-9]{1,9}")  # a sign at most once, ASCII digits, short enough to parse at once
NUMBER_MAX_CHARS = 32


def _shown(raw: str) -> str:
    """A parameter's value as quoted back in a message: cut short, so a 5,000-digit value is no 5 kB answer."""
    return repr(raw if len(raw) <= 40 else raw[:40] + "…")


def _integer(name: str, raw: str, low: int, high: int) -> int:
    text = raw.strip()
    if not INTEGER.fullmatch(text):
        raise BadParameter(name, f"{name} must be a whole number from {low} to {high}, got {_shown(raw)}")
    value = int(text)
    if not low <= value <= high:
        raise BadParameter(name, f"{name} must be from {low} to {high}, got {value}")
    return value


def _boolean(name: str, raw: str) -> bool:
    try:
        return BOOLEANS[raw.strip().lower()]
    except KeyError:
        raise BadParameter(name, f"{name} must be one of true/false/1/0/yes/no, got {_shown(raw)}") from None


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise BadParameter(name, f"{name} must be one of {', '.join(choices)}, got {_shown(raw)}")
    return value


def _percentile(raw: str) -> float:
    low, high = PERCENTILE_RANGE
    text = raw.strip()
    try:
        if len(text) > NUMBER_MAX_CHARS or not text.isascii() or "_" in text:
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise BadParameter("percentile", f"percentile must be a number from {low:g} to {high:g}, "
                                         f"got {_shown(raw)}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadParameter("percentile", f"percentile must be from {low:g} to {high:g}, got {_shown(raw)}")
    return snap_percentile(value)


def snap_percentile(value: float) -> float:
    """`value` on the percentile grid (0.1 below 99, 0.01 from there), within the range."""
    fine = round(round(value / PERCENTILE_FINE_STEP) * PERCENTILE_FINE_STEP, 6)
    snapped = fine if fine >= PERCENTILE_FINE_FROM else round(round(value / PERCENTILE_STEP) * PERCENTILE_STEP, 6)
    low, high = PERCENTILE_RANGE
    return min(high, max(low, snapped))


def _label(raw: str) -> str:
    if len(raw) > LABEL_MAX:
        raise BadParameter("label", f"label must be at most {LABEL_MAX} characters, got {len(raw)}")
    refused = next((c for c in raw if unicodedata.category(c) in LABEL_REFUSED), None)
    if refused is not None:
        raise BadParameter("label", "label must be printable text (no control characters or line breaks), "
                                    f"got U+{ord(refused):04X}")
    return raw


def _base_filename(name: str, raw: str) -> str:
    try:
        return parse_base_filename(raw.strip()).base_filename
    except FilenameError as exc:
        raise BadParameter(name, f"{name} must be a base filename (site-instrument-YYYYMMDD-counter): "
                                 f"{exc.reason}") from None


def _channels(query: Mapping[str, str], color: bool) -> tuple[str, str, str] | None:
    """The explicit r, g, b frames of a colour image: all three or none, and only with color=true."""
    given = [name for name in CHANNEL_PARAMS if name in query]
    if not given:
        return None
    if not color:
        raise BadParameter(given[0], "r, g and b name the frames of a colour image: they need color=true")
    if len(given) != 3:
        missing = next(name for name in CHANNEL_PARAMS if name not in query)
        raise BadParameter(missing, "give all three of r, g and b, or none (the frames are then matched)")
    red, green, blue = (_base_filename(name, query[name]) for name in CHANNEL_PARAMS)
    return red, green, blue


# Parameter -> its parser (the value's text in, the typed value out).
_PARSERS: dict[str, Callable[[str], Any]] = {
    "width": lambda raw: _integer("width", raw, *SIZE_RANGE),
    "height": lambda raw: _integer("height", raw, *SIZE_RANGE),
    "quality": lambda raw: _integer("quality", raw, *QUALITY_RANGE),
    "label": _label,
    "image": lambda raw: _boolean("image", raw),
    "median": lambda raw: _boolean("median", raw),
    "color": lambda raw: _boolean("color", raw),
    "percentile": _percentile,
    "source": lambda raw: _choice("source", raw, SOURCES),
    "stretch": lambda raw: _choice("stretch", raw, STRETCHES),
}


def parse_params(query: Mapping[str, str] | None) -> RenderParams:
    """The request's parameters.

    Raises:
        BadParameter: the first parameter (in name order) that is unknown or wrong, named.
    """
    query = dict(query or {})
    for name in sorted(query):
        if name not in KNOWN:
            raise BadParameter(name[:40], f"unknown parameter {_shown(name)}; known: {', '.join(KNOWN)}")
    values: dict[str, Any] = {name: parse(query[name]) for name, parse in _PARSERS.items() if name in query}
    values["channels"] = _channels(query, bool(values.get("color")))
    # Only a value other than the default asks for FITS data: `?stretch=zscale` is what a JPG source
    # would be drawn with anyway, and must not switch `source=auto` away from it.
    defaults = RenderParams()
    fits_only = tuple(name for name in FITS_ONLY if name in values and values[name] != getattr(defaults, name))
    if values.get("source") == "jpg" and fits_only:
        raise BadParameter(fits_only[0], f"{fits_only[0]} needs FITS data; it cannot apply to source=jpg")
    return RenderParams(**values, fits_only_given=fits_only)


@dataclass(frozen=True)
class SourceRef:
    """One S3 object a render reads, as it is now (the ETag changes when it is re-uploaded)."""

    key: str
    etag: str
    size: int
    # The image's width×height in pixels when it was read to choose the source (`source=auto`, colour):
    # a FITS picture's cache key then names the size it comes out at instead of the box.
    dimensions: tuple[int, int] | None = None

    @property
    def filename(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def canonical_document(params: RenderParams, sources: tuple[SourceRef, ...], for_fits: bool) -> str:
    """The exact text hashed into the cache key."""
    known = tuple(s.dimensions for s in sources if s.dimensions is not None)
    sizes = known if for_fits and sources and len(known) == len(sources) else None
    document = {
        "render_version": RENDER_VERSION,
        "options": params.pixel_options(for_fits, sizes),
        "sources": [{"key": s.key, "etag": s.etag.strip('"')} for s in sources],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def cache_directory(base_filename: str, sources: tuple[SourceRef, ...]) -> str:
    """The folder under `thumbnails/`: the exposure's base filename, or for a colour composite the
    earliest of its set's (base filenames sort by site, camera, night and counter), so the composite
    is one object whichever member the request named."""
    if len(sources) < 2:
        return base_filename
    bases = []
    for ref in sources:
        try:
            bases.append(parse_filename(ref.filename).base_filename)
        except FilenameError:
            return base_filename
    return min(bases)


def cache_key(base_filename: str, params: RenderParams, sources: tuple[SourceRef, ...], for_fits: bool) -> str:
    """`thumbnails/{directory}/{sha256}.jpg`: the same in every process for the same pixels."""
    digest = hashlib.sha256(canonical_document(params, sources, for_fits).encode("ascii")).hexdigest()
    return f"thumbnails/{cache_directory(base_filename, sources)}/{digest}.jpg"

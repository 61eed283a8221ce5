"""Which S3 objects a render reads: an exposure's files, the one `source=` picks, a colour set's frames.

An exposure's files are found with one ListObjectsV2 of `data/{base_filename}-`, which also gives each
file's ETag (part of the cache key) and size (checked against the byte budget before any GET):

- `jpg`, `small` and `large` are the file roles of docs/contracts.md §1 (medium JPG, small FITS, large
  FITS; `archive.formats.filenames.FileRole`), the role's preferred reduction first, then names sort.
- `source=auto`: the smallest source that fills the box (at least as wide or as high: a picture is
  only ever scaled down): the medium JPG when it fills and no FITS-only option is set to something
  other than its default, else the small FITS when it fills, else the large FITS when it fills; when
  none does, the largest there is (the JPG first among equals: it is the cheapest to draw). Sizes come
  from headers, never from decoding: the JPEG's frame header (a 64 kB ranged GET, a few more when
  metadata comes first; never the whole file) and the FITS header (archive.formats.fits_header:
  ranged GETs of its first blocks), each remembered per ETag and read only when the choice needs it
  (a JPG that fills spares the FITS headers, a small FITS that fills spares the large one's).
- A full filename (`…-EX10.fits`) pins that one file.

Colour (`color=true`) needs a red, a green and a blue frame: the three base filenames the request names
(`r`, `g`, `b`), or the exposures that share the requested one's smart stack (`SMARTSTK`, else LCO's
request number `REQNUM`) and were taken by filters of the three colours, found in the `images` table
(same site, within a day). Of several frames of one colour the most stacked (`SSTKNUM`), then the
latest, wins; of each frame's files, the smallest FITS that fills the box (as `source=auto`). A missing
colour is a 404 that names it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

import db
from archive.aws import client
from archive.database import get_engine
from archive.errors import Unreadable
from archive.formats.filenames import (
    FilenameError,
    FileRole,
    ParsedName,
    file_role,
    parse_base_filename,
    parse_filename,
    reductions,
)
from archive.formats.fits_data import image_dimensions
from archive.formats.fits_header import read_fits_header
from archive.formats.headers import HeaderError
from archive.formats.jpeg_layout import FRAME_MARKERS
from archive.render.params import BadParameter, NotFound, RenderParams, SourceRef, TooLarge

DIRECTORY = "data"
# `source=` word -> the role of the file it reads.
SOURCE_ROLES = {"jpg": FileRole.JPG_MEDIUM, "small": FileRole.FITS_REDUCED, "large": FileRole.FITS_RAW}
JPEG_HEAD_BYTES = 64 * 1024
JPEG_MORE_RANGES = 4  # ranged GETs after the first, following metadata segments to the frame header
GROUP_KEYWORDS = ("SMARTSTK", "REQNUM")
NOT_A_GROUP = {"", "no", "none", "0", "false", "n/a"}
COLOURS = ("red", "green", "blue")
FILTER_COLOURS = {
    **dict.fromkeys(("r", "rp", "ip", "ha"), "red"),
    **dict.fromkeys(("v", "g", "gp", "oiii"), "green"),
    **dict.fromkeys(("b", "sii"), "blue"),
}
COLOUR_FILTERS = {"red": "R|rp|ip|Ha", "green": "V|G|gp|OIII", "blue": "B|SII"}


def parse_target(target: str) -> tuple[str, ParsedName | None]:
    """The path's `{base_filename}`: a base filename, or a full filename pinning one file."""
    try:
        if "." in target:
            name = parse_filename(target)
            if name.ext == "txt":
                raise BadParameter("base_filename", f"{target} is a header text, not an image")
            return name.base_filename, name
        return parse_base_filename(target).base_filename, None
    except FilenameError as exc:
        raise BadParameter("base_filename", f"{target!r} is not an exposure: {exc.reason}") from None


def list_files(bucket: str, base_filename: str) -> dict[str, SourceRef]:
    """The exposure's objects under data/, by filename."""
    paginator = client("s3").get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=bucket, Prefix=f"{DIRECTORY}/{base_filename}-")
    found = {}
    for page in pages:
        for item in page.get("Contents", []):
            ref = SourceRef(item["Key"], item.get("ETag", ""), int(item.get("Size", 0)))
            found[ref.filename] = ref
    return found


def _parsed(files: dict[str, SourceRef]) -> list[tuple[ParsedName, SourceRef]]:
    out = []
    for filename, ref in sorted(files.items()):
        try:
            out.append((parse_filename(filename), ref))
        except FilenameError:
            continue  # something else shares the prefix; not a file of this exposure
    return out


def pick(files: dict[str, SourceRef], kind: str) -> SourceRef | None:
    """The exposure's `jpg` (medium), `small` or `large` file, if it has one."""
    role = SOURCE_ROLES[kind]
    preference = reductions(role)
    candidates = [
        (preference.index(name.reduction), ref.key, ref) for name, ref in _parsed(files) if file_role(name) is role
    ]
    return min(candidates)[2] if candidates else None


def _frame_or_next(window: bytes, i: int, base: int) -> tuple[int, int] | int | None:
    """Walk the marker segments of `window` (the file's bytes from offset `base`) from index `i`:
    (width, height) from the frame header, else the file offset of the first segment past the window
    (to read next), else None (not a JPEG's marker sequence)."""
    while i + 4 <= len(window):
        if window[i] != 0xFF:
            return None
        marker = window[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in FRAME_MARKERS:
            if i + 9 > len(window):
                return base + i
            return int.from_bytes(window[i + 7:i + 9], "big"), int.from_bytes(window[i + 5:i + 7], "big")
        if marker == 0xDA:  # a scan before any frame header
            return None
        i += 2 + int.from_bytes(window[i + 2:i + 4], "big")
    return base + i


@lru_cache(maxsize=4096)
def _jpeg_size_of(bucket: str, key: str, etag: str) -> tuple[int, int] | None:
    """The frame header's size from ranged GETs only: the first JPEG_HEAD_BYTES, then, when metadata
    pushes the frame header further, a few more small ranges at the segments' offsets. Never the whole
    file: a JPG whose frame header is not found that way counts as of unknown size."""
    s3 = client("s3")
    head = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{JPEG_HEAD_BYTES - 1}")["Body"].read(JPEG_HEAD_BYTES)
    if not head.startswith(b"\xff\xd8"):
        return None
    found, window = _frame_or_next(head, 2, 0), head
    for _ in range(JPEG_MORE_RANGES):
        if not isinstance(found, int) or len(window) < JPEG_HEAD_BYTES:
            break  # found, not a JPEG, or the file ended before the frame header
        window = s3.get_object(Bucket=bucket, Key=key,
                               Range=f"bytes={found}-{found + JPEG_HEAD_BYTES - 1}")["Body"].read(JPEG_HEAD_BYTES)
        found = _frame_or_next(window, 0, found)
    return found if isinstance(found, tuple) else None


def jpeg_dimensions(bucket: str, ref: SourceRef) -> tuple[int, int] | None:
    return _jpeg_size_of(bucket, ref.key, ref.etag)


@lru_cache(maxsize=4096)
def _fits_size_of(bucket: str, key: str, etag: str) -> tuple[int, int] | None:
    try:
        return image_dimensions(read_fits_header(bucket, key))
    except (HeaderError, Unreadable):
        return None  # the image is elsewhere (an extension) or unreadable: reading it will tell


def fits_dimensions(bucket: str, ref: SourceRef) -> tuple[int, int] | None:
    """(NAXIS1, NAXIS2) of a FITS file's image from its header alone, or None when the header does not
    say (no image in the primary HDU, an unreadable header)."""
    return _fits_size_of(bucket, ref.key, ref.etag)


def dimensions(bucket: str, ref: SourceRef) -> tuple[int, int] | None:
    """The pixel size of a JPG or FITS source from its header."""
    if ref.filename.lower().endswith(".jpg"):
        return jpeg_dimensions(bucket, ref)
    return fits_dimensions(bucket, ref)


def large_enough(size: tuple[int, int] | None, box: tuple[int, int]) -> bool:
    """A picture fills the box without being enlarged when it is at least as wide or as high."""
    return size is not None and (size[0] >= box[0] or size[1] >= box[1])


SizeOf = Callable[[SourceRef], "tuple[int, int] | None"]


def smallest_filling(candidates: Sequence[SourceRef], size_of: SizeOf, box: tuple[int, int]) -> SourceRef:
    """The first of `candidates` (given smallest first) that fills the box, else the largest of them
    (the earliest among equals); sizes are asked for only as far as needed. The chosen ref carries
    its dimensions when they are known."""
    seen: list[tuple[SourceRef, tuple[int, int] | None]] = []
    for ref in candidates:
        size = size_of(ref)
        if large_enough(size, box):
            return dataclasses.replace(ref, dimensions=size)
        seen.append((ref, size))
    ref, size = max(seen, key=lambda pair: (pair[1][0] * pair[1][1] if pair[1] else -1, -seen.index(pair)))
    return dataclasses.replace(ref, dimensions=size)


def choose(files: dict[str, SourceRef], params: RenderParams, size_of: SizeOf,
           base_filename: str) -> tuple[SourceRef, bool]:
    """(the source file, whether it is FITS) for one exposure, by `params.source`."""
    if params.source != "auto":
        ref = pick(files, params.source)
        if ref is None:
            what = SOURCE_ROLES[params.source].label
            raise NotFound(f"{base_filename} has no {what} (source={params.source})", base_filename=base_filename)
        return ref, SOURCE_ROLES[params.source] is not FileRole.JPG_MEDIUM
    fits_needed = bool(params.fits_only_given)
    kinds = ("small", "large") if fits_needed else ("jpg", "small", "large")
    candidates = [ref for ref in (pick(files, kind) for kind in kinds) if ref is not None]
    if candidates:
        ref = smallest_filling(candidates, size_of, params.box)
        return ref, not ref.filename.lower().endswith(".jpg")
    if not files:
        raise NotFound(f"no exposure {base_filename} in the archive", base_filename=base_filename)
    wanted = "FITS file (" + ", ".join(params.fits_only_given) + " need FITS data)" if fits_needed else "image"
    raise NotFound(f"{base_filename} has no {wanted}", base_filename=base_filename)


def pinned(bucket: str, name: ParsedName, params: RenderParams) -> tuple[SourceRef, bool]:
    """The one file a full filename names."""
    if name.ext == "jpg" and params.fits_only_given:
        raise BadParameter(params.fits_only_given[0], f"{params.fits_only_given[0]} needs FITS data; "
                                                      f"{name.filename} is a JPG")
    ref = list_files(bucket, name.base_filename).get(name.filename)
    if ref is None:
        raise NotFound(f"no file {name.filename} in the archive", filename=name.filename)
    return ref, name.is_fits


def source_kind(sources: tuple[SourceRef, ...], is_fits: bool, colour: bool) -> str:
    """What a render read, for the API's metrics: `colour`, `jpg`, `small` or `large` (FITS)."""
    if colour:
        return "colour"
    if not is_fits:
        return "jpg"
    try:
        role = file_role(parse_filename(sources[0].filename))
    except FilenameError:
        return "large"
    return "small" if role is SOURCE_ROLES["small"] else "large"


def check_bytes(ref: SourceRef, max_bytes: int) -> None:
    if ref.size > max_bytes:
        raise TooLarge(f"{ref.filename} is {ref.size} bytes, over the budget of {max_bytes}", filename=ref.filename)


def colour_of(filter_name: str | None) -> str | None:
    return FILTER_COLOURS.get((filter_name or "").strip().lower())


def _stack_number(header: dict[str, str]) -> int:
    raw = str(header.get("SSTKNUM", "")).strip()
    return int(raw) if raw.isdigit() else 0


def best_per_colour(rows: Iterable[dict]) -> dict[str, str]:
    """colour -> base filename: of several frames of one colour the most stacked, then the latest."""
    best: dict[str, tuple[int, str]] = {}
    for row in rows:
        colour = colour_of(row.get("filter_used"))
        if colour is None:
            continue
        rank = (_stack_number(row["header"]), row["base_filename"])
        if rank > best.get(colour, (-1, "")):
            best[colour] = rank
    return {colour: rank[1] for colour, rank in best.items()}


def _group(header: dict[str, str]) -> tuple[str, str] | None:
    for keyword in GROUP_KEYWORDS:
        value = str(header.get(keyword, "")).strip()
        if value.lower() not in NOT_A_GROUP:
            return keyword, value
    return None


def matched_frames(base_filename: str) -> dict[str, str]:
    """colour -> base filename of the frames in the requested exposure's smart stack or request."""
    with get_engine().connect() as conn:
        row = db.get_row(conn, base_filename)
        if row is None or not row.get("header"):
            raise NotFound(f"{base_filename} has no header in the archive, so its colour set cannot be found; "
                           "pass r, g and b", base_filename=base_filename)
        header = json.loads(row["header"])
        group = _group(header)
        if group is None:
            raise NotFound(f"{base_filename} is not part of a smart stack or request "
                           f"({'/'.join(GROUP_KEYWORDS)}); pass r, g and b", base_filename=base_filename)
        keyword, value = group
        day = dt.timedelta(days=1)
        candidates = db.rows_with_header_text(
            conn, site=row["site"], captured_from=row["capture_date"] - day, captured_to=row["capture_date"] + day,
            text=f"{json.dumps(keyword)}: {json.dumps(value, ensure_ascii=False)}",
        )
    members = []
    for candidate in candidates:
        parsed = json.loads(candidate["header"] or "{}")
        if str(parsed.get(keyword, "")).strip() == value:
            members.append({**candidate, "header": parsed})
    chosen = best_per_colour(members)
    for colour in COLOURS:
        if colour not in chosen:
            raise NotFound(f"no {colour} frame ({COLOUR_FILTERS[colour]}) in {keyword} {value} of {base_filename}",
                           missing=colour, base_filename=base_filename)
    return chosen

"""The filename grammar and the file-role table (docs/contracts.md §1), parsed into typed values.

`{site}-{instrument}-{YYYYMMDD}-{counter}-{data_type}{reduction}.{ext}` under one of the known S3
directories. Every way a name can be wrong raises `FilenameError` with a reason a person can act on;
nothing else escapes `parse_filename` / `parse_key`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote_plus

from archive.errors import Rejected

S3_DIRECTORIES = ("data", "info-images", "allsky")
EXTENSIONS = ("fits.bz2", "fits.fz", "fits", "jpg", "txt")
BASE_FILENAME_MAX = 29  # varchar(29) in the production table
UNKNOWN_SITE = "unknown_site"  # the upload log's site for a key whose site cannot be read

_SITE = re.compile(r"[A-Za-z0-9]{3,6}")
_INSTRUMENT = re.compile(r"[A-Za-z0-9_]+")
_DIGITS8 = re.compile(r"[0-9]{8}")
_KIND = re.compile(r"([A-Za-z]+)([0-9]{2})")
_FORMAT_HINT = "expected site-instrument-YYYYMMDD-counter-{type}{NN}.ext, e.g. sro-kb001ms-20220629-00010442-EX10.jpg"


class FilenameError(Rejected, ValueError):
    """A key or filename that does not follow the grammar; `reason` says which part and why."""

    def __init__(self, reason: str, filename: str = "") -> None:
        super().__init__(reason)
        self.filename = filename


@dataclass(frozen=True, slots=True)
class ParsedName:
    site: str
    instrument: str
    date: str  # YYYYMMDD
    counter: str  # 8 digits
    data_type: str
    reduction: str  # 2 digits
    ext: str

    @property
    def base_filename(self) -> str:
        return f"{self.site}-{self.instrument}-{self.date}-{self.counter}"

    @property
    def filename(self) -> str:
        return f"{self.base_filename}-{self.data_type}{self.reduction}.{self.ext}"

    @property
    def is_fits(self) -> bool:
        return self.ext.startswith("fits")

    def sibling(self, reduction: str, ext: str) -> ParsedName:
        """The name of another file of the same exposure (e.g. the thumbnail beside a medium JPG)."""
        return ParsedName(self.site, self.instrument, self.date, self.counter, self.data_type, reduction, ext)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    s3_directory: str
    name: ParsedName

    @property
    def key(self) -> str:
        return f"{self.s3_directory}/{self.name.filename}"


def _split_extension(filename: str) -> tuple[str, str]:
    for ext in EXTENSIONS:
        if filename.endswith("." + ext):
            return filename[: -len(ext) - 1], ext
    dot = filename.find(".")
    if dot < 0:
        raise FilenameError(f"no file extension; {_FORMAT_HINT}", filename)
    raise FilenameError(
        f"extension {filename[dot + 1:]!r} is not one of {', '.join(sorted(EXTENSIONS))}", filename
    )


def parse_filename(filename: str) -> ParsedName:
    """Parse a bare filename (no directory). Raises FilenameError with a precise reason."""
    if not isinstance(filename, str) or not filename:
        raise FilenameError("empty filename", str(filename))
    if "/" in filename:
        raise FilenameError("filename must not contain '/'", filename)
    stem, ext = _split_extension(filename)
    parts = stem.split("-")
    if len(parts) != 5:
        raise FilenameError(f"filename has {len(parts)} dash-separated parts, not 5; {_FORMAT_HINT}", filename)
    site, instrument, date, counter, kind = parts
    if not _SITE.fullmatch(site):
        raise FilenameError(f"site {site!r} must be 3-6 letters or digits", filename)
    if not _INSTRUMENT.fullmatch(instrument):
        raise FilenameError(f"instrument {instrument!r} must be letters, digits or '_'", filename)
    if not _DIGITS8.fullmatch(date):
        raise FilenameError(f"date {date!r} must be 8 digits (YYYYMMDD)", filename)
    try:
        dt.date(int(date[:4]), int(date[4:6]), int(date[6:]))
    except ValueError:
        raise FilenameError(f"date {date!r} is not a real calendar date", filename) from None
    if not _DIGITS8.fullmatch(counter):
        raise FilenameError(f"counter {counter!r} must be 8 digits", filename)
    match = _KIND.fullmatch(kind)
    if not match:
        if not kind or not kind[0].isalpha():
            raise FilenameError(f"data type in {kind!r} must be letters followed by a 2-digit reduction", filename)
        raise FilenameError(f"reduction in {kind!r} must be exactly 2 digits after the data type letters", filename)
    data_type, reduction = match.groups()
    name = ParsedName(site, instrument, date, counter, data_type, reduction, ext)
    if len(name.base_filename) > BASE_FILENAME_MAX:
        raise FilenameError(
            f"base filename {name.base_filename!r} is {len(name.base_filename)} characters; "
            f"the archive holds at most {BASE_FILENAME_MAX}",
            filename,
        )
    return name


def parse_key(key: str) -> ParsedKey:
    """Parse an already-decoded object key `{s3_directory}/{filename}`."""
    directory, sep, filename = key.partition("/")
    if not sep:
        raise FilenameError(f"key {key!r} has no directory; expected one of {', '.join(S3_DIRECTORIES)}", key)
    if directory not in S3_DIRECTORIES:
        raise FilenameError(f"directory {directory!r} is not one of {', '.join(S3_DIRECTORIES)}", key)
    return ParsedKey(directory, parse_filename(filename))


def parse_base_filename(base_filename: str) -> ParsedName:
    """Validate a base filename (`site-instrument-YYYYMMDD-counter`), e.g. one read back from a table.

    Returns the name of a notional `EX00.txt` file of that exposure, so callers get the typed parts.
    """
    if not isinstance(base_filename, str) or base_filename.count("-") != 3:
        raise FilenameError(f"base filename {base_filename!r} must be site-instrument-YYYYMMDD-counter")
    return parse_filename(f"{base_filename}-EX00.txt")


def is_site(text: object) -> bool:
    """Whether `text` is a site code the grammar allows (3-6 letters or digits)."""
    return isinstance(text, str) and _SITE.fullmatch(text) is not None


def decode_event_key(raw_key: str) -> str:
    """Object keys arrive URL-encoded in S3 notifications (`+` for space, `%2F` for `/` from moto)."""
    return unquote_plus(raw_key)


def site_of(key: object) -> str:
    """Best-effort site for logging a key that may not parse: the parsed site, else `unknown_site`."""
    if not isinstance(key, str):
        return UNKNOWN_SITE
    try:
        return parse_key(key).name.site
    except FilenameError:
        return UNKNOWN_SITE


class FileRole(Enum):
    """What a file is to its exposure (docs/contracts.md §1): the one table the row, the info-image channel,
    the thumbnailer, the image API and the viewer all read.
    Value: (the `images` flag it sets, the info-images path field, what people call it)."""

    FITS_RAW = ("fits_01_exists", "fits_01_file_path", "large FITS")
    FITS_REDUCED = ("fits_10_exists", "fits_10_file_path", "small FITS")
    JPG_MEDIUM = ("jpg_medium_exists", "jpg_10_file_path", "medium JPG")
    JPG_SMALL = ("jpg_small_exists", "jpg_11_file_path", "thumbnail JPG")

    @property
    def flag(self) -> str:
        return self.value[0]

    @property
    def path_field(self) -> str:
        return self.value[1]

    @property
    def label(self) -> str:
        return self.value[2]


# Reductions of each role, the preferred first (a medium JPG of reduction 10 is chosen over one of 13).
RAW_FITS_REDUCTIONS = ("00", "01")
REDUCED_FITS_REDUCTIONS = ("10", "13")
MEDIUM_JPG_REDUCTIONS = ("10", "13")
THUMBNAIL_REDUCTION = "11"  # the small JPG written beside a medium one

FITS_REDUCTIONS = {
    **dict.fromkeys(RAW_FITS_REDUCTIONS, FileRole.FITS_RAW),
    **dict.fromkeys(REDUCED_FITS_REDUCTIONS, FileRole.FITS_REDUCED),
}
JPG_REDUCTIONS = {**dict.fromkeys(MEDIUM_JPG_REDUCTIONS, FileRole.JPG_MEDIUM), THUMBNAIL_REDUCTION: FileRole.JPG_SMALL}


def reductions(role: FileRole) -> tuple[str, ...]:
    """The reductions a file of this role may carry, the preferred first."""
    table = JPG_REDUCTIONS if role in (FileRole.JPG_MEDIUM, FileRole.JPG_SMALL) else FITS_REDUCTIONS
    return tuple(reduction for reduction, its_role in table.items() if its_role is role)


def role_of(reduction: str, ext: str) -> FileRole | None:
    """The role of a file with this reduction and extension, or None for one that changes nothing."""
    if ext.startswith("fits"):
        return FITS_REDUCTIONS.get(reduction)
    if ext == "jpg":
        return JPG_REDUCTIONS.get(reduction)
    return None


def file_role(name: ParsedName) -> FileRole | None:
    """The file's role, or None for a file that changes nothing (a header `.txt` has its own path)."""
    return role_of(name.reduction, name.ext)


def thumbnail_name(name: ParsedName) -> ParsedName:
    """The thumbnail (reduction 11 JPG) written beside a medium JPG."""
    return name.sibling(THUMBNAIL_REDUCTION, "jpg")

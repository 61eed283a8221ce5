"""FITS header text -> a mapping of keyword to value-as-string, and the typed columns of `images`.

Why not astropy: a Lambda that handles a header event must not pay astropy's import on a cold start,
and the JSON contract (docs/contracts.md §2) wants every value as its *text* anyway, so numbers are never
converted and back. The card rules follow astropy's reader (`Header.fromstring` then `header[key]`),
which the property tests check on generated headers; the few deliberate differences are noted where
they are made (a `''` pair is always an escaped quote; unquoted text such as `N/A` is kept instead of
raising; cards with no value indicator are dropped).

This module imports only the standard library.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from archive.errors import PermanentError

CARD = 80
_COMMENTARY = frozenset({"COMMENT", "HISTORY"})
# Cards whose keyword alone decides how they are read (astropy's "special" keywords).
_SPECIAL = frozenset({"", "COMMENT", "HISTORY", "END", "CONTINUE"})
# Bytes that may appear in header text; what `translate` leaves after deleting them are control
# characters (tab, newlines and form feed are tolerated).
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\t\n\r\x0c"
# A FITS number (free format, as astropy reads it) or a logical; used only to tell `1.5/comment`
# (a number followed by its comment) from unquoted text that contains a slash, such as `N/A`.
_FREE_NUMBER = re.compile(r"\s*[+-]? *(\.\d+|\d+(\.\d*)?) *([deDE] *[+-]? *\d+)?\s*")
_NUMBER_OR_BOOL = re.compile(_FREE_NUMBER.pattern + "|[TF]")


_ABSENT = object()


class HeaderError(PermanentError, ValueError):
    """A header that cannot be read; `reason` says why in words an operator can act on."""

    topic = "header"


class Header(dict[str, str]):
    """Keyword -> value text, in card order, first occurrence of a keyword winning (as astropy's
    `header[key]` does). `comments` maps the same keywords to their comments.

    A plain `dict` underneath so `json.dumps(header)` and `dict(header)` are as fast as they can be;
    lookups by `[]`, `get` and `in` also accept a standard keyword in lower case, like astropy.
    COMMENT and HISTORY cards are kept as one newline-joined string each; blank cards are dropped.
    """

    __slots__ = ("comments",)

    def __init__(self, values: Mapping[str, str] | None = None, comments: dict[str, str] | None = None) -> None:
        super().__init__(values or {})
        self.comments: dict[str, str] = comments if comments is not None else {}

    def __missing__(self, key: str) -> str:
        if isinstance(key, str):
            upper = key.upper()
            if upper != key and dict.__contains__(self, upper):
                return dict.__getitem__(self, upper)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        return isinstance(key, str) and dict.__contains__(self, key.upper())

    def get(self, key: str, default: Any = None) -> Any:  # noqa: ANN401 - mirrors dict.get
        value = dict.get(self, key, _ABSENT)
        if value is _ABSENT:
            return dict.get(self, key.upper(), default) if isinstance(key, str) else default
        return value

    def __repr__(self) -> str:
        return f"Header({dict.__repr__(self)})"


# --------------------------------------------------------------------------------------------------
# Text -> cards


def _decode(data: bytes | bytearray | memoryview | str) -> str:
    """Header bytes as text: UTF-8 when valid, else latin-1 (every byte maps to one character).

    Binary data is recognised by its control characters, counted with one `bytes.translate` (a regex
    or `str.isprintable` over a 14 kB header costs more than the whole parse).
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    raw = raw.rstrip(b"\x00")  # a C-string terminator or NUL padding after the last card is harmless
    if not raw.strip():
        raise HeaderError("header file is empty")
    controls = raw.translate(None, _TEXT_BYTES)
    if controls and (b"\x00" in controls or len(controls) > max(2, len(raw) // 100)):
        raise HeaderError("header is binary data, not FITS cards")
    if isinstance(data, str):
        return data.rstrip("\x00")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _card_images(text: str) -> list[str]:
    """The 80-column card images of either layout: concatenated cards, or one card per line.

    Lines longer than a card are cut into cards, so a concatenated header with a trailing newline,
    or a file of several concatenated blocks on separate lines, reads the same as the plain layout.
    """
    if "\n" not in text and "\r" not in text:
        return [text[i : i + CARD] for i in range(0, len(text), CARD)]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    cards: list[str] = []
    for line in text.split("\n"):
        if len(line) <= CARD:
            cards.append(line)
        else:
            cards.extend(line[i : i + CARD] for i in range(0, len(line), CARD))
    return cards


def _split_string(s: str) -> tuple[str, str] | None:
    """For `s` starting with a quote: (raw string content, comment), or None if unterminated.

    The content is returned still escaped (`''`) so that CONTINUE pieces, which may split a pair, are
    joined before unescaping. A quote ends the string when what follows is blank or a `/` comment; a
    doubled quote is always an escaped quote (astropy's regex can end a string inside `'a'' / b'`;
    the FITS standard cannot, and we follow the standard).
    """
    i = 1
    while True:
        j = s.find("'", i)
        if j < 0:
            return None
        if s[j + 1 : j + 2] == "'":
            i = j + 2
            continue
        after = s[j + 1 :].lstrip()
        if not after:
            return s[1:j], ""
        if after[0] == "/":
            return s[1:j], after[1:].strip()
        i = j + 1  # a lone quote inside the text (not followed by a blank or `/`): part of the string


def _split_other(s: str) -> tuple[str, str]:
    """For a value that is not a quoted string: (value text, comment)."""
    slash = s.find("/")
    if slash < 0:
        return s.rstrip(), ""
    value = s[:slash].rstrip()
    if slash and s[slash - 1] != " " and _NUMBER_OR_BOOL.fullmatch(value) is None:
        # Unquoted text with a slash in it (`N/A`): astropy refuses the card; we keep the text,
        # taking a comment only after ` /`.
        spaced = s.find(" /", slash)
        if spaced < 0:
            return s.rstrip(), ""
        return s[:spaced].rstrip(), s[spaced + 2 :].strip()
    return value, s[slash + 1 :].strip()


def _unescape(raw: str) -> str:
    return (raw.replace("''", "'") if "'" in raw else raw).rstrip()


def _keyword_and_rest(card: str) -> tuple[str, str] | None:
    """Keyword and value field of a card that is not on the fast path, or None for a card we drop."""
    if card[:9].upper() == "HIERARCH " and "=" in card:
        # HIERARCH convention: the keyword is every word between HIERARCH and `=`, case kept.
        head, _, rest = card.partition("=")
        keyword = head[9:].strip()
        return (keyword, rest) if keyword else None
    eq = card.find("=")
    if eq <= 0:
        return None
    keyword = card[:eq].strip()
    # `AB= 1` (astropy accepts a value indicator before column 9), `KEY ='x'`, `KEYWORD = 5`: one
    # word before the `=`. Anything else (`FOO bar = 1`, text lines) is not a keyword card.
    if not keyword or len(keyword.split()) != 1:
        return None
    return keyword.upper(), card[eq + 1 :]


def parse_header(data: bytes | bytearray | memoryview | str) -> Header:
    """Parse FITS header text (either card layout) up to its END card.

    Raises `HeaderError` for empty or binary data, for text with no keyword card at all, and for
    anything else the bytes provoke: a header comes from a file, and no retry changes a file.
    """
    try:
        return _parse_cards(data)
    except HeaderError:
        raise
    except Exception as exc:  # noqa: BLE001 - the bytes are the cause whatever the exception
        raise HeaderError(f"unreadable header text ({type(exc).__name__}: {str(exc)[:200]})") from exc


def _parse_cards(data: bytes | bytearray | memoryview | str) -> Header:
    """The parser proper. The loop is written for speed (it is benchmarked against astropy): the usual
    cards, a keyword with `= ` in columns 9-10 and a plain string or number, never leave it.
    """
    values: dict[str, str] = {}
    comments: dict[str, str] = {}
    commentary: dict[str, list[str]] = {}
    # The last string card we stored, which CONTINUE cards extend (None after any other card, so a
    # duplicate keyword's CONTINUE cards change nothing), with its raw text and comment.
    long_key: str | None = None
    long_raw = long_comment = ""
    pieces: list[str] | None = None
    piece_comments: list[str] = []

    for card in _card_images(_decode(data)):
        if card[8:10] == "= ":
            keyword = card[:8].strip().upper()
            if keyword in _SPECIAL:
                if keyword in _COMMENTARY:
                    commentary.setdefault(keyword, []).append(card[8:].rstrip())
                long_key = None
                continue
            s = card[10:].lstrip()
        else:
            head = card[:8].rstrip().upper()
            if head == "END" and not card[3:].strip():
                break
            if head == "CONTINUE":
                piece = card[8:].lstrip()
                split = _split_string(piece) if long_key is not None and piece[:1] == "'" else None
                if split is not None and long_key is not None:
                    if pieces is None:
                        pieces, piece_comments = [_strip_ampersand(long_raw)], [long_comment] if long_comment else []
                    pieces.append(_strip_ampersand(split[0]))
                    if split[1]:
                        piece_comments.append(split[1])
                    values[long_key] = _unescape("".join(pieces))
                    comments[long_key] = " ".join(piece_comments)
                continue
            long_key = None
            if head in _COMMENTARY:
                commentary.setdefault(head, []).append(card[8:].rstrip())
                continue
            found = _keyword_and_rest(card) if head else None  # a blank keyword: dropped
            if found is None:
                continue
            keyword, s = found[0], found[1].lstrip()

        raw = None
        if s[:1] == "'":
            j = s.find("'", 1)
            after = s[j + 1 :].lstrip() if j > 0 else "?"
            if j > 0 and after[:1] in ("", "/"):  # fast path: the first quote closes the string
                raw = s[1:j]
                value = raw.rstrip()
                comment = after[1:].strip()
            else:
                split = _split_string(s)
                if split is None:  # unterminated string: keep what is there
                    value, comment = s[1:].rstrip(), ""
                else:
                    raw, comment = split
                    value = _unescape(raw)
        else:
            slash = s.find("/")
            if slash < 0:
                value, comment = s.rstrip(), ""
            elif slash == 0 or s[slash - 1] == " ":
                value, comment = s[:slash].rstrip(), s[slash + 1 :].strip()
            else:
                value, comment = _split_other(s)

        if keyword in values:  # first occurrence wins
            long_key = None
            continue
        values[keyword] = value
        comments[keyword] = comment
        if raw is None:
            long_key = None
        else:
            long_key, long_raw, long_comment, pieces = keyword, raw, comment, None

    if not values:
        raise HeaderError("no FITS keyword cards found")
    for keyword, lines in commentary.items():
        values[keyword] = "\n".join(lines)
        comments[keyword] = ""
    return Header(values, comments)


def _strip_ampersand(raw: str) -> str:
    """A CONTINUE piece without trailing blanks and its continuation `&` (as astropy joins them)."""
    raw = raw.rstrip()
    return raw[:-1] if raw.endswith("&") else raw


# --------------------------------------------------------------------------------------------------
# Typed columns (docs/contracts.md §2)


def _number(text: str | None) -> float | None:
    """A finite float from a value's text; None for blanks, `N/A`, `Unknown`, `nan`, `inf`, garbage."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        # FITS free format allows `1.5D3` and blanks around sign and exponent (`- 1.5 E 3`)
        if _FREE_NUMBER.fullmatch(text) is None:
            return None
        value = float(text.replace(" ", "").upper().replace("D", "E"))
    return value if math.isfinite(value) else None


def _text(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text or None


_SEXAGESIMAL_SEPARATORS = str.maketrans({c: " " for c in ":hHdDmMsS'\"°′″"})


def _sexagesimal(text: str | None) -> float | None:
    """`12:34:56.7`, `12h34m56.7s`, `12 34 56.7`, `-00:30:00`, `+45d30m`, or a plain number, as a
    float in the unit of its first field. The sign applies to the whole value (so `-00:30` is -0.5).
    """
    if text is None:
        return None
    plain = _number(text)
    if plain is not None:
        return plain
    s = text.strip()
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    fields = s.translate(_SEXAGESIMAL_SEPARATORS).split()
    if not 1 <= len(fields) <= 3:
        return None
    try:
        numbers = [float(f) for f in fields]
    except ValueError:
        return None
    if any(not math.isfinite(n) or n < 0 for n in numbers):
        return None
    # every field but the last must be whole; minutes and seconds below 60
    if any(n != int(n) for n in numbers[:-1]) or any(n >= 60 for n in numbers[1:]):
        return None
    total = numbers[0] + sum(n / 60**i for i, n in enumerate(numbers[1:], start=1))
    return sign * total


def _hours(value: float | None) -> float | None:
    if value is None or not 0 <= value <= 24:
        return None
    return 0.0 if value == 24 else value


def _degrees_to_hours(value: float | None) -> float | None:
    if value is None or not 0 <= value <= 360:
        return None
    return 0.0 if value == 360 else value / 15


def _declination(value: float | None) -> float | None:
    return value if value is not None and -90 <= value <= 90 else None


def right_ascension_hours(header: Mapping[str, str]) -> float | None:
    """RA in decimal hours from the first usable source: RAhrs, RA, RADEG, OBJCTRA."""
    ra = _hours(_number(header.get("RAHRS")))
    if ra is None:
        ra = _hours(_sexagesimal(header.get("RA")))
    if ra is None:
        ra = _degrees_to_hours(_number(header.get("RADEG")))
    if ra is None:
        objctra = header.get("OBJCTRA")
        comment = getattr(header, "comments", {}).get("OBJCTRA", "")
        if "[deg" in comment.lower():
            ra = _degrees_to_hours(_number(objctra))
        else:
            ra = _hours(_sexagesimal(objctra))
    return ra


def declination_degrees(header: Mapping[str, str]) -> float | None:
    """Dec in decimal degrees from the first usable source: DECDEG, DEC, OBJCTDEC."""
    dec = _declination(_number(header.get("DECDEG")))
    if dec is None:
        dec = _declination(_sexagesimal(header.get("DEC")))
    if dec is None:
        dec = _declination(_sexagesimal(header.get("OBJCTDEC")))
    return dec


def header_columns(header: Mapping[str, str]) -> dict[str, Any]:
    """The typed `images` columns a header fills (exactly db.HEADER_COLUMNS); unusable values -> None."""
    get = header.get
    return {
        "right_ascension": right_ascension_hours(header),
        "declination": declination_degrees(header),
        "altitude": _number(get("ALTITUDE")),
        "azimuth": _number(get("AZIMUTH")),
        "filter_used": _text(get("FILTER")),
        "airmass": _number(get("AIRMASS")),
        "exposure_time": _number(get("EXPTIME")),
        "username": _text(get("USERNAME")),
        "user_id": _text(get("USERID")),
    }


_DATE_OBS = re.compile(
    r"\s*(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d*))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*",
    re.IGNORECASE,
)


def capture_date(header: Mapping[str, str]) -> dt.datetime | None:
    """DATE-OBS as a naive UTC datetime; None when absent or not a date.

    Accepts `YYYY-MM-DDTHH:MM:SS[.fff…]`, a space instead of `T`, a trailing `Z` or UTC offset
    (converted to UTC), and a bare date (midnight). A leap second (`:60`) is read as :59.999999.
    """
    text = header.get("DATE-OBS")
    if not text:
        return None
    m = _DATE_OBS.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    sec = int(second or 0)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if sec == 60:
        sec, micro = 59, 999_999
    try:
        when = dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), sec, micro)
    except ValueError:
        return None
    if zone and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        try:
            when -= sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        except OverflowError:  # e.g. year 1 shifted before the first representable moment
            return None
    return when

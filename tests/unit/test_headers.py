"""The header text parser against astropy, and the column rules of docs/contracts.md §2.

The property tests build headers two ways, astropy writing cards (long strings become CONTINUE
cards, long keywords HIERARCH cards) and cards typed by hand in free format, and check that for every
keyword astropy reads, `parse_header` gives astropy's value as text, in both card layouts.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import pytest
from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import db
from archive.formats.headers import Header, HeaderError, capture_date, header_columns, parse_header

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:astropy.*")

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
STANDARD_KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
SPECIAL = {"COMMENT", "HISTORY", "CONTINUE", "END", "HIERARCH"}
# astropy reads `'a'' / b'` as "a'" (its regex may end a string inside an escaped pair); the FITS
# standard, and our parser, read "a' / b". Such values are checked by an example test instead.
ASTROPY_QUOTE_BUG = re.compile(r"' */")


def cards_text(*cards: str) -> str:
    """Concatenated 80-column cards, as `str(astropy_header)` writes them."""
    return "".join(card.ljust(80)[:80] for card in (*cards, "END"))


def lines_layout(text: str, newline: str = "\n") -> str:
    """The same cards one per line, trailing blanks dropped, nothing after END."""
    cards = [text[i : i + 80].rstrip() for i in range(0, len(text), 80)]
    return newline.join(cards[: cards.index("END") + 1]) + newline


def as_number(text: str) -> int | float:
    cleaned = text.replace(" ", "").upper().replace("D", "E")
    try:
        return int(cleaned)
    except ValueError:
        return float(cleaned)


def assert_matches_astropy(text: str, ours: Header) -> int:
    """Every keyword astropy reads from `text` has the same value in `ours`; returns how many."""
    return assert_same_as(fits.Header.fromstring(text), ours)


def assert_same_as(theirs: fits.Header, ours: Header) -> int:
    """Every keyword of astropy's header has the same value in `ours`; returns how many."""
    checked = 0
    for key in dict.fromkeys(theirs.keys()):
        if key == "":
            assert "" not in ours  # blank cards are dropped
            continue
        if key in ("COMMENT", "HISTORY"):
            assert ours[key] == "\n".join(str(line) for line in theirs[key])
            checked += 1
            continue
        try:
            expected = theirs[key]
        except VerifyError:
            continue  # astropy cannot read this card at all; ours must merely not crash
        got = dict.__getitem__(ours, key)
        if isinstance(expected, bool):
            assert got == ("T" if expected else "F"), key
        elif expected is None:
            assert got == "", key
        elif isinstance(expected, int | float):
            assert as_number(got) == expected, (key, got, expected)
        else:
            assert got == expected, key
        assert ours.comments[key] == theirs.comments[key], key
        checked += 1
    return checked


# --------------------------------------------------------------------------------------------------
# Strategies

standard_keys = st.text(STANDARD_KEY_CHARS, min_size=1, max_size=8).filter(lambda k: k not in SPECIAL)
# a small pool as well, so that duplicate keywords happen often
pooled_keys = st.sampled_from(["FILTER", "EXPTIME", "RA", "DEC", "DATE-OBS", "OBJECT", "A", "B-1", "C_2"])
hierarch_keys = st.lists(
    st.text(STANDARD_KEY_CHARS + "abcxyz", min_size=1, max_size=8), min_size=2, max_size=3
).map(" ".join)
odd_strings = st.sampled_from(
    ["N/A", "Unknown", "", "nan", "  leading", "trailing   ", "it's", "''", "a&", "12:34:56.7", "-00:30:00",
     "x = y", "T", "1.5E3", "/", "a/b"]
)
strings = st.one_of(
    odd_strings,
    st.text(PRINTABLE, max_size=40),
    st.text(PRINTABLE, min_size=60, max_size=200),  # astropy writes these with CONTINUE cards
).filter(lambda s: ": " not in s and not ASTROPY_QUOTE_BUG.search(s))  # ": " would be a record-valued card
values = st.one_of(
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=False, allow_infinity=False),
    strings,
    st.none(),
)
comments = st.one_of(st.just(""), st.text(PRINTABLE, max_size=30))


@st.composite
def astropy_headers(draw: st.DrawFn) -> str:
    """Header text written by astropy from random cards."""
    header = fits.Header()
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["standard", "standard", "pooled", "hierarch", "commentary", "blank"]))
        if kind == "commentary":
            keyword = draw(st.sampled_from(["COMMENT", "HISTORY"]))
            header.append(fits.Card(keyword, draw(st.text(PRINTABLE, max_size=90))))
            continue
        if kind == "blank":
            header.append(fits.Card("", draw(st.text(PRINTABLE, max_size=20))))
            continue
        key = draw({"standard": standard_keys, "pooled": pooled_keys, "hierarch": hierarch_keys}[kind])
        if kind == "standard" and draw(st.booleans()):
            key = key.lower()  # astropy upper-cases standard keywords
        value, comment = draw(values), draw(comments)
        if isinstance(value, str):
            comment = comment.replace("'", "")  # astropy misreads `'' / it's` (see the example test)
        if kind == "hierarch" and isinstance(value, str):
            value = value[:20]
        try:
            card = fits.Card(key, value, comment)
            card.image  # noqa: B018 - formatting raises when a HIERARCH card cannot fit
        except ValueError:
            continue
        header.append(card)
    return header.tostring()


free_numbers = st.one_of(
    st.integers(-(10**9), 10**9).map(str),
    st.builds(lambda s, n: f"{s}{n:03d}", st.sampled_from(["", "+", "-"]), st.integers(0, 999)),  # leading zeros
    st.builds(
        lambda m, e, x: f"{m}{e}{x}",
        st.sampled_from(["1.5", "-2.", ".5", "+3.25", "0.0", "6"]),
        st.sampled_from(["E", "e", "D", "d"]),
        st.integers(-300, 300),
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(repr).filter(lambda t: "e" in t or "." in t),
)


@st.composite
def hand_typed_card(draw: st.DrawFn) -> str:
    """A free-format card as a person or other software might type it."""
    key = draw(st.one_of(standard_keys, pooled_keys))
    if draw(st.booleans()):
        key = key.lower()
    kind = draw(st.sampled_from(["number", "string", "bool", "blank"]))
    if kind == "number":
        value = draw(free_numbers)
    elif kind == "string":
        content = draw(strings.filter(lambda s: len(s) <= 40))
        value = "'" + content.replace("'", "''") + "'" + " " * draw(st.integers(0, 3))
    elif kind == "bool":
        value = draw(st.sampled_from(["T", "F"]))
    else:
        value = ""
    comment = draw(st.one_of(st.just(""), st.text(PRINTABLE, max_size=20).map(lambda c: " / " + c),
                             st.text(PRINTABLE, max_size=20).map(lambda c: "/" + c)))
    if kind == "blank" and not comment:
        comment = " / nothing"
    if kind == "string":
        comment = comment.replace("'", "")  # astropy misreads `'' / it's` (see the example test)
        if comment.startswith("/"):
            comment = " " + comment  # a string's closing quote must be followed by a blank or `/`
    card = f"{key:<8}= {' ' * draw(st.integers(0, 12))}{value}{comment}"
    return card


hypothesis_settings = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------------
# Properties: agreement with astropy


@hypothesis_settings
@given(text=astropy_headers(), newline=st.sampled_from(["\n", "\r\n"]))
def test_astropy_written_headers_read_the_same_in_both_layouts(text: str, newline: str) -> None:
    concatenated = parse_header(text) if _has_keyword(text) else None
    if concatenated is None:
        with pytest.raises(HeaderError):
            parse_header(text)
        return
    assert_matches_astropy(text, concatenated)
    per_line = parse_header(lines_layout(text, newline))
    assert dict(per_line) == dict(concatenated)
    assert per_line.comments == concatenated.comments
    json.loads(json.dumps(concatenated))  # the header column's JSON never breaks


@hypothesis_settings
@given(cards=st.lists(hand_typed_card(), min_size=1, max_size=20))
def test_free_format_cards_read_like_astropy(cards: list[str]) -> None:
    cards = [c for c in cards if len(c) <= 80]
    text = cards_text("SIMPLE  =                    T", *cards)
    ours = parse_header(text)
    assert assert_matches_astropy(text, ours) >= 1
    assert dict(parse_header(lines_layout(text))) == dict(ours)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=400), st.text(max_size=400)))
@example(data=b"\xff\xd8\xff\xe0\x00\x10JFIF")
@example(data="SIMPLE  = 'unterminated")
@example(data="CONTINUE  'orphan'")
def test_arbitrary_input_raises_only_header_error(data: bytes | str) -> None:
    try:
        header = parse_header(data)
    except HeaderError as exc:
        assert exc.reason
        return
    assert header and all(isinstance(v, str) for v in header.values())
    json.loads(json.dumps(header, ensure_ascii=False))


def _has_keyword(text: str) -> bool:
    """Whether astropy's header has any keyword card (ours refuses a header of only comments)."""
    return any(key not in ("", "COMMENT", "HISTORY") for key in fits.Header.fromstring(text).keys())


# --------------------------------------------------------------------------------------------------
# Card rules, by example


def test_string_values_lose_quotes_trailing_blanks_and_doubled_quotes() -> None:
    header = parse_header(cards_text("OBJECT  = 'M 31    '  / target", "OBSERVER= 'O''Brien'", "NOTE    = '  x'"))
    assert header["OBJECT"] == "M 31"
    assert header.comments["OBJECT"] == "target"
    assert header["OBSERVER"] == "O'Brien"
    assert header["NOTE"] == "  x"


def test_a_doubled_quote_before_a_slash_stays_inside_the_string() -> None:
    # astropy 8 reads "a'" here; the FITS standard (and we) read the escaped quote as text
    header = parse_header(cards_text("NOTE    = 'a'' / b'  / real comment"))
    assert header["NOTE"] == "a' / b"
    assert header.comments["NOTE"] == "real comment"


def test_an_empty_string_ends_at_its_second_quote() -> None:
    # astropy 8 reads "' /" here (its regex wants at least one character before the closing quote)
    header = parse_header(cards_text("NOTE    = '' / it's empty", "OTHER   = 'x' / it's not"))
    assert header["NOTE"] == ""
    assert header.comments["NOTE"] == "it's empty"
    assert (header["OTHER"], header.comments["OTHER"]) == ("x", "it's not")


def test_numbers_and_logicals_keep_their_text() -> None:
    header = parse_header(cards_text("SSTKNUM =                    3", "EXPTIME =               1.5E+01 / [s]",
                                     "FLAG    =                    T", "OTHER   = F", "DEXP    = 2.5D-3"))
    assert (header["SSTKNUM"], header["EXPTIME"], header["FLAG"], header["OTHER"]) == ("3", "1.5E+01", "T", "F")
    assert header["DEXP"] == "2.5D-3"
    assert header["SSTKNUM"].isdigit()  # what photonranch-api relies on


def test_unquoted_text_with_a_slash_is_kept_whole() -> None:
    header = parse_header(cards_text("AIRMASS = N/A / not computed", "FOCUS   = 1.5/no blank before slash"))
    assert header["AIRMASS"] == "N/A"
    assert header.comments["AIRMASS"] == "not computed"
    assert header["FOCUS"] == "1.5"


def test_first_occurrence_of_a_keyword_wins() -> None:
    header = parse_header(cards_text("FILTER  = 'ip'", "FILTER  = 'gp'", "LONG    = 'a&'", "CONTINUE  'b'"))
    assert header["FILTER"] == "ip"
    header = parse_header(cards_text("LONG    = 'first'", "LONG    = 'x&'", "CONTINUE  'y'"))
    assert header["LONG"] == "first"  # a duplicate's CONTINUE cards do not extend the first value


def test_continue_cards_join_a_long_string_and_its_comments() -> None:
    header = parse_header(cards_text("LONG    = 'abc&'  / one", "CONTINUE  'de''f&' / two", "CONTINUE  'g'"))
    assert header["LONG"] == "abcde'fg"
    assert header.comments["LONG"] == "one two"


def test_hierarch_keywords_are_named_by_the_words_after_hierarch() -> None:
    header = parse_header(cards_text("HIERARCH ESO DET CHIP NAME = 'ccd1' / chip", "HIERARCH Site temp = -3.5"))
    assert header["ESO DET CHIP NAME"] == "ccd1"
    assert header["Site temp"] == "-3.5"


def test_commentary_cards_are_joined_and_blank_cards_dropped() -> None:
    header = parse_header(cards_text("COMMENT first", "", "        blank-keyword text", "COMMENT second",
                                     "HISTORY done", "A       = 1"))
    assert header["COMMENT"] == "first\nsecond"
    assert header["HISTORY"] == "done"
    assert "" not in header


def test_parsing_stops_at_end() -> None:
    header = parse_header(cards_text("A       = 1") + "B       = 2".ljust(80))
    assert "B" not in header


def test_lookup_accepts_a_lower_case_standard_keyword() -> None:
    header = parse_header(cards_text("filter  = 'ip'"))
    assert list(header) == ["FILTER"]
    assert header["filter"] == "ip" and header.get("filter") == "ip" and "filter" in header
    assert header.get("nothing", "default") == "default"


@pytest.mark.parametrize(
    "text",
    [
        "SIMPLE  =                    T\nFILTER  = 'ip'\nEND\n",
        "SIMPLE  =                    T\r\nFILTER  = 'ip'\r\nEND\r\n",
        "SIMPLE  = T\nFILTER='ip'\nEND",
        cards_text("SIMPLE  =                    T", "FILTER  = 'ip'") + "\n",
    ],
    ids=["lines", "crlf", "short-lines-no-blank", "concatenated-with-newline"],
)
def test_both_layouts_and_line_endings(text: str) -> None:
    header = parse_header(text.encode())
    assert dict(header) == {"SIMPLE": "T", "FILTER": "ip"}


def test_unicode_keywords_and_values_do_not_crash() -> None:
    utf8 = parse_header(cards_text("TEMPÉR  = 5", "OBSERVER= 'Zoë'", "HIERARCH Ångström = 'λ'").encode())
    assert utf8["TEMPÉR"] == "5" and utf8["OBSERVER"] == "Zoë" and utf8["Ångström"] == "λ"
    latin1 = parse_header("TEMPÉR  = 5\nOBSERVER= 'Zoë'\n".encode("latin-1"))
    assert latin1["TEMPÉR"] == "5" and latin1["OBSERVER"] == "Zoë"
    json.loads(db.header_json(utf8))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "header file is empty"),
        (b"   \n\n  ", "header file is empty"),
        (bytes(range(256)) * 4, "header is binary data, not FITS cards"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40, "header is binary data, not FITS cards"),
        (b"hello, this is not a FITS header\n", "no FITS keyword cards found"),
        (cards_text("COMMENT only commentary").encode(), "no FITS keyword cards found"),
    ],
    ids=["empty", "blank", "binary", "png", "prose", "only-comments"],
)
def test_unreadable_headers_raise_header_error_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(HeaderError) as caught:
        parse_header(data)
    assert caught.value.reason == reason


def test_trailing_nul_padding_is_tolerated() -> None:
    assert parse_header(cards_text("A       = 1").encode() + b"\x00" * 10)["A"] == "1"


# --------------------------------------------------------------------------------------------------
# Columns (docs/contracts.md §2)


def columns(*cards: str) -> dict:
    return header_columns(parse_header(cards_text("SIMPLE  =                    T", *cards)))


def test_columns_are_exactly_the_header_columns_of_the_table() -> None:
    assert set(columns()) == set(db.HEADER_COLUMNS)


def test_scalar_columns_come_from_their_keywords() -> None:
    got = columns("ALTITUDE=                 45.5", "AZIMUTH =                180.0", "FILTER  = 'ip      '",
                  "AIRMASS =                1.414", "EXPTIME =                  30.", "USERNAME= 'Ann Smith'",
                  "USERID  = 'google-oauth2|123'")
    assert got == {
        "right_ascension": None, "declination": None, "altitude": 45.5, "azimuth": 180.0, "filter_used": "ip",
        "airmass": 1.414, "exposure_time": 30.0, "username": "Ann Smith", "user_id": "google-oauth2|123",
    }


@pytest.mark.parametrize("odd", ["'N/A'", "N/A", "'Unknown'", "''", "'nan'", "'inf'", "", "'  '", "'12 apples'"])
def test_odd_values_in_numeric_fields_become_null(odd: str) -> None:
    got = columns(f"AIRMASS = {odd}", f"EXPTIME = {odd}", f"ALTITUDE= {odd}", f"RA      = {odd}", f"DEC     = {odd}")
    assert (got["airmass"], got["exposure_time"], got["altitude"]) == (None, None, None)
    assert (got["right_ascension"], got["declination"]) == (None, None)


def test_a_number_in_free_format_still_fills_a_column() -> None:
    assert columns("EXPTIME = 3.0D1")["exposure_time"] == 30.0


RA_12H34M56S7 = 12 + 34 / 60 + 56.7 / 3600


@pytest.mark.parametrize(
    ("cards", "hours"),
    [
        (["RAHRS   = 1.5", "RA      = '12:00:00'", "RADEG   = 90.0"], 1.5),
        (["RA      = '12:34:56.7'", "RADEG   = 90.0"], RA_12H34M56S7),
        (["RA      = '12h34m56.7s'"], RA_12H34M56S7),
        (["RA      = '12 34 56.7'"], RA_12H34M56S7),
        (["RA      = 12.5"], 12.5),
        (["RA      = 'N/A'", "RADEG   = 187.5"], 12.5),
        (["RAHRS   = 'Unknown'", "RADEG   = 187.5"], 12.5),
        (["RADEG   = 187.5", "OBJCTRA = '01 00 00'"], 12.5),
        (["OBJCTRA = 187.5 / [deg] object right ascension"], 12.5),
        (["OBJCTRA = '12 30 00.0'  / object right ascension"], 12.5),
        (["RA      = 187.5", "OBJCTRA = '01 00 00'"], 1.0),  # 187.5 "hours" is impossible: next source
        (["RA      = '25:00:00'"], None),
        (["RA      = '12:61:00'"], None),
        ([], None),
    ],
)
def test_right_ascension_is_decimal_hours_from_the_first_usable_source(cards: list[str], hours: float | None) -> None:
    got = columns(*cards)["right_ascension"]
    assert got == pytest.approx(hours) if hours is not None else got is None


@pytest.mark.parametrize(
    ("cards", "degrees"),
    [
        (["DECDEG  = -12.25", "DEC     = '+10:00:00'"], -12.25),
        (["DEC     = '-00:30:00'"], -0.5),
        (["DEC     = '+45:30:36'"], 45.51),
        (["DEC     = '-12d30m'"], -12.5),
        (["DEC     = '-12 30 00'"], -12.5),
        (["DEC     = -33.5"], -33.5),
        (["DEC     = 'Unknown'", "OBJCTDEC= '+20 15 00'"], 20.25),
        (["DECDEG  = 'N/A'", "DEC     = '-05:00:00'"], -5.0),
        (["DEC     = 95.0", "OBJCTDEC= '10 00 00'"], 10.0),
        (["DEC     = '-91:00:00'"], None),
        ([], None),
    ],
)
def test_declination_is_decimal_degrees_from_the_first_usable_source(cards: list[str], degrees: float | None) -> None:
    got = columns(*cards)["declination"]
    assert got == pytest.approx(degrees) if degrees is not None else got is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("'2022-06-29T01:02:03.456'", dt.datetime(2022, 6, 29, 1, 2, 3, 456000)),
        ("'2022-06-29T01:02:03'", dt.datetime(2022, 6, 29, 1, 2, 3)),
        ("'2022-06-29 01:02:03.5'", dt.datetime(2022, 6, 29, 1, 2, 3, 500000)),
        ("'2022-06-29T01:02:03.123456789Z'", dt.datetime(2022, 6, 29, 1, 2, 3, 123456)),
        ("'2022-06-29T01:02:03+02:00'", dt.datetime(2022, 6, 28, 23, 2, 3)),
        ("'2022-06-29'", dt.datetime(2022, 6, 29)),
        ("'2016-12-31T23:59:60'", dt.datetime(2016, 12, 31, 23, 59, 59, 999999)),
        ("'2022-13-01T00:00:00'", None),
        ("'N/A'", None),
        ("'29/06/22'", None),
        ("''", None),
    ],
)
def test_capture_date_reads_date_obs_as_naive_utc(value: str, expected: dt.datetime | None) -> None:
    assert capture_date(parse_header(cards_text(f"DATE-OBS= {value}"))) == expected


def test_capture_date_is_none_without_date_obs() -> None:
    assert capture_date(parse_header(cards_text("A       = 1"))) is None


def test_columns_accept_any_mapping() -> None:
    got = header_columns({"RADEG": "15", "DEC": "-1:30", "EXPTIME": "2"})
    assert (got["right_ascension"], got["declination"], got["exposure_time"]) == (1.0, -1.5, 2.0)
    assert math.isclose(capture_date({"DATE-OBS": "2020-01-01T00:00:00"}).timestamp(),
                        dt.datetime(2020, 1, 1).timestamp())


def test_date_obs_at_the_edge_of_the_calendar_with_an_offset_is_unusable_not_an_error():
    for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        card = f"DATE-OBS= '{value}'".ljust(80)
        assert capture_date(parse_header(card + "END".ljust(80))) is None

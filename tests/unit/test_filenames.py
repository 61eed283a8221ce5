import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archive.formats.filenames import (
    EXTENSIONS,
    FilenameError,
    FileRole,
    ParsedName,
    decode_event_key,
    parse_base_filename,
    parse_filename,
    parse_key,
    reductions,
    role_of,
    site_of,
)

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@st.composite
def parsed_names(draw: st.DrawFn) -> ParsedName:
    site = draw(st.text(ALNUM, min_size=3, max_size=6))
    # keep the base filename within the 29-character column
    instrument = draw(st.text(ALNUM + "_", min_size=1, max_size=29 - len(site) - 3 - 16))
    date = draw(st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(9999, 12, 31))).strftime("%Y%m%d")
    counter = f"{draw(st.integers(0, 99_999_999)):08d}"
    data_type = draw(st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=4))
    reduction = f"{draw(st.integers(0, 99)):02d}"
    ext = draw(st.sampled_from(EXTENSIONS))
    return ParsedName(site, instrument, date, counter, data_type, reduction, ext)


@given(parsed_names())
def test_format_then_parse_round_trips(name):
    assert parse_filename(name.filename) == name
    assert parse_key(f"data/{name.filename}").name == name


@given(st.text())
def test_arbitrary_text_raises_only_filename_error(text):
    try:
        parse_filename(text)
    except FilenameError as exc:
        assert exc.reason
    try:
        parse_key(text)
    except FilenameError as exc:
        assert exc.reason


def test_example_parses_into_parts():
    name = parse_filename("sro-kb001ms-20220629-00010442-EX10.fits.bz2")
    assert (name.site, name.instrument, name.date, name.counter) == ("sro", "kb001ms", "20220629", "00010442")
    assert (name.data_type, name.reduction, name.ext) == ("EX", "10", "fits.bz2")
    assert name.base_filename == "sro-kb001ms-20220629-00010442"


def test_lowercase_data_type_keeps_its_case():
    assert parse_filename("sro-kb001ms-20220629-00010442-e10.jpg").data_type == "e"


@pytest.mark.parametrize(
    ("filename", "reason"),
    [
        ("sro-kb001ms-20220629-0001044-EX10.jpg", "counter '0001044' must be 8 digits"),
        ("sro-kb001ms-20220631-00010442-EX10.jpg", "not a real calendar date"),
        ("sro-kb001ms-2022069-00010442-EX10.jpg", "must be 8 digits (YYYYMMDD)"),
        ("sr-kb001ms-20220629-00010442-EX10.jpg", "site 'sr' must be 3-6 letters or digits"),
        ("sro-kb-001-20220629-00010442-EX10.jpg", "6 dash-separated parts"),
        ("sro-kb001ms-20220629-00010442-EX1.jpg", "reduction in 'EX1' must be exactly 2 digits"),
        ("sro-kb001ms-20220629-00010442-10.jpg", "data type in '10' must be letters"),
        ("sro-kb001ms-20220629-00010442-EX10.png", "extension 'png' is not one of"),
        ("sro-kb001ms-20220629-00010442-EX10", "no file extension"),
        ("sro-kb001msxxxxxxxxx-20220629-00010442-EX10.jpg", "the archive holds at most 29"),
        ("", "empty filename"),
    ],
)
def test_malformed_names_give_precise_reasons(filename, reason):
    with pytest.raises(FilenameError) as info:
        parse_filename(filename)
    assert reason in info.value.reason


def test_key_needs_a_known_directory():
    with pytest.raises(FilenameError, match="directory 'uploads'"):
        parse_key("uploads/sro-kb001ms-20220629-00010442-EX10.jpg")
    assert parse_key("info-images/sro-kb001ms-20220629-00010442-EX10.jpg").s3_directory == "info-images"


def test_event_keys_are_url_decoded():
    assert decode_event_key("data%2Fsro-kb001ms-20220629-00010442-EX10.jpg") == (
        "data/sro-kb001ms-20220629-00010442-EX10.jpg"
    )
    assert decode_event_key("data/a+b.txt") == "data/a b.txt"


def test_site_of_unparseable_key_is_unknown_site():
    assert site_of("data/garbage.txt") == "unknown_site"
    assert site_of("data/sro-kb001ms-20220629-00010442-EX10.jpg") == "sro"


def test_base_filename_validation():
    assert parse_base_filename("sro-kb001ms-20220629-00010442").counter == "00010442"
    with pytest.raises(FilenameError):
        parse_base_filename("sro-kb001ms-20220629")
    with pytest.raises(FilenameError):
        parse_base_filename("sro-kb001ms-20220629-0001044x")


def test_each_file_role_takes_the_reductions_of_the_contract_the_preferred_first():
    assert reductions(FileRole.FITS_RAW) == ("00", "01")
    assert reductions(FileRole.FITS_REDUCED) == ("10", "13")
    assert reductions(FileRole.JPG_MEDIUM) == ("10", "13")
    assert reductions(FileRole.JPG_SMALL) == ("11",)


@pytest.mark.parametrize(
    "reduction,ext,role",
    [("01", "fits.bz2", FileRole.FITS_RAW), ("13", "fits.fz", FileRole.FITS_REDUCED),
     ("13", "jpg", FileRole.JPG_MEDIUM), ("11", "jpg", FileRole.JPG_SMALL),
     ("11", "fits", None), ("00", "jpg", None), ("10", "txt", None)],
)
def test_a_file_role_comes_from_reduction_and_extension(reduction, ext, role):
    assert role_of(reduction, ext) is role

"""The simulated site produces what real sites send: names the archive accepts, headers it can read."""

from __future__ import annotations

import bz2
import datetime as dt
import email.parser
import io

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from archive.formats.filenames import parse_key
from archive.formats.headers import capture_date, header_columns, parse_header
from archive.local.simulate import (
    FILE_LETTERS,
    airmass,
    alt_az,
    check_letters,
    make_exposure,
    multipart_form,
    render_files,
)

MOMENT = dt.datetime(2026, 5, 6, 7, 8, 9, 123_000)


def exposure(data_type: str = "EX", smartstack: tuple[str, int, int] | None = None, directory: str = "data"):
    return make_exposure(
        s3_directory=directory,
        site="tst",
        instrument="kb001ms",
        night="20260506",
        counter=42,
        data_type=data_type,
        moment=MOMENT,
        rng=np.random.default_rng(7),
        smartstack=smartstack,
    )


def test_every_file_letter_gives_a_key_the_archive_parses_with_the_right_reduction():
    exp = exposure("EP")
    for letter, (reduction, ext, _) in FILE_LETTERS.items():
        parsed = parse_key(exp.key(letter))
        assert parsed.name.base_filename == "tst-kb001ms-20260506-00000042"
        assert (parsed.name.data_type, parsed.name.reduction, parsed.name.ext) == ("EP", reduction, ext)


def test_header_text_is_80_character_cards_the_archive_reads_into_columns():
    exp = exposure(smartstack=("tst00000041", 2, 5))
    (text,) = [f.body for f in render_files(exp, "h")]

    assert len(text) % 80 == 0 and b"\n" not in text
    header = parse_header(text)
    columns = header_columns(header)
    assert columns["right_ascension"] == pytest.approx(exp.header["RAHRS"], abs=1e-6)
    assert columns["declination"] == pytest.approx(exp.header["DECDEG"], abs=1e-5)
    assert columns["filter_used"] == exp.header["FILTER"]
    assert columns["exposure_time"] == exp.header["EXPTIME"]
    assert columns["username"] and columns["user_id"]
    assert capture_date(header) == MOMENT
    assert header["SSTKNUM"].isdigit() and header["SSTKLEN"] == "5"


def test_single_frames_are_not_marked_as_smart_stack_members():
    header = parse_header(render_files(exposure(), "h")[0].body)
    assert not header["SSTKNUM"].isdigit()


def test_fits_files_open_with_the_header_and_the_expected_shapes():
    small_file, large_file = render_files(exposure(), "fF")
    assert small_file.key.endswith("-EX10.fits") and large_file.key.endswith("-EX00.fits.bz2")

    large = fits.getheader(io.BytesIO(bz2.decompress(large_file.body)))
    with fits.open(io.BytesIO(small_file.body)) as small:
        assert small[0].data.shape == (96, 128)
        assert small[0].header["XBINING"] == 2 and small[0].header["OBJECT"] == large["OBJECT"]
    assert (large["NAXIS1"], large["NAXIS2"]) == (256, 192)


def test_jpgs_are_jpegs_with_the_medium_and_thumbnail_sizes():
    medium, thumb = (Image.open(io.BytesIO(f.body)) for f in render_files(exposure(), "jt"))
    assert medium.format == thumb.format == "JPEG"
    assert medium.size == (256, 192) and thumb.height == 128


def test_multipart_form_puts_the_policy_fields_first_and_the_file_last():
    body, content_type = multipart_form({"key": "data/a.txt", "policy": "p"}, "a.txt", b"\x00payload", "text/plain")

    message = email.parser.BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    parts = message.get_payload()
    names = [p.get_param("name", header="content-disposition") for p in parts]
    assert names == ["key", "policy", "file"]
    assert parts[-1].get_payload(decode=True) == b"\x00payload"
    assert parts[0].get_payload() == "data/a.txt"


def test_file_letters_are_checked_and_deduplicated():
    assert check_letters("hjjF") == "hjF"
    with pytest.raises(ValueError, match="letters from"):
        check_letters("hx")
    with pytest.raises(ValueError):
        check_letters("")


def test_sky_geometry_is_plausible():
    assert airmass(90) == pytest.approx(1.0, abs=1e-3)
    assert 30 < airmass(0) < 40
    # A target at the celestial pole stands at the site's latitude, whatever the time.
    altitude, _ = alt_az(ra_hours=3.0, dec_deg=90.0, latitude_deg=34.4, lst_hours=17.0)
    assert altitude == pytest.approx(34.4, abs=1e-6)


def test_a_colour_set_is_one_sky_through_three_filters_with_stars_of_different_colours():
    frames = [
        make_exposure(s3_directory="data", site="tst", instrument="kb001ms", night="20260506", counter=50 + i,
                      data_type="EX", moment=MOMENT, rng=np.random.default_rng(i), smartstack=("tst00000050", i + 1, 3),
                      filter_name=name, sky_seed=50)
        for i, name in enumerate(("rp", "gp", "B"))
    ]
    assert [f.header["FILTER"] for f in frames] == ["rp", "gp", "B"]
    assert {f.header["SMARTSTK"] for f in frames} == {"tst00000050"}
    red, green, blue = (f.image.astype(float) - 1000 for f in frames)
    stars = green > 500
    assert stars.sum() > 20
    assert np.corrcoef(red[stars], blue[stars])[0, 1] > 0.5, "the same stars in every filter"
    ratio = red[stars] / np.maximum(blue[stars], 1)
    assert ratio.std() > 0.3, "but not the same colour"

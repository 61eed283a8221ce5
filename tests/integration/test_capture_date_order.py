"""capture_date is ranked, not first-come (docs/contracts.md §2): DATE-OBS of the header text, else DATE-OBS of
a FITS header, else the earliest upload time; the same whatever order the files arrive in.

Generated exposures (which files, which headers carry DATE-OBS, when each was uploaded) arrive in
generated orders, with redeliveries, through the real ingest core: moto for S3, the test PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

import db
from archive import aws
from archive.database import get_engine
from archive.ingest.pipeline import Upload, ingest_upload
from archive.settings import get_settings
from tests import samples

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:astropy.*")

BASE = samples.BASE
TXT_DATE = dt.datetime(2022, 6, 29, 3, 12, 45, 123_000)
FITS_DATE = dt.datetime(2022, 6, 29, 2, 0, 0)
UPLOADS = [dt.datetime(2022, 6, 29, 5, m, s) for m in (0, 7) for s in (0, 30)]

# name -> (body with DATE-OBS, body without)
FILES = {
    f"{BASE}-EX00.txt": (
        samples.header_text(samples.make_header()),
        samples.header_text(samples.make_header(**{"DATE-OBS": None})),
    ),
    f"{BASE}-EX10.fits": (
        samples.fits_bytes(samples.make_header(**{"DATE-OBS": FITS_DATE.isoformat()})),
        samples.fits_bytes(samples.make_header(**{"DATE-OBS": None})),
    ),
    f"{BASE}-EX01.fits.bz2": (
        samples.fits_bz2_bytes(samples.make_header(**{"DATE-OBS": FITS_DATE.isoformat()})),
        samples.fits_bz2_bytes(samples.make_header(**{"DATE-OBS": None})),
    ),
    f"{BASE}-EX10.jpg": (samples.jpeg_bytes((96, 64)), samples.jpeg_bytes((96, 64))),
}


@st.composite
def exposures(draw: st.DrawFn) -> tuple[dict[str, tuple[bool, dt.datetime]], list[str]]:
    """Which files exist (each: whether its header has DATE-OBS, when it was uploaded), and an arrival
    order of their notifications with some delivered twice."""
    names = draw(st.lists(st.sampled_from(sorted(FILES)), min_size=1, max_size=len(FILES), unique=True))
    files = {name: (draw(st.booleans()), draw(st.sampled_from(UPLOADS))) for name in names}
    order = draw(st.permutations(names))
    again = draw(st.lists(st.sampled_from(names), max_size=2))
    return files, [*order, *again]


def expected_date(files: dict[str, tuple[bool, dt.datetime]]) -> dt.datetime:
    text_file = files.get(f"{BASE}-EX00.txt")
    if text_file and text_file[0]:
        return TXT_DATE
    if any(dated for name, (dated, _) in files.items() if ".fits" in name):
        return FITS_DATE
    return min(uploaded for _, uploaded in files.values())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(exposure=exposures())
def test_capture_date_follows_the_ranked_sources_in_every_arrival_order(database, aws_stack, exposure):
    files, arrivals = exposure
    s3, bucket = aws.client("s3"), get_settings().bucket
    with get_engine().begin() as conn:
        conn.execute(text("DELETE FROM images WHERE base_filename = :b"), {"b": BASE})
    for name, (dated, _) in files.items():
        s3.put_object(Bucket=bucket, Key=f"data/{name}", Body=FILES[name][0 if dated else 1])

    for name in arrivals:
        body = FILES[name][0 if files[name][0] else 1]
        ingest_upload(Upload(bucket, f"data/{name}", len(body), files[name][1]))

    with get_engine().connect() as conn:
        row = db.get_row(conn, BASE)
    assert row["capture_date"] == expected_date(files), (files, arrivals)
    assert row["sort_date"] == row["capture_date"]


def test_a_header_text_without_date_obs_before_a_fits_with_one_gives_the_fits_date(database, aws_stack):
    """The reported order: txt (no DATE-OBS) then FITS used to leave the row dated by the upload."""
    s3, bucket = aws.client("s3"), get_settings().bucket
    for name in (f"{BASE}-EX00.txt", f"{BASE}-EX10.fits"):
        s3.put_object(Bucket=bucket, Key=f"data/{name}", Body=FILES[name][0 if "fits" in name else 1])
        ingest_upload(Upload(bucket, f"data/{name}", 1, UPLOADS[0]))
    with get_engine().connect() as conn:
        row = db.get_row(conn, BASE)
    assert row["capture_date"] == FITS_DATE and row["capture_date_source"] == db.DATE_FROM_FITS_HEADER
    assert row["filter_used"] == "ip" and "DATE-OBS" not in row["header"], "the header text's columns stay"

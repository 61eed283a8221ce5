"""Hostile files: nothing a file contains may reach the dead-letter queue, blow memory, or mislead the log.

For every kind of bad file the outcome is a status with a reason, never a `RetryableError` (which SQS
would redeliver until the DLQ), the row's flags follow the contract (a FITS file that exists is
flagged even when its header is garbage; a JPEG that is not usable sets no flag), and the memory a
thumbnail takes is measured, as the peak resident size of a subprocess, against the 300 MiB bound.

moto in-process for S3/DynamoDB, the test PostgreSQL for the table.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

import db
from archive import aws
from archive.database import get_engine
from archive.errors import PermanentError
from archive.failures import classify
from archive.ingest.pipeline import Upload, ingest_upload
from archive.settings import get_settings
from archive.statuses import FAILED, INGESTED, REJECTED
from tests.hostile import card, declaring, fz_file, header_block, jpeg, with_metadata

ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20
MEMORY_BOUND_MIB = 300  # the ingest Lambda has 1024 MB and runs a batch's files one after another
BASE = "hst-kb001ms-20220629-00000001"
UPLOADED = dt.datetime(2022, 6, 29, 4)
RANGE = re.compile(r"bytes=(\d+)-(\d+)")


@pytest.fixture
def stack(database, aws_stack):
    return aws.client("s3"), get_settings().bucket


@pytest.fixture
def ranges(stack) -> list[str]:
    """Every Range header our code sends to S3 during the test (a hook on the client it uses)."""
    s3, _ = stack
    sent: list[str] = []

    def record(params, **kwargs) -> None:  # noqa: ANN001
        if "Range" in params:
            sent.append(params["Range"])

    s3.meta.events.register("before-parameter-build.s3.GetObject", record)
    yield sent
    s3.meta.events.unregister("before-parameter-build.s3.GetObject", record)


def ingest(s3, bucket: str, key: str, body: bytes) -> tuple[str, str]:
    """Upload and ingest one file; (status, reason). A RetryableError fails the test by propagating."""
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    outcome = ingest_upload(Upload(bucket, key, len(body), UPLOADED))
    assert outcome.reason, "every outcome says why"
    return outcome.status, outcome.reason


def flags(base: str = BASE) -> dict[str, bool]:
    with get_engine().connect() as conn:
        row = db.get_row(conn, base)
    return {flag: bool(row and row[flag]) for flag in db.FLAGS}


def forget_row(base: str = BASE) -> None:
    with get_engine().begin() as conn:
        conn.execute(text("DELETE FROM images WHERE base_filename = :b"), {"b": base})


def assert_well_formed(sent: list[str], budget: int) -> None:
    for value in sent:
        match = RANGE.fullmatch(value)
        assert match, f"malformed range {value!r}"
        first, last = int(match[1]), int(match[2])
        assert 0 <= first <= last and last - first + 1 <= budget, value


# --------------------------------------------------------------------------------------------------
# FITS headers: garbage structure is the file's fault, never a retry


@pytest.mark.parametrize(
    ("cards", "reason"),
    [
        ([card("BITPIX", "16"), card("NAXIS", "6"), *(card(f"NAXIS{i}", "1" + "0" * 60) for i in range(1, 7))],
         "file ends before the compressed image extension"),
        ([card("BITPIX", "8"), card("NAXIS", "-1"), card("GROUPS", "T")], "NAXIS = -1 is outside 0-999"),
        ([card("BITPIX", "8"), card("NAXIS", "1"), card("NAXIS1", "-100000000")], "negative data dimensions"),
        ([card("BITPIX", "8"), card("NAXIS", "1"), card("NAXIS1", "'ten'")], "is not an integer"),
        ([card("BITPIX", "7"), card("NAXIS", "1"), card("NAXIS1", "10")], "BITPIX = 7"),
    ],
    ids=["naxis-10e60", "naxis-minus-1-groups", "negative-size", "text-dimension", "bitpix-7"],
)
def test_a_fz_file_with_garbage_dimensions_is_flagged_and_failed_with_a_reason_never_retried(
    stack, ranges, cards, reason
):
    s3, bucket = stack
    status, why = ingest(s3, bucket, f"data/{BASE}-EX10.fits.fz", fz_file(cards))
    assert status == FAILED and why.startswith("fits_10_exists set; header: ") and reason in why
    assert flags()["fits_10_exists"], "the file exists: its flag is set"
    assert_well_formed(ranges, get_settings().fits_header_max_bytes)


NUMBER = st.one_of(st.integers(-3, 10), st.integers(-(10**9), 10**9), st.integers(-(10**60), 10**60)).map(str)
GARBAGE = st.one_of(
    st.sampled_from(["T", "F", "''", "'x'", "1.5", "1E400", "-0", "NaN", "", "' '"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
)


@st.composite
def structure_cards(draw: st.DrawFn) -> list[tuple[str, str]]:
    """The keywords that size an HDU's data, mostly plausible, sometimes absurd or garbage, plus noise."""
    value = st.one_of(NUMBER, GARBAGE)
    cards = [("BITPIX", draw(st.one_of(st.sampled_from(["8", "16", "32", "64", "-32", "-64"]), value)))]
    cards.append(("NAXIS", draw(st.one_of(st.integers(-2, 7).map(str), value))))
    cards += [(f"NAXIS{i}", draw(value)) for i in range(1, draw(st.integers(0, 7)) + 1)]
    for keyword, choices in (("PCOUNT", NUMBER), ("GCOUNT", NUMBER), ("GROUPS", st.sampled_from(["T", "F"]))):
        if draw(st.booleans()):
            cards.append((keyword, draw(choices)))
    noise = st.tuples(st.sampled_from(["ZIMAGE", "ZNAXIS", "ZNAXIS1", "ZBITPIX", "XTENSION", "END", "NAXIS"]), value)
    return draw(st.permutations(cards + draw(st.lists(noise, max_size=3))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    structure=structure_cards(),
    in_table=st.booleans(),
    data_bytes=st.sampled_from([0, 2880, 5000]),
    extension=st.booleans(),
    suffix=st.sampled_from(["EX10.fits.fz", "EX01.fits"]),
)
def test_generated_garbage_headers_get_a_reason_a_flag_and_only_well_formed_ranges(
    stack, ranges, structure, in_table, data_bytes, extension, suffix
):
    s3, bucket = stack
    cards = [card(keyword, value) for keyword, value in structure]
    body = fz_file([] if in_table else cards, data_bytes=data_bytes, extension=extension)
    if in_table:  # garbage in the compressed image's table header instead of the primary's
        body = header_block([card("SIMPLE", "T"), card("NAXIS", "0")]) + header_block(
            [card("XTENSION", "'BINTABLE'"), card("ZIMAGE", "T"), *cards]
        )
    forget_row()
    ranges.clear()
    status, _ = ingest(s3, bucket, f"data/{BASE}-{suffix}", body)
    assert status in (INGESTED, FAILED)
    assert flags()["fits_10_exists" if "EX10" in suffix else "fits_01_exists"]
    assert_well_formed(ranges, get_settings().fits_header_max_bytes)


RANGE_IGNORING_READER = """
import json, sys
from archive.formats.fits_header import read_fits_header
try:
    read_fits_header("photonranch-001", "data/hst-kb001ms-20220629-00000001-EX10.fits.fz")
    result = "read"
except Exception as exc:
    result = f"{type(exc).__name__}: {exc}"
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]
print(json.dumps({"result": result, "peak_mib": int(hwm) / 1024}))
"""


class RangeIgnoringS3(http.server.BaseHTTPRequestHandler):
    """An S3 that answers every GET with 200 and the whole object (as a server does for a Range it
    does not understand): a FITS primary header declaring 400 MB of data, then 512 MiB of zeros."""

    OBJECT_BYTES = 512 * MIB
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        head = header_block([card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "1"),
                             card("NAXIS1", "400000000")])
        self.send_response(200)
        self.send_header("Content-Length", str(self.OBJECT_BYTES))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        try:
            self.wfile.write(head)
            zeros = bytes(MIB)
            for _ in range((self.OBJECT_BYTES - len(head)) // MIB):
                self.wfile.write(zeros)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader stopped at its budget and closed the connection: the point of the test

    def log_message(self, *args: object) -> None:
        pass


def run_measured(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run `script` in a fresh Python; it prints one JSON line with `peak_mib` (VmHWM) and `result`."""
    completed = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_a_server_that_ignores_the_range_is_read_only_up_to_the_header_budget():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeIgnoringS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        measured = run_measured(RANGE_IGNORING_READER, env={
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    finally:
        server.shutdown()
        server.server_close()
    assert measured["result"].startswith("HeaderError: the server ignored the byte range")
    assert measured["peak_mib"] < 150, "the 512 MiB body was not read"


# --------------------------------------------------------------------------------------------------
# JPEGs: peak memory of a thumbnail, measured in a subprocess

THUMBNAIL_CHILD = """
import json, sys
from archive.ingest.thumbnails import make_thumbnail
data = open(sys.argv[1], "rb").read()
try:
    result = f"thumbnail {len(make_thumbnail(data))} bytes"
except Exception as exc:
    result = f"{type(exc).__name__} {getattr(exc, 'status', '')}: {exc}"
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]
print(json.dumps({"result": result, "peak_mib": int(hwm) / 1024}))
"""

# (name, maker, expected start of the result). The 10000×10000 progressive files are the ~1 kB bombs
# that drove a process to 230-800 MiB before the decode budget.
HOSTILE_JPEGS = [
    ("progressive-gray-10000", lambda: declaring(jpeg("L", progressive=True), 10000, 10000), "JpegError rejected"),
    ("progressive-rgb420-10000", lambda: declaring(jpeg("RGB", progressive=True), 10000, 10000),
     "JpegError rejected"),
    ("progressive-rgb444-10000", lambda: declaring(jpeg("RGB", progressive=True, subsampling=0), 10000, 10000),
     "JpegError rejected"),
    ("progressive-cmyk-10000", lambda: declaring(jpeg("CMYK", progressive=True), 10000, 10000),
     "JpegError rejected"),
    ("progressive-rgb444-4500-within-budget",
     lambda: declaring(jpeg("RGB", progressive=True, subsampling=0), 4500, 4500), "thumbnail"),
    ("baseline-cmyk-10000", lambda: declaring(jpeg("CMYK"), 10000, 10000), "thumbnail"),
    ("declared-65500-square", lambda: declaring(jpeg("L", progressive=True), 65500, 65500), "JpegError failed"),
    ("metadata-60-mib", lambda: with_metadata(jpeg("RGB"), 60 * MIB), "JpegError rejected"),
    ("twelve-bit", lambda: declaring(jpeg("L"), 16, 16, precision=12), "JpegError failed"),
    ("near-the-byte-limit", lambda: jpeg("RGB", (4000, 4000), subsampling=0, quality=100), "thumbnail"),
]


@pytest.mark.parametrize(("name", "make", "expected"), HOSTILE_JPEGS, ids=[case[0] for case in HOSTILE_JPEGS])
def test_a_thumbnail_of_any_jpeg_under_the_byte_limit_stays_under_300_mib(tmp_path, name, make, expected):
    data = make()
    assert len(data) <= get_settings().thumbnail_max_bytes
    path = tmp_path / f"{name}.jpg"
    path.write_bytes(data)
    measured = run_measured(THUMBNAIL_CHILD, str(path))
    assert measured["result"].startswith(expected), measured
    assert measured["peak_mib"] <= MEMORY_BOUND_MIB, measured


# --------------------------------------------------------------------------------------------------
# JPEGs through the pipeline: flags per the contract


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (declaring(jpeg("CMYK", progressive=True), 10000, 10000), REJECTED, "over the 128 MiB limit"),
        (b"", FAILED, "empty file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), REJECTED, "not a JPEG"),
        (jpeg("RGB")[:200], FAILED, "JPEG"),
    ],
    ids=["memory-bomb", "empty", "png", "truncated"],
)
def test_a_medium_jpg_that_cannot_be_thumbnailed_sets_no_flag(stack, body, status, reason):
    s3, bucket = stack
    got, why = ingest(s3, bucket, f"data/{BASE}-EX10.jpg", body)
    assert got == status and why.startswith("thumbnail: ") and reason in why
    assert not flags()["jpg_medium_exists"] and not flags()["jpg_small_exists"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"", "empty file (0 bytes)"), (b"GIF89a" + bytes(50), "not a JPEG: the data is GIF"),
     (b"\xff\xd8\xff\xe0\x00\x10JFIF", "unreadable JPEG header")],
    ids=["empty", "gif", "cut-header"],
)
def test_a_site_thumbnail_that_is_empty_or_not_a_jpeg_is_failed_and_sets_no_flag(stack, body, reason):
    s3, bucket = stack
    status, why = ingest(s3, bucket, f"data/{BASE}-EX11.jpg", body)
    assert status == FAILED and reason in why
    assert not flags()["jpg_small_exists"]


def test_a_site_thumbnail_that_is_a_jpeg_sets_its_flag(stack):
    s3, bucket = stack
    assert ingest(s3, bucket, f"data/{BASE}-EX11.jpg", jpeg("RGB", (192, 128)))[0] == INGESTED
    assert flags()["jpg_small_exists"]


def set_channel(site: str, channel: int, base: str) -> None:
    aws.client("dynamodb").put_item(TableName=get_settings().info_images_table,
                                    Item={"pk": {"S": f"{site}#metadata"}, f"channel{channel}": {"S": base}})


def channel_item(site: str, channel: int) -> dict:
    return aws.client("dynamodb").get_item(TableName=get_settings().info_images_table,
                                           Key={"pk": {"S": f"{site}#{channel}"}}, ConsistentRead=True)["Item"]


def test_an_empty_info_thumbnail_leaves_the_channel_without_a_small_jpg(stack):
    s3, bucket = stack
    set_channel("hst", 1, BASE)
    status, _ = ingest(s3, bucket, f"info-images/{BASE}-EX11.jpg", b"")
    assert status == FAILED
    assert "Item" not in aws.client("dynamodb").get_item(TableName=get_settings().info_images_table,
                                                         Key={"pk": {"S": "hst#1"}})


# --------------------------------------------------------------------------------------------------
# Oversize info items


def long_string_cards(keyword: str, value: str) -> list[bytes]:
    """A string keyword continued over CONTINUE cards (the long-string convention), 66 characters a card."""
    pieces = [value[i : i + 66] for i in range(0, len(value), 66)]
    cards = [f"{keyword:<8}= '{pieces[0]}&'"] + [f"CONTINUE  '{piece}&'" for piece in pieces[1:-1]]
    cards.append(f"CONTINUE  '{pieces[-1]}'")
    return [c.ljust(80).encode() for c in cards]


def huge_header_text(keywords: int = 48, value_bytes: int = 10_000) -> bytes:
    """About 480 KB of header values: more than a DynamoDB item holds."""
    cards = [card("DATE-OBS", "'2022-06-29T03:12:45'")]
    for i in range(keywords):
        cards += long_string_cards(f"NOTE{i:04d}", "v" * value_bytes)
    return b"".join(cards) + b"END".ljust(80)


def test_an_info_header_over_the_item_limit_is_stored_in_part_and_the_channel_shows_the_new_image(stack):
    s3, bucket = stack
    old = "hst-kb001ms-20220629-00000000"
    set_channel("hst", 2, old)
    assert ingest(s3, bucket, f"info-images/{old}-EX10.jpg", jpeg("L", (64, 64)))[0] == INGESTED
    set_channel("hst", 2, BASE)  # the site moves channel 2 to the new exposure

    status, reason = ingest(s3, bucket, f"info-images/{BASE}-EX00.txt", huge_header_text())
    assert status == INGESTED
    assert "header stored without" in reason and "400 KB item limit" in reason
    item = channel_item("hst", 2)
    assert item["base_filename"]["S"] == BASE, "the channel shows the new exposure"
    header = item["header"]["M"]
    assert header["DATE-OBS"]["S"] == "2022-06-29T03:12:45" and 30 < len(header) < 49
    assert len(header["NOTE0000"]["S"]) == 10_000
    # the rest of the exposure still fits beside the header
    assert ingest(s3, bucket, f"info-images/{BASE}-EX10.jpg", jpeg("L", (64, 64)))[0] == INGESTED
    assert channel_item("hst", 2)["jpg_medium_exists"]["BOOL"] and channel_item("hst", 2)["jpg_small_exists"]["BOOL"]


def test_a_request_aws_refuses_as_invalid_is_permanent(stack):
    ddb = aws.client("dynamodb")
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the exception moto raises is the subject
        ddb.put_item(TableName=get_settings().uploads_log_table,
                     Item={"site": {"S": "hst"}, "upload_id": {"S": "x"}, "blob": {"S": "x" * 500_000}})
    error = classify(caught.value)
    assert isinstance(error, PermanentError) and not error.retry
    assert "ValidationException" in error.reason

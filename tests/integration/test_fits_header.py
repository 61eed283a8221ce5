"""Reading a FITS header from the start of an S3 object (moto), for .fits, .fits.bz2 and .fits.fz.

Files are real FITS written by astropy; the bytes S3 sends are counted with a botocore event hook on
the same client our code uses, to show that big files are not downloaded.
"""

from __future__ import annotations

import bz2
import io

import numpy as np
import pytest
from astropy.io import fits
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from archive import aws
from archive.errors import ObjectMissing
from archive.formats.fits_header import read_fits_header
from archive.formats.headers import HeaderError
from tests.unit.test_headers import assert_same_as

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:astropy.*")

KEY = "data/sro-kb001ms-20220629-00010442-EX{red}.{ext}"


def science_header(extra_cards: int = 40) -> fits.Header:
    header = fits.Header()
    header["DATE-OBS"] = ("2022-06-29T01:02:03.456", "[UTC] start of exposure")
    header["RA"] = ("12:34:56.7", "[hours]")
    header["DEC"] = ("-00:30:00", "[deg]")
    header["FILTER"] = "ip"
    header["EXPTIME"] = (30.0, "[s]")
    header["SSTKNUM"] = 3
    header["OBSERVER"] = "O'Brien"
    header["LONGNOTE"] = "a long note that astropy must write with CONTINUE cards " * 3
    header["HIERARCH SITE DOME STATE"] = "open"
    header["SMARTSTK"] = False
    for i in range(extra_cards):
        header[f"KEY{i:05d}"] = (i * 1.5, f"card {i}")
    header.add_comment("written by the test")
    return header


def fits_bytes(*hdus: fits.hdu.base.ExtensionHDU | fits.PrimaryHDU) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList(list(hdus)).writeto(buffer)
    return buffer.getvalue()


def noise(shape: tuple[int, int], seed: int = 1) -> np.ndarray:
    """Sky-like int16 data: compressible, but not trivially."""
    return np.random.default_rng(seed).normal(1000, 30, shape).astype(np.int16)


@pytest.fixture
def fetched(s3) -> list[int]:
    """Sizes of the GetObject bodies S3 sends during the test (the real client, counted by an event hook)."""
    sizes: list[int] = []

    def record(http_response, parsed, model, **kwargs) -> None:  # noqa: ANN001
        sizes.append(int(parsed.get("ContentLength", 0)))

    s3.meta.events.register("after-call.s3.GetObject", record)
    yield sizes
    s3.meta.events.unregister("after-call.s3.GetObject", record)


def put(s3, bucket: str, key: str, body: bytes) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key


def test_plain_fits_header_is_read_without_downloading_the_file(s3, bucket, fetched) -> None:
    header = science_header()
    raw = fits_bytes(fits.PrimaryHDU(noise((2048, 2048)), header=header))  # 8 MB of data
    key = put(s3, bucket, KEY.format(red="01", ext="fits"), raw)

    ours = read_fits_header(bucket, key)

    assert assert_same_as(fits.open(io.BytesIO(raw))[0].header, ours) > 40
    assert ours["LONGNOTE"] == header["LONGNOTE"].rstrip()
    assert ours["SITE DOME STATE"] == "open"
    assert fetched == [2880 * 8]  # one GET of the first eight blocks, of an 8 MB file


@pytest.mark.parametrize("cards", [0, 26, 27, 28, 300, 1200])
def test_headers_of_any_length_end_at_their_end_card(s3, bucket, cards: int) -> None:
    # 26-28 extra cards put END at the end of the first block, and one card either side of it;
    # 300 and 1200 need a second and a third, bigger read.
    header = fits.Header([(f"K{i:07d}", i) for i in range(cards)])
    raw = fits_bytes(fits.PrimaryHDU(np.zeros((10, 10), np.int16), header=header))
    key = put(s3, bucket, KEY.format(red="00", ext="fits"), raw)
    ours = read_fits_header(bucket, key)
    assert assert_same_as(fits.open(io.BytesIO(raw))[0].header, ours) == cards + 5  # SIMPLE..NAXIS2


def test_bz2_header_is_stream_decompressed_from_the_first_block(s3, bucket, fetched) -> None:
    data = np.random.default_rng(2).integers(-(2**15), 2**15, (1536, 1536), dtype=np.int16)  # incompressible
    raw = fits_bytes(fits.PrimaryHDU(data, header=science_header()))
    compressed = bz2.compress(raw)
    key = put(s3, bucket, KEY.format(red="01", ext="fits.bz2"), compressed)

    ours = read_fits_header(bucket, key)

    assert assert_same_as(fits.open(io.BytesIO(raw))[0].header, ours) > 40
    # bzip2 emits nothing before a whole 900 kB block has arrived: about one block is read, not 4.7 MB
    assert 900_000 < sum(fetched) < 1_200_000 < len(compressed) // 3


def test_multi_stream_bz2_is_followed_into_its_next_stream(s3, bucket) -> None:
    raw = fits_bytes(fits.PrimaryHDU(np.zeros((10, 10), np.int16), header=science_header()))
    split = 2880  # the header continues in the second stream, as with pbzip2's independent streams
    key = put(s3, bucket, KEY.format(red="01", ext="fits.bz2"), bz2.compress(raw[:split]) + bz2.compress(raw[split:]))
    assert read_fits_header(bucket, key)["FILTER"] == "ip"


@pytest.mark.parametrize("primary_data", [None, noise((100, 70))], ids=["empty-primary", "primary-with-data"])
def test_fz_header_is_the_compressed_image_header_of_the_second_hdu(s3, bucket, fetched, primary_data) -> None:
    primary = fits.PrimaryHDU(primary_data)
    primary.header["PRIMONLY"] = "not in the image header"
    image = fits.CompImageHDU(noise((1024, 1024), seed=3), header=science_header())
    raw = fits_bytes(primary, image)
    key = put(s3, bucket, KEY.format(red="10", ext="fits.fz"), raw)

    ours = read_fits_header(bucket, key)

    expected = fits.open(io.BytesIO(raw))[1].header  # astropy's view: the image's header
    assert assert_same_as(expected, ours) > 40
    assert (ours["BITPIX"], ours["NAXIS1"], ours["NAXIS2"]) == ("16", "1024", "1024")
    for table_keyword in ("ZIMAGE", "TTYPE1", "TFORM1", "ZCMPTYPE", "ZTILE1", "TFIELDS", "PRIMONLY"):
        assert table_keyword not in ours
    assert 0 < sum(fetched) < len(raw) // 10
    assert len(fetched) == (1 if primary_data is None else 2)  # the first read usually holds both headers


def test_truncated_bz2_is_a_header_error(s3, bucket) -> None:
    compressed = bz2.compress(fits_bytes(fits.PrimaryHDU(noise((200, 200)), header=science_header())))
    key = put(s3, bucket, KEY.format(red="01", ext="fits.bz2"), compressed[: len(compressed) // 2])
    with pytest.raises(HeaderError, match="truncated"):
        read_fits_header(bucket, key)


def test_corrupt_bz2_is_a_header_error(s3, bucket) -> None:
    compressed = bytearray(bz2.compress(fits_bytes(fits.PrimaryHDU(noise((50, 50)), header=science_header()))))
    compressed[100:110] = b"\xff" * 10
    key = put(s3, bucket, KEY.format(red="01", ext="fits.bz2"), bytes(compressed))
    with pytest.raises(HeaderError, match="corrupt bzip2 data"):
        read_fits_header(bucket, key)


@pytest.mark.parametrize(
    ("ext", "body", "reason"),
    [
        ("fits", b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 5000, "not a FITS file"),
        ("fits", b"", "object is empty"),
        ("fits.bz2", b"plain text, not bzip2" * 100, "not bzip2 data"),
        ("fits.bz2", bz2.compress(b"hello world " * 1000), "not a FITS file inside the .bz2"),
        ("fits.fz", b"SIMPLE  =                    T".ljust(80) + b"NAXIS   =                    0".ljust(80)
         + b"END".ljust(80) + b" " * (2880 - 240), "file ends before the compressed image extension"),
    ],
    ids=["jpeg-named-fits", "empty", "not-bz2", "bz2-of-text", "fz-without-extension"],
)
def test_data_that_is_not_fits_is_a_header_error(s3, bucket, ext: str, body: bytes, reason: str) -> None:
    key = put(s3, bucket, KEY.format(red="01", ext=ext), body)
    with pytest.raises(HeaderError) as caught:
        read_fits_header(bucket, key)
    assert caught.value.reason.startswith(reason)


def test_truncated_plain_fits_is_a_header_error(s3, bucket) -> None:
    raw = fits_bytes(fits.PrimaryHDU(np.zeros((10, 10), np.int16), header=science_header(200)))
    key = put(s3, bucket, KEY.format(red="01", ext="fits"), raw[:5000])
    with pytest.raises(HeaderError, match="truncated"):
        read_fits_header(bucket, key)


def test_header_without_end_within_the_limit_is_a_header_error(s3, bucket, settings_env) -> None:
    raw = fits_bytes(fits.PrimaryHDU(np.zeros((10, 10), np.int16), header=science_header(200)))  # 4 blocks
    key = put(s3, bucket, KEY.format(red="01", ext="fits"), raw)
    settings_env(FITS_HEADER_MAX_BYTES=str(2880 * 2))
    with pytest.raises(HeaderError, match="no END card in the first 5760 bytes"):
        read_fits_header(bucket, key)


def test_deleted_object_is_reported_as_missing(s3, bucket) -> None:
    key = put(s3, bucket, KEY.format(red="01", ext="fits"), fits_bytes(fits.PrimaryHDU()))
    s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ObjectMissing) as caught:
        read_fits_header(bucket, key)
    assert caught.value.reason.startswith("object no longer exists")
    assert not caught.value.retry  # a permanent failure for the caller


def test_throttling_propagates_unchanged_for_the_caller_to_retry(s3, bucket) -> None:
    key = put(s3, bucket, KEY.format(red="01", ext="fits.fz"), fits_bytes(fits.PrimaryHDU()))

    def slow_down(**kwargs) -> tuple[AWSResponse, dict]:  # noqa: ANN003 - S3 answering 503 SlowDown
        error = {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                 "ResponseMetadata": {"HTTPStatusCode": 503}}
        return AWSResponse("https://s3.amazonaws.com", 503, {}, None), error

    s3.meta.events.register("before-call.s3.GetObject", slow_down)
    try:
        with pytest.raises(ClientError) as caught:
            read_fits_header(bucket, key)
    finally:
        s3.meta.events.unregister("before-call.s3.GetObject", slow_down)
    assert not isinstance(caught.value, HeaderError)
    assert aws.is_throttling(caught.value)

"""Hostile renders: nothing a source file or a request holds may take the image API past its memory or
its time, or to a 500 (issue 18, items 1-9).

Every render runs in a child process (one for the module, fed the cases one by one) against moto's S3
server on loopback, through the image API's Lambda handler, as a warm function would: the child renders
a normal exposure first, then for each case measures its resident size before the call (idle), resets
the peak (`/proc/self/clear_refs`), renders, and reports the answer, the peak (VmHWM) and the GETs it
sent to S3. Every case must answer what it is expected to, grow the process by at most 300 MiB whatever
the source's declared or real size, and leave no thread running behind its answer.

The files are made here: small real sizes declaring huge ones (a few bytes of bzip2 standing for 800 MB
of zeros, a 5 kB .fz declaring 10^9 pixels), and one real 300 MB `.fits.fz`.
"""

from __future__ import annotations

import bz2
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
from astropy.io import fits
from moto.server import ThreadedMotoServer

from archive.local import api as local_api
from archive.local import viewer
from archive.local.api import LocalApi, Route, dispatch, json_response
from archive.settings import get_settings
from handlers import render
from tests.apigw import apigw_event
from tests.hostile import card, declaring, fz_file, header_block, jpeg, with_metadata

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "hostile-renders"
MIB = 2**20
MEMORY_BOUND_MIB = 300
ROUTE = "GET /thumbnails/{base_filename}"

CHILD = r'''
import gc, json, os, sys, threading, time
from archive import aws, lazy
from archive.settings import get_settings
from handlers import render
from tests.apigw import apigw_event

for module in ("np", "fits", "fits_tiles", "fits_quantization", "Image", "ImageDraw"):
    getattr(lazy, module)  # imported, as in a warm function


def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])


sent = []


def record(params, **kwargs):
    sent.append(params.get("Range", "whole"))


def call(case):
    os.environ.update(case["env"])
    get_settings.cache_clear()
    aws.clear_clients()
    aws.client("s3").meta.events.register("before-parameter-build.s3.GetObject", record)
    sent.clear()
    gc.collect()
    idle = status_kib("VmRSS")
    threads = threading.active_count()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # the peak (VmHWM) starts again from the present size
    started = time.monotonic()
    event = apigw_event("GET /thumbnails/{base_filename}", "/thumbnails/" + case["target"], case["query"],
                        {"base_filename": case["target"]})
    response = render.handler(event, None)
    seconds = time.monotonic() - started
    peak = status_kib("VmHWM")
    for name in case["env"]:
        del os.environ[name]
    body = json.loads(response["body"]) if response.get("body") else {}
    return {"name": case["name"], "status": response["statusCode"], "body": body, "seconds": round(seconds, 2),
            "idle_mib": round(idle / 1024, 1), "peak_mib": round(peak / 1024, 1),
            "grew_mib": round((peak - idle) / 1024, 1), "threads_left": threading.active_count() - threads,
            "gets": list(sent)}


for line in sys.stdin:
    print(json.dumps(call(json.loads(line))), flush=True)
'''


def name(counter: int) -> str:
    return f"tst-kb001ms-20260101-{counter:08d}"


def fits_head(width: int, height: int, bitpix: int, *extra: bytes) -> bytes:
    return header_block([card("SIMPLE", "T"), card("BITPIX", str(bitpix)), card("NAXIS", "2"),
                         card("NAXIS1", str(width)), card("NAXIS2", str(height)), *extra])


def zeros_bz2(head: bytes, data_bytes: int) -> bytes:
    """A .fits.bz2 of `head` and `data_bytes` of zeros, in a few bytes: one stream per 8 MiB of zeros,
    each ~50 bytes, concatenated (bzip2 decoders read concatenated streams as one)."""
    chunk = 8 * MIB
    whole, rest = divmod(data_bytes, chunk)
    return bz2.compress(head) + bz2.compress(bytes(chunk)) * whole + (bz2.compress(bytes(rest)) if rest else b"")


def fz_object(width: int, height: int, zbitpix: int, tile: tuple[int, int], tiles: list[bytes] | None = None,
              *, heap: bytes | None = None, descriptors: np.ndarray | None = None, rows: int | None = None,
              algorithm: str = "NOCOMPRESS") -> bytes:
    """A .fits.fz written by hand: an empty primary, a compressed-image table of `tiles` (or of the
    given `heap` and `descriptors`), whatever its header declares."""
    if heap is None:
        tiles = tiles or []
        offsets = np.cumsum([0, *(len(t) for t in tiles)])[:-1]
        descriptors = np.array([(len(t), o) for t, o in zip(tiles, offsets, strict=True)], dtype=">i4").reshape(-1, 2)
        heap = b"".join(tiles)
    assert descriptors is not None
    table = descriptors.astype(">i4").tobytes()
    cards = [card("XTENSION", "'BINTABLE'"), card("BITPIX", "8"), card("NAXIS", "2"), card("NAXIS1", "8"),
             card("NAXIS2", str(len(descriptors) if rows is None else rows)), card("PCOUNT", str(len(heap))),
             card("GCOUNT", "1"), card("TFIELDS", "1"), card("TTYPE1", "'COMPRESSED_DATA'"),
             card("TFORM1", "'1PB(1)'"), card("ZIMAGE", "T"), card("ZBITPIX", str(zbitpix)), card("ZNAXIS", "2"),
             card("ZNAXIS1", str(width)), card("ZNAXIS2", str(height)), card("ZTILE1", str(tile[0])),
             card("ZTILE2", str(tile[1])), card("ZCMPTYPE", f"'{algorithm}'")]
    data = table + heap
    primary = header_block([card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0"), card("EXTEND", "T")])
    return primary + header_block(cards) + data + b"\0" * (-len(data) % 2880)


def astropy_fz(data: np.ndarray, **options: object) -> bytes:
    out = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, **options)]).writeto(out)
    return out.getvalue()


def fits_bytes(data: np.ndarray, **cards: object) -> bytes:
    out = io.BytesIO()
    hdu = fits.PrimaryHDU(data)
    for key, value in cards.items():
        hdu.header[key] = value
    hdu.writeto(out)
    return out.getvalue()


def corrupt_heap(body: bytes, seed: int) -> bytes:
    """`body` with random bytes over the last quarter of its data (the compressed tiles)."""
    rng = np.random.default_rng(seed)
    start = len(body) - len(body) // 4
    return body[:start] + rng.integers(0, 256, len(body) - start, dtype=np.uint8).tobytes()


def noise(shape: tuple[int, int], dtype: type = np.float32, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).normal(1000, 30, shape)).astype(dtype)


# (case name, file name to upload -> maker, target, query, env, expected status, text the message holds)
CASES: list[tuple[str, dict, str, dict, dict, int | tuple[int, ...], str]] = []
_counter = iter(range(1, 10_000))


def case(label: str, ext: str | None, make, *, query: dict | None = None, env: dict | None = None,
         status: int | tuple[int, ...], says: str = "", target: str | None = None) -> None:
    base = name(next(_counter))
    files = {} if ext is None else {f"{base}-{ext}": make}
    pinned = f"{base}-{ext}" if ext else base
    chosen = base if target == "base" else target or pinned
    CASES.append((label, files, chosen, query or {}, env or {}, status, says))


STRIP_HEAD = fits_head(1, 10**8, -64)
# 1. Extreme aspect: refused by the side budget, and with it raised, reduced along the long side.
case("1 strip 1x1e8 float64 bz2", "EX10.fits.bz2", lambda: zeros_bz2(STRIP_HEAD, 8 * 10**8),
     status=413, says="RENDER_MAX_AXIS")
case("1 strip 1e8x1 float64 bz2", "EX10.fits.bz2", lambda: zeros_bz2(fits_head(10**8, 1, -64), 8 * 10**8),
     status=413, says="RENDER_MAX_AXIS")
case("1 strip 1x1e8 side budget raised: deadline", "EX10.fits.bz2", lambda: zeros_bz2(STRIP_HEAD, 8 * 10**8),
     env={"RENDER_MAX_AXIS": str(10**9), "RENDER_DEADLINE_SECONDS": "2"}, status=504, says="RENDER_DEADLINE_SECONDS")
case("1 strip 1x100000 float64 renders", "EX10.fits.bz2", lambda: zeros_bz2(fits_head(1, 100_000, -64), 800_000),
     status=200)
case("1 strip 100000x100 float32 renders", "EX10.fits.bz2",
     lambda: zeros_bz2(fits_head(100_000, 100, -32), 40_000_000), status=200)
# 2. One huge tile: refused from the table header; one big tile within the budget renders.
case("2 one 10000x10000 float64 tile", "EX10.fits.fz",
     lambda: fz_object(10_000, 10_000, -64, (10_000, 10_000), [b"\0" * 64]), status=413, says="RENDER_MAX_TILE_BYTES")
case("2 one 2048x2048 float32 tile renders", "EX10.fits.fz",
     lambda: astropy_fz(noise((2048, 2048)), compression_type="RICE_1", tile_shape=(2048, 2048)), status=200)
# 3. Headers declaring more than the file holds: refused at once, nothing skipped or allocated.
case("3 fz primary NAXIS1 1e9", "EX10.fits.fz",
     lambda: fz_file([card("BITPIX", "8"), card("NAXIS", "1"), card("NAXIS1", str(10**9))]),
     status=422, says="only")
case("3 fits declaring 10000x10000 in 5 kB", "EX10.fits", lambda: fits_head(10_000, 10_000, -32) + bytes(2880),
     status=422, says="only")
case("3 fz tile outside its heap", "EX10.fits.fz",
     lambda: fz_object(64, 2, -32, (64, 1), heap=bytes(512), descriptors=np.array([[256, 0], [256, 400]])),
     status=422, says="outside the heap")
case("3 fz table rows do not match its tiles", "EX10.fits.fz",
     lambda: fz_object(64, 4, -32, (64, 1), [bytes(256)] * 4, rows=10**9), status=422)
# 4. Corrupt tiles: the file's fault, 422 naming it (or garbage pixels), never a 500.
for index, (compression, dtype) in enumerate([("RICE_1", np.int16), ("GZIP_1", np.float32), ("GZIP_2", np.int32),
                                               ("HCOMPRESS_1", np.int16), ("PLIO_1", np.int16)]):
    def corrupted(compression: str = compression, dtype: type = dtype, seed: int = index) -> bytes:
        data = noise((256, 256), dtype, seed)
        if compression == "PLIO_1":
            data = np.abs(data) % 4000
        return corrupt_heap(astropy_fz(data.astype(dtype), compression_type=compression, tile_shape=(32, 256)), seed)
    # PLIO decodes any bytes to some pixels: garbage shown is an answer too, a 500 never is.
    case(f"4 corrupt {compression} tiles", "EX10.fits.fz", corrupted,
         status=(200, 422) if "PLIO" in compression else 422)
case("4 fz cut inside its heap", "EX10.fits.fz",
     lambda: astropy_fz(noise((256, 256)), compression_type="RICE_1")[:-3000], status=422)
# 5. Real size: a 300 MB .fz is streamed; a JPG too large is refused without being read whole.
BIG = 8704


def big_fz() -> bytes:
    row = BIG * 4
    return fz_object(BIG, BIG, -32, (BIG, 1), heap=bytes(row * BIG),
                     descriptors=np.array([(row, i * row) for i in range(BIG)]))


case("5 a 300 MB .fz streamed", "EX10.fits.fz", big_fz, status=200)
case("5 a 300 MB .fz past a 0.2 s deadline", None, None, target=CASES[-1][2], env={"RENDER_DEADLINE_SECONDS": "0.2"},
     query={"quality": "79"}, status=504, says="RENDER_DEADLINE_SECONDS")  # another picture: not a cache hit
BIG_JPG = 70 * MIB
case("5 a 70 MB JPG named is refused unread", "EX10.jpg", lambda: with_metadata(jpeg("L", (64, 64)), BIG_JPG),
     status=413)
case("5 a 70 MB JPG by source=auto is only read in ranges", "EX10.jpg",
     lambda: with_metadata(jpeg("L", (64, 64)), BIG_JPG), status=413, target="base")
# 6. Bad integers: 400 naming the parameter.
for param in ("width", "height", "quality"):
    for bad in ("+-5", "--5", "-+5", "++5", "9" * 4301, "²", "1_0"):
        case(f"6 {param}={bad[:8]}", None, None, query={param: bad}, status=400, says=param)
case("6 percentile=1_0", None, None, query={"percentile": "99_5"}, status=400, says="percentile")
# 9. Budgets are 413s; huge finite values are pixels.
case("9 progressive JPG over the decode memory", "EX10.jpg",
     lambda: declaring(jpeg("L", progressive=True), 10000, 10000), status=413, says="MiB")
case("9 float64 beyond float32's range", "EX10.fits",
     lambda: fits_bytes(noise((64, 96), np.float64) * 1e300), status=200)
case("9 BSCALE taking int16 beyond float32's range", "EX10.fits",
     lambda: fits_bytes(noise((64, 96), np.int16), BSCALE=1e300), status=200)


@pytest.fixture(scope="module")
def s3_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=f"data/{name(0)}-EX10.fits", Body=fits_bytes(noise((100, 150))))
    for label, files, *_ in CASES:
        for filename, make in files.items():
            if label.startswith("5 a 70 MB JPG by source=auto"):
                filename = filename.replace("EX10", "EX13")  # the exposure's only file: auto must size it
            s3.put_object(Bucket=BUCKET, Key=f"data/{filename}", Body=make())
    yield url
    server.stop()


@pytest.fixture(scope="module")
def answers(s3_url) -> dict[str, dict]:
    """Every case rendered in one child process, in order; its answers by case name."""
    lines = [{"name": "warm-up", "target": name(0), "query": {}, "env": {}}]
    lines += [{"name": label, "target": target, "query": query, "env": env}
              for label, _, target, query, env, _, _ in CASES]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_ENDPOINT_URL": s3_url, "BUCKET_NAME": BUCKET,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "LOG_LEVEL": "ERROR"}
    env.pop("DATABASE_URL", None)
    completed = subprocess.run([sys.executable, "-c", CHILD], input="\n".join(json.dumps(x) for x in lines),
                               capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = (json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{"))
    results = [line for line in lines if "_aws" not in line]  # the handler's metrics (EMF) share stdout
    assert results[0]["status"] == 200, results[0]
    return {result["name"]: result for result in results[1:]}


@pytest.mark.parametrize(("label", "status", "says"), [(c[0], c[5], c[6]) for c in CASES], ids=[c[0] for c in CASES])
def test_every_hostile_render_answers_within_its_memory_and_leaves_nothing_running(answers, label, status, says):
    got = answers[label]
    print(json.dumps({k: got[k] for k in ("name", "status", "seconds", "idle_mib", "peak_mib", "grew_mib")}))
    message = got["body"].get("message", "")
    assert got["status"] in (status if isinstance(status, tuple) else (status,)), got
    assert says in message, got
    assert got["grew_mib"] <= MEMORY_BOUND_MIB, got
    assert got["threads_left"] == 0, got
    if got["status"] in (413, 422) and not label.startswith("5 a 70 MB JPG"):
        assert got["body"].get("filename") or got["body"].get("param"), got


def test_a_render_past_its_deadline_answers_504_naming_the_source_in_time(answers):
    for label in ("1 strip 1x1e8 side budget raised: deadline", "5 a 300 MB .fz past a 0.2 s deadline"):
        got = answers[label]
        assert got["status"] == 504 and got["body"]["filename"].startswith("tst-kb001ms-"), got
        assert got["body"]["filename"] in got["body"]["message"]


def test_a_source_declaring_more_than_it_holds_is_refused_at_once(answers):
    for label in ("3 fz primary NAXIS1 1e9", "3 fits declaring 10000x10000 in 5 kB", "1 strip 1x1e8 float64 bz2"):
        assert answers[label]["grew_mib"] < 50, answers[label]


def test_a_jpg_over_the_byte_budget_is_never_read_whole(answers):
    named = answers["5 a 70 MB JPG named is refused unread"]
    assert named["gets"] == [], "refused from its listing"
    auto = answers["5 a 70 MB JPG by source=auto is only read in ranges"]
    assert auto["gets"] and "whole" not in auto["gets"] and len(auto["gets"]) <= 5, auto


def test_extreme_strips_are_reduced_along_their_long_side(answers, s3_url):
    for label, size in (("1 strip 1x100000 float64 renders", (1, 200)),
                        ("1 strip 100000x100 float32 renders", (200, 1))):
        got = answers[label]
        assert (got["body"]["width"], got["body"]["height"]) == size, got


# --------------------------------------------------------------------------------------------------
# Items 6-8 outside the image API: the viewer's parameters and outage, the local front, readiness.


@pytest.mark.parametrize("path", ["/viewer/api/sites/tst/exposures", "/viewer/api/sites/tst/uploads"])
@pytest.mark.parametrize("limit", ["²", "¹⁰", "9" * 5000, "%2B5", "-5", "5+5", "0x10"])
def test_the_viewer_refuses_a_limit_that_is_not_plain_digits_with_a_400(path, limit):
    response = dispatch(viewer.routes(), "GET", f"{path}?limit={limit}")
    body = json.loads(response["body"])
    assert response["statusCode"] == 400 and body["param"] == "limit" and len(body["message"]) < 200


def test_the_viewer_answers_503_database_unavailable_while_the_database_is_down(settings_env):
    settings_env(DATABASE_URL="postgresql+psycopg2://nobody@127.0.0.1:1/none")
    response = dispatch(viewer.routes(), "GET", "/viewer/api/sites/tst/exposures")
    assert response["statusCode"] == 503
    assert json.loads(response["body"]) == {"message": "database unavailable"}


def test_readiness_names_the_failing_database_without_its_host_port_or_user(settings_env, s3_url):
    settings_env(DATABASE_URL="postgresql+psycopg2://nobody@127.0.0.1:1/none", AWS_ENDPOINT_URL=s3_url,
                 BUCKET_NAME=BUCKET)
    response = render.handler(apigw_event("GET /health/ready", "/health/ready"), None)
    body = json.loads(response["body"])
    assert response["statusCode"] == 503 and "database" in body["failing"]
    assert body["checks"]["database"]["detail"] == "database unavailable (OperationalError)"
    text = response["body"]
    for secret in ("127.0.0.1", "nobody", "port", s3_url):
        assert secret not in text


@pytest.fixture
def front():
    route = Route("POST", r"/echo", lambda event: json_response(200, {"length": len(event.get("body") or "")}))
    with LocalApi([route]) as api:
        yield api


def raw_request(url: str, head: bytes, wait: float = 5.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(head)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            if b"\r\n\r\n" in received and b"}" in received:
                break
        return received


@pytest.mark.parametrize("length", ["-1", "abc", "+5", "1e3", "9" * 30])
def test_the_local_front_refuses_a_malformed_content_length_with_a_400(front, length):
    answer = raw_request(front.url, f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"malformed Content-Length" in answer


def test_the_local_front_drops_a_client_that_stops_sending(monkeypatch, front):
    monkeypatch.setattr(local_api._RequestHandler, "timeout", 0.5)
    host, port = front.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:  # recv raises if never closed
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part of it")
        assert sock.recv(65536) == b"", "the server closed the connection"


def test_settings_name_every_budget():
    settings = get_settings()
    assert settings.render_deadline_seconds < 28, "under the function's timeout (serverless.yml)"
    assert settings.render_max_tile_bytes <= 64 * MIB

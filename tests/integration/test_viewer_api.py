"""The viewer's JSON endpoints, request to answer: routed by the stack's front (archive.local.api) as
API Gateway 2.0 events, reading an archive filled by the real ingest handler (moto, real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest

import db
from archive import aws
from archive.database import get_engine
from archive.formats.filenames import UNKNOWN_SITE
from archive.ingest.expirations import cancel_expiry
from archive.local import viewer, viewer_data
from archive.local.api import dispatch
from archive.settings import get_settings
from handlers.ingest import handler as ingest
from tests import samples

SITE = "vwr"
NIGHT = "20260301"


def get(path: str) -> tuple[int, dict]:
    response = dispatch(viewer.routes(), "GET", path)
    assert response["headers"]["cache-control"] in ("no-store", "no-cache")
    body = response["body"]
    return response["statusCode"], (json.loads(body) if body and body.lstrip().startswith("{") else {"raw": body})


def signed(query: str) -> bool:
    """A presigned link's query (SigV2 or SigV4, whichever the client signs with)."""
    params = parse_qs(query)
    return bool(params.get("Signature") or params.get("X-Amz-Signature"))


_clock = iter(range(10_000))


def deliver(*files: tuple[str, bytes]) -> None:
    """Put each object and hand the ingest handler its S3 notification, one second apart in event time."""
    s3, bucket = aws.client("s3"), get_settings().bucket
    bodies = []
    for key, body in files:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        when = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 3600 + next(_clock)))
        bodies.append({"Records": [samples.s3_record(bucket, key, len(body), event_time=when)]})
    response = ingest(samples.sqs_event(*bodies), None)
    assert response["batchItemFailures"] == []


def base(counter: int, site: str = SITE) -> str:
    return f"{site}-kb001ms-{NIGHT}-{counter:08d}"


def exposure(counter: int, minute: int, *, letters: str = "hjt", data_type: str = "EX", directory: str = "data",
             **header: object) -> str:
    name = base(counter)
    cards = {"DATE-OBS": f"2026-03-01T03:{minute:02d}:00.000", "SMARTSTK": "no", "SSTKNUM": "no", **header}
    files = {
        "h": (f"{name}-{data_type}00.txt", samples.header_text(samples.make_header(**cards))),
        "j": (f"{name}-{data_type}10.jpg", samples.jpeg_bytes((192, 128))),
        "t": (f"{name}-{data_type}11.jpg", samples.jpeg_bytes((96, 64))),
        "f": (f"{name}-{data_type}10.fits", samples.fits_bytes(samples.make_header(**cards))),
    }
    deliver(*((f"{directory}/{key}", body) for key, body in (files[letter] for letter in letters)))
    return name


@pytest.fixture
def archive(database, aws_stack):
    viewer_data.forget_bucket_sites()  # each test has a bucket of its own
    return aws_stack


def test_an_empty_archive_answers_empty_lists_not_errors(archive):
    assert get("/viewer/api/sites") == (200, {"sites": []})
    status, body = get(f"/viewer/api/sites/{SITE}/exposures")
    assert status == 200 and body["exposures"] == [] and body["collapsed"] == 0
    status, body = get(f"/viewer/api/sites/{SITE}/channels")
    assert status == 200 and [c["empty"] for c in body["channels"]] == [True, True, True]
    assert get(f"/viewer/api/sites/{SITE}/uploads")[1]["uploads"] == []
    assert get(f"/viewer/api/sites/{SITE}/expiries")[1]["expiries"] == []
    status, body = get(f"/viewer/api/sites/{SITE}/activity")
    assert status == 200 and body["latest_upload_id"] is None and body["uploading"] is False
    status, body = get("/viewer/api/queues")
    assert status == 200 and [q["waiting"] for q in body["queues"]] == [0, 0, 0]
    assert [q["queue"] for q in body["queues"]][:2] == [get_settings().ingest_queue_name,
                                                        f"{get_settings().ingest_queue_name}-dlq"]


BAD_SITES = ["ab", "toolong7", "t-st", "t%20s", "%2E%2E", "%C3%A9t%C3%A9"]


def test_a_bad_site_name_is_a_400_naming_the_parameter(archive):
    for what in ("exposures", "channels", "uploads", "expiries", "activity"):
        for site in BAD_SITES:
            status, body = get(f"/viewer/api/sites/{site}/{what}")
            assert (status, body["param"]) == (400, "site"), (what, site)
            assert "site" in body["message"]
    # The upload log files unparseable names under `unknown_site`: readable there, not elsewhere.
    assert get(f"/viewer/api/sites/{UNKNOWN_SITE}/uploads")[0] == 200
    assert get(f"/viewer/api/sites/{UNKNOWN_SITE}/exposures")[0] == 400


def test_the_upload_log_of_unparseable_names_is_readable_under_unknown_site(archive):
    deliver(("data/not-an-archive-name.txt", b"x"))
    status, body = get(f"/viewer/api/sites/{UNKNOWN_SITE}/uploads")
    assert status == 200
    [item] = body["uploads"]
    assert item["filename"] == "data/not-an-archive-name.txt" and item["status"] == "rejected" and item["failure"]


@pytest.mark.parametrize(
    "path,param",
    [
        (f"/viewer/api/sites/{SITE}/exposures?limit=0", "limit"),
        (f"/viewer/api/sites/{SITE}/exposures?limit=ten", "limit"),
        (f"/viewer/api/sites/{SITE}/exposures?limit=%C2%B2", "limit"),  # ²: a digit to str.isdigit, not to int
        (f"/viewer/api/sites/{SITE}/exposures?limit=%C2%B9%E2%81%B0", "limit"),  # ¹⁰
        (f"/viewer/api/sites/{SITE}/exposures?limit={'9' * 5000}", "limit"),
        (f"/viewer/api/sites/{SITE}/exposures?before=yesterday", "before"),
        (f"/viewer/api/sites/{SITE}/exposures?night=2026-13-01", "night"),
        (f"/viewer/api/sites/{SITE}/exposures?exptime_min=-1", "exptime_min"),
        (f"/viewer/api/sites/{SITE}/exposures?q={'x' * 101}", "q"),
        (f"/viewer/api/sites/{SITE}/uploads?before=%27%3B--", "before"),
        (f"/viewer/api/sites/{SITE}/uploads?limit=501", "limit"),
        (f"/viewer/api/sites/{SITE}/exposures?all=maybe", "all"),
        ("/viewer/api/exposures/not-a-base", "base_filename"),
        (f"/viewer/api/exposures/{base(1)}?dir=thumbnails", "dir"),
    ],
)
def test_bad_parameters_are_400s_naming_the_parameter(archive, path, param):
    status, body = get(path)
    assert status == 400 and body["param"] == param and body["message"]


def test_an_exposure_the_archive_does_not_have_is_a_404(archive):
    status, body = get(f"/viewer/api/exposures/{base(404)}")
    assert status == 404 and base(404) in body["message"]


def test_latest_exposures_are_newest_first_with_stacks_folded_to_their_last_frame(archive):
    single = exposure(1, 0, FILTER="V", RA="05:35:17.3", DEC="-05:23:28")
    stack = [exposure(2 + i, 10 + i, SMARTSTK="20260301031000", SSTKNUM=str(i + 1), SSTKLEN="3") for i in range(3)]
    newest = exposure(5, 30)
    fits_only = exposure(6, 40, letters="hf")  # no medium JPG: photonranch-api does not list it

    status, body = get(f"/viewer/api/sites/{SITE}/exposures")
    assert status == 200
    assert [e["base_filename"] for e in body["exposures"]] == [newest, stack[2], single]
    assert (body["rows_read"], body["collapsed"]) == (5, 2)
    first = body["exposures"][2]
    assert (first["filter_used"], first["ra_display"], first["dec_display"]) == ("V", "05:35:17.30", "-05:23:28.0")
    assert first["exposure_time"] == 30.0 and first["data_type"] == "EX" and first["object"] == "M 42"
    assert body["exposures"][1]["SSTKNUM"] == "3" and body["exposures"][1]["SSTKLEN"] == "3"

    everything = get(f"/viewer/api/sites/{SITE}/exposures?all=true")[1]["exposures"]
    assert everything[0]["base_filename"] == fits_only and everything[0]["jpg_url"] == ""
    assert get(f"/viewer/api/sites/{SITE}/exposures?limit=1")[1]["exposures"][0]["base_filename"] == newest


def test_thumbnails_are_the_11_jpg_else_the_image_service(archive):
    with_small = exposure(1, 0)
    without_small = exposure(2, 1, letters="h")
    deliver((f"data/{without_small}-EX10.fits", samples.fits_bytes()))
    # A medium JPG always gets an 11.jpg from the archive, so the fallback shows on a row whose small
    # JPG is not there (yet): a row with the medium flag but not the small one.
    with get_engine().begin() as conn:
        conn.execute(db.images.update().where(db.images.c.base_filename == without_small).values(
            jpg_medium_exists=True))

    exposures = {e["base_filename"]: e for e in get(f"/viewer/api/sites/{SITE}/exposures")[1]["exposures"]}
    small = urlsplit(exposures[with_small]["thumbnail_url"])
    assert small.path.endswith(f"/data/{with_small}-EX11.jpg") and signed(small.query)
    fallback = exposures[without_small]
    assert fallback["thumbnail_source"] == "service"
    assert fallback["thumbnail_url"] == f"/thumbnails/{without_small}?height=128&image=true"


def test_an_exposure_shows_its_whole_header_its_files_and_where_to_render_it(archive):
    name = exposure(7, 5, letters="hjtf", FILTER="rp")

    status, body = get(f"/viewer/api/exposures/{name}")
    assert status == 200
    assert body["header"]["FILTER"] == "rp" and body["header"]["DATE-OBS"] == "2026-03-01T03:05:00.000"
    assert body["exposure"]["base_filename"] == name and body["exposure"]["s3_directory"] == "data"
    assert {f["name"]: f["kind"] for f in body["files"]} == {
        f"{name}-EX00.txt": "header text",
        f"{name}-EX10.fits": "small FITS",
        f"{name}-EX10.jpg": "medium JPG",
        f"{name}-EX11.jpg": "thumbnail JPG",
    }
    assert all(f["size_bytes"] > 0 and signed(urlsplit(f["url"]).query) for f in body["files"])
    # Downloads save under the file's own name, even from the bucket's origin.
    fits = next(f for f in body["files"] if f["name"].endswith(".fits"))
    assert parse_qs(urlsplit(fits["url"]).query)["response-content-disposition"] == [
        f'attachment; filename="{name}-EX10.fits"']
    render = body["render"]
    assert (render["service"], render["from_fits"], render["has_jpg"]) == (f"/thumbnails/{name}", True, True)
    assert f"/data/{name}-EX10.jpg" in render["jpg_url"]
    assert render["color"] is False  # one filter, no set: the page does not ask for a composite


def put_channel_metadata(channel: int, name: str) -> None:
    aws.client("dynamodb").put_item(
        TableName=get_settings().info_images_table,
        Item={"pk": {"S": f"{SITE}#metadata"}, f"channel{channel}": {"S": name}},
    )


def test_channels_show_each_info_image_and_what_a_channel_waits_for(archive):
    name = base(20)
    put_channel_metadata(1, name)
    exposure(20, 0, letters="hjt", directory="info-images", OBJECT="Jupiter")

    status, body = get(f"/viewer/api/sites/{SITE}/channels")
    assert status == 200
    one, two, three = body["channels"]
    assert one["base_filename"] == name and one["object"] == "Jupiter" and one["assigned"] == name
    assert f"/info-images/{name}-EX11.jpg" in one["thumbnail_url"]
    assert two == {"channel": 2, "empty": True, "assigned": None} and three["empty"]

    detail = get(f"/viewer/api/exposures/{name}?dir=info-images")[1]
    assert detail["header"]["OBJECT"] == "Jupiter" and len(detail["files"]) == 3


def test_the_page_is_told_how_long_the_upload_log_keeps_items(archive, settings_env):
    assert get(f"/viewer/api/sites/{SITE}/uploads")[1]["kept_hours"] == 48
    settings_env(UPLOADS_LOG_TTL_HOURS="6")
    assert get(f"/viewer/api/sites/{SITE}/uploads")[1]["kept_hours"] == 6


def test_the_upload_log_is_newest_first_with_failures_and_their_reasons(archive):
    name = exposure(30, 0, letters="h")
    deliver((f"data/{name}-EX10.jpg", b"this is not a JPEG"))

    status, body = get(f"/viewer/api/sites/{SITE}/uploads")
    assert status == 200
    assert [u["filename"] for u in body["uploads"]] == [f"data/{name}-EX10.jpg", f"data/{name}-EX00.txt"]
    bad, good = body["uploads"]
    assert bad["failure"] and bad["status"] in ("rejected", "failed") and bad["reason"]
    assert good["status"] == "ingested" and not good["failure"] and good["size_bytes"] > 0
    assert body["failures"] == 1
    activity = get(f"/viewer/api/sites/{SITE}/activity")[1]
    assert activity["latest_upload_id"] == bad["upload_id"]


def test_the_expiry_schedule_lists_the_sites_expiring_exposures_soonest_first(archive, settings_env):
    settings_env(SITE_EXPIRY_SECONDS=f"{SITE}=7200,oth=7200")
    first = exposure(40, 0, letters="h", data_type="EP")
    kept = exposure(41, 1, letters="h", data_type="EF")
    second = exposure(42, 2, letters="h", data_type="EP")  # its upload comes later, so does its expiry
    deliver((f"data/oth-kb001ms-{NIGHT}-00000001-EP00.txt", samples.header_text()))  # another site's
    cancel_expiry(kept, now=dt.datetime(2026, 3, 1))

    status, body = get(f"/viewer/api/sites/{SITE}/expiries")
    assert status == 200
    assert [x["base_filename"] for x in body["expiries"]] == [first, second, kept]
    assert 0 < body["expiries"][0]["seconds_left"] < body["expiries"][1]["seconds_left"] <= 7200
    assert body["expiries"][0]["s3_directory"] == "data" and not body["expiries"][0]["cancelled"]
    assert body["expiries"][2]["cancelled"] and body["expiries"][2]["seconds_left"] is None


def test_sites_come_from_the_table_and_the_upload_log(archive):
    exposure(1, 0)
    deliver((f"data/{base(2, site='lgo')}-EX10.jpg", b"broken"))  # only a failed upload at lgo

    status, body = get("/viewer/api/sites")
    assert status == 200
    assert body["sites"][0]["site"] == "lgo" and body["sites"][0]["exposures"] in (0, 1)
    assert body["sites"][1] == {"site": SITE, "exposures": 1, "latest": "2026-03-01T03:00:00Z", "log_only": False}


def test_the_page_and_its_two_assets_are_served_and_nothing_else_from_disk(archive):
    page = dispatch(viewer.routes(), "GET", "/viewer/")
    assert page["statusCode"] == 200 and page["headers"]["content-type"].startswith("text/html")
    assert '<script src="app.js">' in page["body"] and "http" not in page["body"].split("<body>")[1]
    for asset, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        answer = dispatch(viewer.routes(), "GET", f"/viewer/{asset}")
        assert answer["statusCode"] == 200 and answer["headers"]["content-type"].startswith(kind)
    assert dispatch(viewer.routes(), "GET", "/viewer/viewer.py")["statusCode"] == 404
    assert dispatch(viewer.routes(), "GET", "/viewer/..%2Fviewer.py")["statusCode"] == 404
    assert dispatch(viewer.routes(), "GET", "/viewer")["headers"]["location"] == "/viewer/"


def test_every_exposure_of_a_site_is_reached_a_page_at_a_time_with_the_true_total(archive):
    names = [exposure(100 + i, i % 60, letters="hj") for i in range(7)]
    # Two rows at the same moment: the cursor's image_id keeps both, in order, across the page boundary.
    names.append(exposure(120, 6, letters="hj"))

    seen, cursor, totals = [], None, []
    while True:
        page = get(f"/viewer/api/sites/{SITE}/exposures?limit=3" + (f"&before={cursor}" if cursor else ""))[1]
        seen += [e["base_filename"] for e in page["exposures"]]
        totals.append(page["total"])
        cursor = page["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(names) and len(seen) == len(set(seen))
    assert seen[-1] == names[0]  # the oldest exposure is on the last page
    assert totals[0] == len(names) and set(totals[1:]) == {None}  # counted once, on the first page


def test_the_filters_are_photonranch_apis_search_kept_to_one_site(archive):
    mine = exposure(1, 0, FILTER="rp", EXPTIME="30", USERID="google-oauth2|1", USERNAME="Ann", OBJECT="M 42")
    theirs = exposure(2, 1, FILTER="V", EXPTIME="120", USERID="google-oauth2|2", USERNAME="Bob", OBJECT="NGC 7000")
    flat = exposure(3, 2, data_type="EF", FILTER="rp", EXPTIME="5", USERID="google-oauth2|1", OBJECT="flat")

    def listed(query: str) -> list[str]:
        status, body = get(f"/viewer/api/sites/{SITE}/exposures?{query}")
        assert status == 200, body
        return [e["base_filename"] for e in body["exposures"]]

    assert listed("user=google-oauth2%7C1") == [flat, mine]
    assert listed("filter=V") == [theirs]
    assert listed("exptime_min=10&exptime_max=60") == [mine]
    assert listed("type=EF") == [flat]
    assert listed("q=ngc") == [theirs]  # OBJECT, any case
    assert listed("q=00000001") == [mine]  # the base filename
    assert listed("from=2026-03-01&to=2026-03-01") == [flat, theirs, mine]
    assert listed("from=2026-03-02") == []
    assert listed("night=2026-02-28") == [flat, theirs, mine]  # 03:00 UTC on the 1st ends the night of the 28th
    assert listed("night=2026-02-27") == []
    facets = get(f"/viewer/api/sites/{SITE}/facets")[1]
    assert facets["filters"] == ["V", "rp"] and facets["data_types"] == ["EF", "EX"]
    assert sorted(u["user_id"] for u in facets["users"]) == ["google-oauth2|1", "google-oauth2|2"]


def test_the_upload_log_pages_by_its_key_with_failures_only_and_search(archive):
    names = [exposure(200 + i, i, letters="h") for i in range(5)]
    deliver((f"data/{names[1]}-EX10.jpg", b"not a JPEG"), (f"data/{names[3]}-EX10.jpg", b"nor this"))

    first = get(f"/viewer/api/sites/{SITE}/uploads?limit=4")[1]
    assert first["total"] == 7 and len(first["uploads"]) == 4 and first["next"]
    rest = get(f"/viewer/api/sites/{SITE}/uploads?limit=4&before={first['next'].replace('#', '%23')}")[1]
    assert rest["next"] is None and rest["total"] is None
    everything = [u["upload_id"] for u in first["uploads"] + rest["uploads"]]
    assert everything == sorted(everything, reverse=True) and len(set(everything)) == 7

    failures = get(f"/viewer/api/sites/{SITE}/uploads?failures=true")[1]
    assert [u["filename"] for u in failures["uploads"]] == [f"data/{names[3]}-EX10.jpg", f"data/{names[1]}-EX10.jpg"]
    assert failures["total"] == 2
    found = get(f"/viewer/api/sites/{SITE}/uploads?q={names[2][-8:]}")[1]
    assert [u["filename"] for u in found["uploads"]] == [f"data/{names[2]}-EX00.txt"]


def test_sites_are_found_without_scanning_the_upload_log(archive, monkeypatch):
    exposure(1, 0)
    deliver((f"data/{base(2, site='lgo')}-EX10.jpg", b"broken"), ("data/junk.txt", b"x"))

    def no_scan(*args, **kwargs):
        raise AssertionError("the upload log was scanned")

    monkeypatch.setattr("archive.ingest.uploads_log.logged_sites", no_scan)
    real_client = aws.client

    def client(name: str, *args, **kwargs):
        made = real_client(name, *args, **kwargs)
        if name == "dynamodb":
            made.meta.events.register("before-call.dynamodb.Scan", no_scan)
        return made

    monkeypatch.setattr("archive.ingest.uploads_log.client", client)
    status, body = get("/viewer/api/sites")
    assert status == 200
    assert [s["site"] for s in body["sites"]] == ["lgo", UNKNOWN_SITE, SITE]
    assert body["sites"][0]["log_only"] and not body["sites"][2]["log_only"]


def test_all_sky_images_are_listed_newest_first(archive):
    s3, bucket = aws.client("s3"), get_settings().bucket
    for counter in (1, 2):
        name = f"{SITE}-as001-{NIGHT}-{counter:08d}"
        deliver((f"allsky/{name}-EX10.jpg", samples.jpeg_bytes((192, 128))))
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"allsky/{SITE}-as001-{NIGHT}-00000002-EX11.jpg")["KeyCount"]
    status, body = get(f"/viewer/api/sites/{SITE}/allsky")
    assert status == 200
    assert [i["base_filename"] for i in body["images"]] == [f"{SITE}-as001-{NIGHT}-00000002",
                                                           f"{SITE}-as001-{NIGHT}-00000001"]
    assert "-EX11.jpg" in body["images"][0]["thumbnail_url"] and "-EX10.jpg" in body["images"][0]["jpg_url"]


def test_the_favicon_is_served(archive):
    for path in ("/viewer/favicon.svg", "/favicon.ico"):
        answer = dispatch(viewer.routes(), "GET", path)
        assert answer["statusCode"] == 200 and answer["headers"]["content-type"] == "image/svg+xml"

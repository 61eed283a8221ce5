"""Least privilege, proven by running the code: every AWS call each function makes is authorized against
that function's own role from serverless.yml, and every grant of the roles is needed by some call.

One run, shared by the tests below, drives the real handlers against moto and a real PostgreSQL with the
deployed environment (the template's names, the database URL read from its SSM SecureString):
- ingest: every file role of an exposure (header text, raw .bz2 and reduced FITS, medium and small JPG),
  an expiring exposure, an ignored file, a rejected name, a deleted upload (404), info images of a
  channel and all-sky images (thumbnails in all three prefixes), datastream messages;
- expire: TTL removals of a data/, an info-images/ and an allsky/ exposure;
- render: every source (auto, jpg, small, large .bz2 and .fz, a pinned file), a cache hit, a redirect to
  the presigned picture, colour by smart stack and by named frames, a 404, a HEAD, /favicon.ico,
  /robots.txt, and /health, /health/ready.
The calls are recorded and evaluated as tests/iam.py describes.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from moto import mock_aws
from sqlalchemy import text

import db
from archive import aws, database
from archive.local import template
from archive.local.provision import provision_all
from archive.settings import get_settings
from handlers import expire, ingest, render
from tests import samples
from tests.apigw import apigw_event
from tests.iam import Grant, Recorder, Request, evaluate, grants_of

FUNCTIONS = ("ingest", "expire", "render")
REGION = "us-east-1"
BASE = samples.base_for(101)
EXPIRING = samples.base_for(102)
INFO = samples.base_for(103)
ALLSKY = samples.base_for(104)
COMPRESSED = samples.base_for(105)
STACK = "sro00000777"
COLOURS = {"rp": samples.base_for(111), "gp": samples.base_for(112), "B": samples.base_for(113)}

# Grants no code of ours calls because AWS itself uses the function's role for them.
USED_BY_LAMBDA = {
    "expire": {Grant("ReportFailedBatches", "sqs:SendMessage",
                     f"arn:aws:sqs:{REGION}:{template.MOTO_ACCOUNT}:photonranch-archive-expire-failures-dev")},
}
# Grants nothing needs. Keep it empty: a grant that appears here is a permission to remove.
KNOWN_UNUSED: dict[str, set[Grant]] = {name: set() for name in FUNCTIONS}
# What each function must have been seen asking for, so a scenario that silently shrinks fails.
EXPECTED_ACTIONS = {
    "ingest": {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "dynamodb:PutItem", "dynamodb:GetItem",
               "sqs:SendMessage", "ssm:GetParameter", "kms:Decrypt"},
    "expire": {"s3:ListBucket", "s3:DeleteObject", "ssm:GetParameter", "kms:Decrypt"},
    "render": {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "sqs:GetQueueUrl", "sqs:GetQueueAttributes",
               "ssm:GetParameter", "kms:Decrypt"},
}


def fits_fz_bytes() -> bytes:
    frame = np.random.default_rng(5).normal(1000, 20, (64, 96)).astype(np.float32)
    out = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(frame, compression_type="RICE_1")]).writeto(out)
    return out.getvalue()


def put(key: str, body: bytes) -> tuple[str, int]:
    aws.client("s3").put_object(Bucket=get_settings().bucket, Key=key, Body=body)
    return key, len(body)


def deliver(keys: list[tuple[str, int]]) -> None:
    for start in range(0, len(keys), 10):  # the event source's batch size
        answer = ingest.handler(samples.sqs_event_for(get_settings().bucket, keys[start:start + 10]), None)
        assert answer == {"batchItemFailures": []}


def run_ingest() -> None:
    files = [put(f"data/{name}", body) for name, body in samples.exposure_files(BASE).items()]
    files += [put(f"data/{name}", body) for name, body in samples.exposure_files(EXPIRING, "EP").items()]
    files += [put(f"data/{BASE}-EX12.jpg", b"ignored"), put("data/not-a-valid-name.jpg", b"rejected"),
              (f"data/{samples.base_for(106)}-EX10.jpg", 1234)]  # deleted before it was ingested: a 404
    aws.client("dynamodb").put_item(TableName=get_settings().info_images_table,
                                    Item={"pk": {"S": "sro#metadata"}, "channel2": {"S": INFO}})
    files += [put(f"info-images/{INFO}-EX10.jpg", samples.jpeg_bytes()),
              put(f"info-images/{INFO}-EX00.txt", samples.header_text())]
    files += [put(f"allsky/{ALLSKY}-EX10.jpg", samples.jpeg_bytes((512, 512))),
              put(f"allsky/{ALLSKY}-EX00.txt", samples.header_text())]
    deliver(files)


def ttl_removal(base: str, directory: str) -> dict:
    image = {"pk": {"S": base}, "s3_directory": {"S": directory}, "expiration_timestamp_s": {"N": "1656472665"}}
    return {"eventID": f"id-{base}", "eventName": "REMOVE", "eventSource": "aws:dynamodb", "awsRegion": REGION,
            "dynamodb": {"Keys": {"pk": image["pk"]}, "OldImage": image, "SequenceNumber": "1",
                         "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
            "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{template.MOTO_ACCOUNT}:table/t/stream/label"}


def run_expire() -> None:
    records = [ttl_removal(EXPIRING, "data"), ttl_removal(INFO, "info-images"), ttl_removal(ALLSKY, "allsky")]
    assert expire.handler({"Records": records}, None) == {"batchItemFailures": []}


def get(route: str, path: str, query: dict[str, str] | None = None, target: str | None = None) -> dict:
    event = apigw_event(route, path, query, {"base_filename": target} if target else None)
    return render.handler(event, None)


def thumbnail(target: str, **query: str) -> int:
    return int(get("GET /thumbnails/{base_filename}", f"/thumbnails/{target}", query, target)["statusCode"])


def colour_frames(engine) -> None:  # noqa: ANN001 - a SQLAlchemy engine
    for counter, (filter_name, base) in enumerate(COLOURS.items()):
        put(f"data/{base}-EX10.fits", samples.fits_bytes(samples.make_header(FILTER=filter_name)))
        with engine.begin() as conn:
            db.upsert_header(conn, base_filename=base, site="sro", data_type="EX",
                             header={"FILTER": filter_name, "SMARTSTK": STACK, "SSTKNUM": "1"},
                             columns={"filter_used": filter_name}, capture_date=dt.datetime(2022, 6, 29, 3, counter),
                             upload_time=dt.datetime(2022, 6, 29, 4))


def run_render() -> None:
    assert int(get("GET /health", "/health")["statusCode"]) == 200
    assert int(get("GET /health/ready", "/health/ready")["statusCode"]) == 200
    for query in ({}, {"source": "jpg"}, {"source": "small"}, {"source": "large"}, {"source": "small"}):
        assert thumbnail(BASE, width="200", height="200", **query) == 200, query  # the last one a cache hit
    assert thumbnail(f"{BASE}-EX10.fits", width="100") == 200
    assert thumbnail(COMPRESSED, source="large", width="64") == 200
    assert int(get("GET /thumbnails/{base_filename}", f"/thumbnails/{BASE}", {"image": "true"}, BASE)[
        "statusCode"]) == 302
    assert thumbnail(COLOURS["rp"], color="true", width="50") == 200
    assert thumbnail(COLOURS["gp"], color="true", r=COLOURS["rp"], g=COLOURS["gp"], b=COLOURS["B"]) == 200
    assert thumbnail(samples.base_for(199)) == 404
    head = apigw_event("HEAD /thumbnails/{base_filename}", f"/thumbnails/{BASE}", {"width": "90"},
                       {"base_filename": BASE})
    assert int(render.handler(head, None)["statusCode"]) == 200
    for path in ("/favicon.ico", "/robots.txt"):
        assert int(get(f"GET {path}", path)["statusCode"]) < 300


@pytest.fixture(scope="module")
def service() -> template.Service:
    return template.load("dev", REGION)


@pytest.fixture(scope="module")
def recorded(database_url: str, service: template.Service) -> Iterator[Recorder]:
    """The whole run, with the deployed environment; the calls each function made."""
    environment = service.environment()
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name, value in environment.items():
            patch.setenv(name, value)
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.delenv("DATABASE_URL", raising=False)  # read from SSM, as deployed
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        get_settings.cache_clear()
        aws.clear_clients()
        provision_all()
        aws.client("ssm").put_parameter(Name=environment["DATABASE_URL_SSM_PARAM"], Value=database_url,
                                        Type="SecureString")
        engine = db.engine_for(database_url)
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE images RESTART IDENTITY"))
        put(f"data/{COMPRESSED}-EX01.fits.fz", fits_fz_bytes())
        colour_frames(engine)
        recorder = Recorder(REGION, template.MOTO_ACCOUNT)
        try:
            with recorder.installed():
                for function, run in (("ingest", run_ingest), ("expire", run_expire), ("render", run_render)):
                    database._ssm_database_url.cache_clear()  # each function's first invocation reads it
                    with recorder.running(function):
                        run()
            yield recorder
        finally:
            database._ssm_database_url.cache_clear()
            get_settings.cache_clear()
            aws.clear_clients()


def denied_lines(statements: list[dict], requests: set[Request]) -> list[str]:
    return [str(r) for r in evaluate(statements, sorted(requests)).denied]


def test_every_call_is_one_the_translation_knows(recorded):
    assert recorded.unknown == []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_run_made_the_calls_it_is_meant_to_cover(recorded, function):
    assert {r.action for r in recorded.requests[function]} >= EXPECTED_ACTIONS[function]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_call_is_allowed_by_the_functions_own_role(recorded, service, function):
    assert denied_lines(service.role_statements(function), recorded.requests[function]) == [], (
        f"{function}'s role (serverless.yml) does not allow these calls")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_grant_of_the_role_is_needed(recorded, service, function):
    statements = service.role_statements(function)
    used = evaluate(statements, sorted(recorded.requests[function])).used | USED_BY_LAMBDA.get(function, set())
    unused = set(grants_of(statements)) - used
    for grant in sorted(unused, key=str):
        print(f"unused by {function}: {grant}")
    assert unused == KNOWN_UNUSED[function]
    for function_name, grants in USED_BY_LAMBDA.items():  # the exemptions name real grants
        assert grants <= set(grants_of(service.role_statements(function_name)))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_removing_any_statement_denies_a_call(recorded, service, function):
    statements = service.role_statements(function)
    exempt = {g.sid for g in USED_BY_LAMBDA.get(function, set())}
    for i, statement in enumerate(statements):
        if statement.get("Sid") in exempt:
            continue
        remaining = statements[:i] + statements[i + 1:]
        assert denied_lines(remaining, recorded.requests[function]), f"{function} never needs {statement['Sid']}"


def test_a_missing_permission_is_named_with_its_action_and_resource(recorded, service):
    statements = [s for s in service.role_statements("ingest") if s["Sid"] != "ReadUploads"]
    denied = denied_lines(statements, recorded.requests["ingest"])
    bucket = service.params["bucketName"]
    assert f"s3:GetObject on arn:aws:s3:::{bucket}/data/{BASE}-EX00.txt (for s3.GetObject)" in denied
    assert any(line.startswith(f"s3:GetObject on arn:aws:s3:::{bucket}/allsky/") for line in denied)


PACKAGED = Path(__file__).resolve().parents[2] / ".serverless" / "cloudformation-template-update-stack.json"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_packaged_role_allows_every_call_too(recorded, function):
    """The role CloudFormation creates (serverless-iam-roles-per-function's, in `make package`'s template)
    allows the same calls: the plugin adds the log and event-source statements, and must lose none."""
    if not PACKAGED.exists():
        if os.environ.get("ARCHIVE_REQUIRE_PACKAGE"):  # make deploy-check: the package must be there
            pytest.fail(f"{PACKAGED} is missing: run `make package` first")
        pytest.skip("no packaged template (make package, then make deploy-check)")
    cfn = json.loads(PACKAGED.read_text())
    packaged = template.Service("dev", REGION, template.MOTO_ACCOUNT,
                                {"service": "photonranch-archive", "resources": {"Resources": cfn["Resources"]}})
    (function_id,) = [name for name, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Function"
                      and r["Properties"]["Handler"] == f"handlers/{function}.handler"]
    role_id = cfn["Resources"][function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [statement for policy in cfn["Resources"][role_id]["Properties"]["Policies"]
                  for statement in packaged.intrinsics(policy["PolicyDocument"]["Statement"])]
    assert denied_lines(statements, recorded.requests[function]) == []

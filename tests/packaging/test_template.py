"""The generated CloudFormation template and function zips, checked offline (issue 6).

`make package` writes `.serverless/`; these tests read it. Inside `make test` nothing may be packaged
yet, so the checks of the real template skip; `make deploy-check` (CI, after `make package`) sets
ARCHIVE_REQUIRE_PACKAGE=1 and then a missing package is a failure. The checkers themselves are tested
on small hand-made templates first, so a checker that cannot fail is caught in every run.

What is enforced, and why:
- no Allow statement grants a write/delete action on `*` (least privilege; the issue's rule), and S3
  deletes only reach the three upload prefixes;
- every function has a dead-letter path: an SQS source whose queue redrives to a dead-letter queue, a
  stream source with an on-failure destination and bounded retries, or an async failure destination;
- every setting archive/settings.py reads is set in each function's environment (every function loads
  the whole Settings), DATABASE_URL and AWS_ENDPOINT_URL are not, and the SSM parameter that replaces
  DATABASE_URL is readable by the function's role;
- each zip holds its handler with Python 3.12 bytecode, no boto3/botocore, no tests, and fits Lambda;
- the dashboard and the alarms read the metrics the code emits (archive/metrics.py: names, dimension
  sets, namespace, service and stage as the functions' environment sets them), and every alarm notifies
  `alarmActions`; the AWS metrics they read name this stack's functions and queues.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from archive import metrics
from archive.render import cors
from archive.settings import ENVIRONMENT, load_settings
from handlers.render import ROUTES as RENDER_ROUTES
from tests.dashboard import alarm_refs, dashboard_refs

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / ".serverless"
TEMPLATE = PACKAGE_DIR / "cloudformation-template-update-stack.json"
BUCKET_PREFIXES = ("data/", "info-images/", "allsky/")
LAMBDA_UNZIPPED_LIMIT = 250 * 2**20
INGEST_BUDGET = 120 * 2**20
RENDER_BUDGET = 140 * 2**20  # and so under the 150 MB (decimal) for the image API
HTTP_API_TIMEOUT_MS = 30_000

# Provided by the Lambda runtime, or never to be set there (ARCHIVE_METRICS_LOG: the local stack's file).
RUNTIME_PROVIDED = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"}
FORBIDDEN_IN_LAMBDA = {"DATABASE_URL", "AWS_ENDPOINT_URL", "ARCHIVE_METRICS_LOG"}

READ_VERBS = ("Get", "List", "Describe", "Head", "Query", "Scan", "BatchGet", "Receive", "Select", "Decrypt")


# --- checkers ---------------------------------------------------------------------------------------


def render(value: Any) -> str:
    """A readable string for an ARN that may be built with intrinsics (pseudo parameters kept by name)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            return re.sub(r"\$\{AWS::Partition\}", "aws", text)
        if fn == "Fn::Join":
            return arg[0].join(render(part) for part in arg[1])
        if fn == "Fn::GetAtt":
            target = arg if isinstance(arg, list) else arg.split(".", 1)
            return f"GetAtt:{target[0]}.{target[1]}"
        if fn == "Ref":
            return f"Ref:{arg}"
    return json.dumps(value, sort_keys=True)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def is_write(action: str) -> bool:
    """Anything that is not plainly a read (wildcards count as writes)."""
    verb = action.split(":", 1)[-1]
    return "*" in verb or not verb.startswith(READ_VERBS)


def is_everything(resource: str) -> bool:
    """`*`, or an ARN whose resource part is only `*` (every resource of a service in an account)."""
    return resource == "*" or re.fullmatch(r"arn:[^:]*:[^:]*:[^:]*:[^:]*:\*", resource) is not None


def star_write_violations(statements: list[dict]) -> list[str]:
    problems = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        writes = [a for a in as_list(statement.get("Action", [])) if is_write(a)]
        broad = [r for r in map(render, as_list(statement.get("Resource", []))) if is_everything(r)]
        if writes and broad:
            problems.append(f"{writes} on {broad}")
    return problems


def s3_delete_violations(statements: list[dict], bucket: str) -> list[str]:
    allowed = tuple(f"arn:aws:s3:::{bucket}/{prefix}" for prefix in BUCKET_PREFIXES)
    problems = []
    for statement in statements:
        actions = as_list(statement.get("Action", []))
        if statement.get("Effect") != "Allow" or not any(
            a == "*" or (a.startswith("s3:") and ("Delete" in a or "*" in a)) for a in actions
        ):
            continue
        problems += [r for r in map(render, as_list(statement.get("Resource", []))) if not r.startswith(allowed)]
    return problems


def resources_of(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def refers_to(value: Any, logical_id: str, template: dict | None = None) -> bool:
    """`value` names the resource (Ref or GetAtt); with the template, an alias or a version of the
    function counts as the function (SnapStart's event sources invoke the alias)."""
    text = render(value)
    if text in (f"Ref:{logical_id}",) or text.startswith(f"GetAtt:{logical_id}."):
        return True
    target = template["Resources"].get(text.split(":", 1)[-1].split(".")[0]) if template else None
    if target and target["Type"] in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
        return refers_to(target["Properties"]["FunctionName"], logical_id, template)
    return False


def function_of(template: dict, value: Any) -> str:
    """The function logical id a FunctionName/IntegrationUri names, through an alias or a version."""
    found = [name for name in resources_of(template, "AWS::Lambda::Function") if refers_to(value, name, template)]
    assert len(found) == 1, (value, found)
    return found[0]


def invoked_only_by_api_gateway(template: dict, function_id: str) -> bool:
    permissions = [p["Properties"] for p in resources_of(template, "AWS::Lambda::Permission").values()
                   if refers_to(p["Properties"].get("FunctionName"), function_id, template)]
    return bool(permissions) and all(p.get("Principal") == "apigateway.amazonaws.com" for p in permissions)


def dead_letter_problems(template: dict, function_id: str) -> list[str]:
    """Why a function has no dead-letter path (empty when it has one)."""
    function = template["Resources"][function_id]["Properties"]
    mappings = [
        m["Properties"] for m in resources_of(template, "AWS::Lambda::EventSourceMapping").values()
        if refers_to(m["Properties"].get("FunctionName"), function_id, template)
    ]
    if not mappings and invoked_only_by_api_gateway(template, function_id):
        return []  # synchronous: the caller receives the error, nothing is left to retry
    if not mappings:
        invoke_configs = [
            c["Properties"] for c in resources_of(template, "AWS::Lambda::EventInvokeConfig").values()
            if refers_to(c["Properties"].get("FunctionName"), function_id, template)
        ]
        if function.get("DeadLetterConfig") or any(
            (c.get("DestinationConfig") or {}).get("OnFailure") for c in invoke_configs
        ):
            return []
        return ["no event source and no DeadLetterConfig or async on-failure destination"]
    problems = []
    for mapping in mappings:
        source = render(mapping.get("EventSourceArn"))
        queue_id = source.removeprefix("GetAtt:").split(".")[0]
        queue = template["Resources"].get(queue_id, {})
        if queue.get("Type") == "AWS::SQS::Queue" and source.endswith(".Arn"):
            redrive = queue["Properties"].get("RedrivePolicy") or {}
            dlq = render(redrive.get("deadLetterTargetArn", ""))
            dlq_id = dlq.removeprefix("GetAtt:").split(".")[0]
            if template["Resources"].get(dlq_id, {}).get("Type") != "AWS::SQS::Queue":
                problems.append(f"queue {queue_id} has no dead-letter queue in this template")
            if not redrive.get("maxReceiveCount"):
                problems.append(f"queue {queue_id} redrive has no maxReceiveCount")
        elif source.endswith(".StreamArn"):
            on_failure = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            if not on_failure:
                problems.append(f"stream source {source} has no on-failure destination")
            retries = mapping.get("MaximumRetryAttempts")
            if retries is None or int(retries) < 0:
                problems.append(f"stream source {source} retries forever (MaximumRetryAttempts unset)")
            if not mapping.get("BisectBatchOnFunctionError"):
                problems.append(f"stream source {source} does not bisect failing batches")
        else:
            problems.append(f"event source {source}: unknown kind, cannot tell its dead-letter path")
    return problems


def role_statements(template: dict, function_id: str) -> list[dict]:
    role_id = render(template["Resources"][function_id]["Properties"]["Role"]).removeprefix("GetAtt:").split(".")[0]
    role = template["Resources"][role_id]["Properties"]
    return [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


# --- the checkers on hand-made templates (always run) ------------------------------------------------


def test_a_write_action_on_every_resource_is_flagged():
    statements = [
        {"Effect": "Allow", "Action": ["dynamodb:PutItem"], "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:*", "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::*"}},
        {"Effect": "Allow", "Action": ["logs:DescribeLogGroups"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "arn:aws:sqs:us-east-1:1:q"},
    ]
    assert star_write_violations(statements) == [
        "['dynamodb:PutItem'] on ['*']",
        "['s3:*'] on ['arn:aws:s3:::*']",
    ]


def test_s3_deletes_outside_the_upload_prefixes_are_flagged():
    statements = [
        {"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": ["arn:aws:s3:::b/data/*", "arn:aws:s3:::b/*"]},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
    ]
    assert s3_delete_violations(statements, "b") == ["arn:aws:s3:::b/*"]


def _mini_template(mapping: dict | None, queue_props: dict | None = None) -> dict:
    resources: dict[str, Any] = {
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {}},
        "Q": {"Type": "AWS::SQS::Queue", "Properties": queue_props or {}},
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {}},
    }
    if mapping is not None:
        resources["Map"] = {"Type": "AWS::Lambda::EventSourceMapping",
                            "Properties": {"FunctionName": {"Fn::GetAtt": ["Fn", "Arn"]}, **mapping}}
    return {"Resources": resources}


def test_a_function_without_a_dead_letter_path_is_flagged():
    sqs = {"EventSourceArn": {"Fn::GetAtt": ["Q", "Arn"]}}
    redrive = {"RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}, "maxReceiveCount": 5}}
    assert dead_letter_problems(_mini_template(sqs), "Fn") == [
        "queue Q has no dead-letter queue in this template", "queue Q redrive has no maxReceiveCount"]
    assert dead_letter_problems(_mini_template(sqs, redrive), "Fn") == []
    stream = {"EventSourceArn": {"Fn::GetAtt": ["T", "StreamArn"]}}
    assert len(dead_letter_problems(_mini_template(stream), "Fn")) == 3
    stream |= {"MaximumRetryAttempts": 3, "BisectBatchOnFunctionError": True,
               "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Dlq", "Arn"]}}}}
    assert dead_letter_problems(_mini_template(stream), "Fn") == []
    assert dead_letter_problems(_mini_template(None), "Fn") == [
        "no event source and no DeadLetterConfig or async on-failure destination"]
    behind_api = _mini_template(None)
    behind_api["Resources"]["Allow"] = {"Type": "AWS::Lambda::Permission", "Properties": {
        "FunctionName": {"Fn::GetAtt": ["Fn", "Arn"]}, "Principal": "apigateway.amazonaws.com"}}
    assert dead_letter_problems(behind_api, "Fn") == [], "a synchronous API function answers its errors"
    behind_api["Resources"]["AlsoS3"] = {"Type": "AWS::Lambda::Permission", "Properties": {
        "FunctionName": {"Fn::GetAtt": ["Fn", "Arn"]}, "Principal": "s3.amazonaws.com"}}
    assert dead_letter_problems(behind_api, "Fn") != [], "an asynchronous trigger needs a dead-letter path"


def test_an_alias_or_a_version_counts_as_its_function():
    template = _mini_template(None)
    template["Resources"]["Version"] = {"Type": "AWS::Lambda::Version",
                                        "Properties": {"FunctionName": {"Ref": "Fn"}}}
    template["Resources"]["Alias"] = {"Type": "AWS::Lambda::Alias", "Properties": {
        "FunctionName": {"Ref": "Fn"}, "FunctionVersion": {"Fn::GetAtt": ["Version", "Version"]}}}
    assert refers_to({"Ref": "Alias"}, "Fn", template) and refers_to({"Ref": "Version"}, "Fn", template)
    assert not refers_to({"Ref": "Alias"}, "Fn"), "without the template only the function itself counts"
    assert not refers_to({"Ref": "Q"}, "Fn", template)
    assert function_of(template, {"Ref": "Alias"}) == "Fn"


def test_every_listed_environment_variable_changes_the_settings():
    """ENVIRONMENT is what the template must set: each name in it is really read by load_settings."""
    samples = {"EXPIRING_DATA_TYPES": "XX=1", "SITE_EXPIRY_SECONDS": "abc=2", "CORS_ORIGINS": "https://a.example"}
    for name in ENVIRONMENT:
        value = samples.get(name, "7")
        assert load_settings({name: value}) != load_settings({}), name
    assert {"STAGE", "BUCKET_NAME", "DATABASE_URL_SSM_PARAM", "EXPIRATION_TABLE", "LOG_LEVEL"} <= set(ENVIRONMENT)


# --- the generated template and zips -----------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict:
    if not TEMPLATE.exists():
        if os.environ.get("ARCHIVE_REQUIRE_PACKAGE"):
            pytest.fail(f"{TEMPLATE.relative_to(ROOT)} is missing: run `make package` first")
        pytest.skip("no packaged service (run `make package`, then `make deploy-check`)")
    return json.loads(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def functions(template: dict) -> dict[str, dict]:
    found = resources_of(template, "AWS::Lambda::Function")
    assert {f["Properties"]["Handler"] for f in found.values()} == {"handlers/ingest.handler",
                                                                    "handlers/expire.handler",
                                                                    "handlers/render.handler"}
    return found


def test_no_role_allows_a_write_or_delete_on_every_resource(template, functions):
    roles = resources_of(template, "AWS::IAM::Role")
    assert roles, "no IAM roles in the template"
    in_vpc = {render(f["Properties"]["Role"]).removeprefix("GetAtt:").split(".")[0]
              for f in functions.values() if f["Properties"].get("VpcConfig")}
    for name, role in roles.items():
        statements = [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        assert star_write_violations(statements) == [], name
        # Managed policies cannot be read here; the only one allowed is the network-interface policy
        # Lambda needs inside a VPC.
        managed = [render(arn) for arn in role["Properties"].get("ManagedPolicyArns", [])]
        allowed = ["arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"] if name in in_vpc else []
        assert [m.replace("Ref:AWS::Partition", "aws") for m in managed] == allowed, name


def test_s3_deletes_stay_under_the_upload_prefixes(template, functions):
    bucket = next(iter(functions.values()))["Properties"]["Environment"]["Variables"]["BUCKET_NAME"]
    for function_id in functions:
        assert s3_delete_violations(role_statements(template, function_id), bucket) == [], function_id


def test_every_role_is_used_by_a_function(template, functions):
    used = {render(f["Properties"]["Role"]).removeprefix("GetAtt:").split(".")[0] for f in functions.values()}
    assert set(resources_of(template, "AWS::IAM::Role")) == used


def test_every_function_has_a_dead_letter_path(template, functions):
    for function_id in functions:
        assert dead_letter_problems(template, function_id) == [], function_id


def test_batch_sources_report_partial_failures(template, functions):
    for mapping in resources_of(template, "AWS::Lambda::EventSourceMapping").values():
        assert mapping["Properties"].get("FunctionResponseTypes") == ["ReportBatchItemFailures"]


def test_sqs_visibility_timeout_outlasts_the_function(template, functions):
    for mapping in resources_of(template, "AWS::Lambda::EventSourceMapping").values():
        source = render(mapping["Properties"]["EventSourceArn"])
        if source.endswith(".Arn"):
            queue = template["Resources"][source.removeprefix("GetAtt:").split(".")[0]]["Properties"]
            function_id = function_of(template, mapping["Properties"]["FunctionName"])
            assert int(queue["VisibilityTimeout"]) >= 6 * int(functions[function_id]["Properties"]["Timeout"])


def test_expire_sees_only_ttl_removals(template, functions):
    expire_id = next(k for k, f in functions.items() if f["Properties"]["Handler"] == "handlers/expire.handler")
    mapping = next(m["Properties"] for m in resources_of(template, "AWS::Lambda::EventSourceMapping").values()
                   if refers_to(m["Properties"]["FunctionName"], expire_id, template))
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == [{"eventName": ["REMOVE"],
                         "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}}]


def test_every_setting_the_code_reads_is_set_for_every_function(functions):
    wanted = set(ENVIRONMENT) - RUNTIME_PROVIDED - FORBIDDEN_IN_LAMBDA
    for function_id, function in functions.items():
        env = function["Properties"]["Environment"]["Variables"]
        assert sorted(wanted - set(env)) == [], f"{function_id} does not set these settings"
        assert sorted(FORBIDDEN_IN_LAMBDA & set(env)) == [], f"{function_id} must not set these"


def test_the_database_url_comes_from_a_readable_ssm_parameter(template, functions):
    for function_id, function in functions.items():
        parameter = function["Properties"]["Environment"]["Variables"]["DATABASE_URL_SSM_PARAM"]
        assert parameter.startswith("/")
        granted = [render(r) for s in role_statements(template, function_id)
                   if "ssm:GetParameter" in as_list(s["Action"]) for r in as_list(s["Resource"])]
        assert any(g.endswith(f":parameter{parameter}") for g in granted), function_id
    assert "postgresql://" not in TEMPLATE.read_text()


def test_tables_match_the_local_key_schemas(template, functions):
    tables = {t["Properties"]["TimeToLiveSpecification"]["AttributeName"]: t["Properties"]
              for t in resources_of(template, "AWS::DynamoDB::Table").values()}
    assert set(tables) == {"expire_timestamp_s", "expiration_timestamp", "expiration_timestamp_s"}
    keys = {ttl: [(k["AttributeName"], k["KeyType"]) for k in t["KeySchema"]] for ttl, t in tables.items()}
    assert keys == {"expire_timestamp_s": [("site", "HASH"), ("upload_id", "RANGE")],
                    "expiration_timestamp": [("pk", "HASH")], "expiration_timestamp_s": [("pk", "HASH")]}
    assert tables["expiration_timestamp_s"]["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    for table in tables.values():
        assert table["BillingMode"] == "PAY_PER_REQUEST"
    for ttl in ("expiration_timestamp", "expiration_timestamp_s"):
        assert tables[ttl]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_only_the_bucket_may_send_to_the_ingest_queue(template, functions):
    (policy,) = resources_of(template, "AWS::SQS::QueuePolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    bucket = next(iter(functions.values()))["Properties"]["Environment"]["Variables"]["BUCKET_NAME"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == f"arn:aws:s3:::{bucket}"


def _zip_of(function: dict) -> Path:
    return PACKAGE_DIR / Path(function["Properties"]["Code"]["S3Key"]).name


def test_each_zip_holds_its_handler_compiled_for_the_runtime(functions):
    for function_id, function in functions.items():
        props = function["Properties"]
        assert props["Runtime"] == "python3.12"
        module = props["Handler"].rsplit(".", 1)[0]
        with zipfile.ZipFile(_zip_of(function)) as archive:
            names = set(archive.namelist())
            size = sum(info.file_size for info in archive.infolist())
        package, _, stem = module.rpartition("/")
        assert f"{module}.py" in names, function_id
        assert f"{package}/__pycache__/{stem}.cpython-312.pyc" in names, function_id
        assert not any(n.startswith(("boto3/", "botocore/")) for n in names), function_id
        # astropy/tests is astropy's test runner, which `import astropy` needs; its own tests/ are slimmed.
        tests = [n for n in names if ("/tests/" in n or n.startswith("tests/"))
                 and not (n.startswith("astropy/tests/") and not n.startswith("astropy/tests/tests/"))]
        assert tests == [], function_id
        # Operator commands and the local stack are never shipped (they need numpy, astropy, moto).
        tooling = [n for n in names if n.startswith(("archive/cli/", "archive/local/"))]
        assert tooling == [], (function_id, tooling[:5])
        assert "archive/ingest/pipeline.py" in names and "db.py" in names, function_id
        budget = {"handlers/ingest": INGEST_BUDGET, "handlers/render": RENDER_BUDGET}.get(module, LAMBDA_UNZIPPED_LIMIT)
        assert size <= budget, (function_id, size)
        fits_reader = [n for n in names if n.startswith(("astropy/", "numpy/"))]
        fonts = {"archive/render/fonts/DejaVuSans.ttf", "archive/render/fonts/LICENSE.txt"}
        assert (fonts <= names) == (module == "handlers/render"), (function_id, "the label font: render's alone")
        if module == "handlers/render":
            assert "astropy/io/fits/__init__.py" in names and "numpy/__init__.py" in names, function_id
            assert not any(n.startswith("astropy/coordinates/") for n in names), "pruned: never imported"
        else:
            assert fits_reader == [], (function_id, "astropy and numpy are the image API's alone")


def test_functions_that_read_objects_may_list_the_bucket_so_a_missing_key_is_a_404(template, functions):
    """Without an unconditioned s3:ListBucket, S3 answers a GET of a deleted key with 403, which the
    ingest code cannot tell from a real permission problem: the upload would be retried, not logged."""
    for function_id in functions:
        statements = role_statements(template, function_id)

        def grants(action: str, stmts: list[dict] = statements) -> list[dict]:
            out = []
            for s in stmts:
                acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
                if s.get("Effect") == "Allow" and action in acts:
                    out.append(s)
            return out

        if not grants("s3:GetObject"):
            continue
        listing = [s for s in grants("s3:ListBucket") if "Condition" not in s]
        assert listing, function_id
        resources = [render(r) for s in listing for r in (s["Resource"] if isinstance(s["Resource"], list)
                                                          else [s["Resource"]])]
        assert any(r.startswith("arn:aws:s3:::") and "/" not in r for r in resources), (function_id, resources)


def _render_function(functions: dict) -> tuple[str, dict]:
    return next((k, f["Properties"]) for k, f in functions.items()
                if f["Properties"]["Handler"] == "handlers/render.handler")


def test_the_http_api_routes_what_the_render_handler_dispatches(template, functions):
    function_id, _ = _render_function(functions)
    routes = {r["Properties"]["RouteKey"] for r in resources_of(template, "AWS::ApiGatewayV2::Route").values()}
    assert routes == set(RENDER_ROUTES)
    integrations = resources_of(template, "AWS::ApiGatewayV2::Integration")
    for integration in integrations.values():
        props = integration["Properties"]
        assert refers_to(props["IntegrationUri"], function_id, template) and props["PayloadFormatVersion"] == "2.0"


def test_the_http_api_answers_cors_as_the_handler_does_for_the_functions_origins(template, functions):
    """API Gateway answers preflights and sets the CORS headers deployed; the handler and the local front
    do it from archive/render/cors.py and CORS_ORIGINS. Both must say the same."""
    _, render_fn = _render_function(functions)
    (api,) = resources_of(template, "AWS::ApiGatewayV2::Api").values()
    config = api["Properties"]["CorsConfiguration"]
    assert sorted(config["AllowMethods"]) == sorted(cors.ALLOWED_METHODS)
    assert sorted(h.lower() for h in config["AllowHeaders"]) == sorted(cors.ALLOWED_HEADERS)
    assert int(config["MaxAge"]) == cors.MAX_AGE_SECONDS
    joined = render_fn["Environment"]["Variables"]["CORS_ORIGINS"]
    origins = joined["Fn::Join"][1] if isinstance(joined, dict) else joined.split(",")
    assert sorted(config["AllowOrigins"]) == sorted(origins) and "https://www.photonranch.org" in origins
    assert load_settings({"CORS_ORIGINS": ",".join(origins)}).cors_origins == tuple(origins)


def test_the_render_function_answers_before_the_gateway_gives_up_and_is_capped(template, functions):
    _, render_fn = _render_function(functions)
    (integration,) = resources_of(template, "AWS::ApiGatewayV2::Integration").values()
    assert int(render_fn["Timeout"]) * 1000 < int(integration["Properties"].get("TimeoutInMillis", HTTP_API_TIMEOUT_MS))
    assert int(integration["Properties"].get("TimeoutInMillis", HTTP_API_TIMEOUT_MS)) <= HTTP_API_TIMEOUT_MS
    assert int(render_fn["ReservedConcurrentExecutions"]) > 0
    (stage,) = resources_of(template, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0


def test_the_render_role_writes_only_rendered_pictures(template, functions):
    function_id, render_fn = _render_function(functions)
    bucket = render_fn["Environment"]["Variables"]["BUCKET_NAME"]
    writes = [(a, render(r)) for s in role_statements(template, function_id) if s.get("Effect") == "Allow"
              for a in as_list(s["Action"]) if a.startswith("s3:") and is_write(a)
              for r in as_list(s["Resource"])]
    assert writes == [("s3:PutObject", f"arn:aws:s3:::{bucket}/thumbnails/*")]


SNAPSTART_HANDLERS = {"handlers/ingest.handler", "handlers/render.handler"}


def invokers_of(template: dict, function_id: str) -> list[str]:
    """Everything that invokes the function: event source mappings, invoke permissions, API integrations."""
    where = {"AWS::Lambda::EventSourceMapping": "FunctionName", "AWS::Lambda::Permission": "FunctionName",
             "AWS::ApiGatewayV2::Integration": "IntegrationUri"}
    found = [r["Properties"][key] for kind, key in where.items() for r in resources_of(template, kind).values()]
    return [render(value) for value in found if refers_to(value, function_id, template)]


def test_snapstart_functions_are_invoked_only_through_the_alias_of_their_published_version(template, functions):
    """SnapStart snapshots published versions only: an event source or route that invoked the bare
    function ($LATEST) would get ordinary cold starts. The expire function runs without it."""
    for function_id, function in functions.items():
        on = function["Properties"]["Handler"] in SNAPSTART_HANDLERS
        assert (function["Properties"].get("SnapStart") == {"ApplyOn": "PublishedVersions"}) == on, function_id
        aliases = {name: a["Properties"] for name, a in resources_of(template, "AWS::Lambda::Alias").items()
                   if refers_to(a["Properties"]["FunctionName"], function_id)}
        if not on:
            assert aliases == {}, function_id
            continue
        ((alias_id, alias),) = aliases.items()
        version_id = render(alias["FunctionVersion"]).removeprefix("GetAtt:").removesuffix(".Version")
        version = template["Resources"][version_id]
        assert version["Type"] == "AWS::Lambda::Version" and refers_to(version["Properties"]["FunctionName"],
                                                                        function_id), alias_id
        invokers = invokers_of(template, function_id)
        assert invokers, function_id
        assert set(invokers) == {f"GetAtt:{function_id}.Arn:{alias['Name']}"}, (function_id, invokers)


# --- metrics, dashboard, alarms ----------------------------------------------------------------------

DEFINED = {(m.name, frozenset(dims)) for m in metrics.METRICS for dims in m.full_dimension_sets()}


def test_the_dashboard_checker_sees_a_metric_the_code_does_not_emit():
    body = {"widgets": [{"properties": {"metrics": [
        ["NS", "IngestLag", "service", "s", "stage", "dev", "site", "sro", {"stat": "p95"}],
        [{"expression": "SEARCH('{NS,outcome,service,stage} MetricName=\"Uploads\"', 'Sum', 300)"}],
        ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "q"],
    ]}}]}
    assert dashboard_refs(body, "NS") == {("IngestLag", frozenset({"service", "stage", "site"})),
                                          ("Uploads", frozenset({"outcome", "service", "stage"}))}
    assert not dashboard_refs(body, "NS") <= DEFINED


def _dashboard(template: dict) -> dict:
    (dashboard,) = resources_of(template, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    assert isinstance(body, str), "the body must be the JSON text CloudFormation takes"
    return json.loads(body)


def _metric_environment(functions: dict) -> tuple[str, str, str]:
    envs = [f["Properties"]["Environment"]["Variables"] for f in functions.values()]
    values = {(e["POWERTOOLS_METRICS_NAMESPACE"], e["POWERTOOLS_SERVICE_NAME"], e["STAGE"]) for e in envs}
    assert len(values) == 1, values
    return values.pop()


def test_the_dashboard_and_alarms_read_only_what_the_functions_emit(template, functions):
    namespace, _, _ = _metric_environment(functions)
    read = dashboard_refs(_dashboard(template), namespace) | alarm_refs(template["Resources"], namespace)
    assert read, "nothing of ours on the dashboard"
    assert sorted(map(str, read - DEFINED)) == [], "read but never emitted (archive/metrics.py)"
    assert sorted(map(str, DEFINED - read)) == [], "emitted (and billed) but shown nowhere"


def test_the_dashboard_filters_on_the_service_and_stage_the_functions_stamp(template, functions):
    namespace, service, stage = _metric_environment(functions)
    text = json.dumps(_dashboard(template))
    for widget in _dashboard(template)["widgets"]:
        for line in widget["properties"]["metrics"]:
            values = [v for v in line if not isinstance(v, dict)]
            if values and values[0] == namespace:
                pairs = dict(zip(values[2::2], values[3::2], strict=True))
                assert (pairs["service"], pairs["stage"]) == (service, stage), line
    assert text.count(f'service=\\"{service}\\" stage=\\"{stage}\\"') == text.count("SEARCH(")


def test_the_dashboard_names_this_stacks_functions_and_queues(template, functions):
    names = {f["Properties"]["FunctionName"] for f in functions.values()}
    queues = {q["Properties"]["QueueName"] for q in resources_of(template, "AWS::SQS::Queue").values()}
    seen: dict[str, set[str]] = {"FunctionName": set(), "QueueName": set()}
    for widget in _dashboard(template)["widgets"]:
        for line in widget["properties"]["metrics"]:
            values = [v for v in line if not isinstance(v, dict)]
            for key, value in zip(values[2::2], values[3::2], strict=False):
                if key in seen:
                    seen[key].add(value)
    assert seen["FunctionName"] == names
    assert seen["QueueName"] and seen["QueueName"] <= queues


def test_every_alarm_notifies_the_alarm_actions(template):
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    assert {"IngestOldestMessageAlarm", "IngestLagAlarm", "Render5xxAlarm", "ThrottlesAlarm",
            "IngestDeadLetterAlarm"} <= set(alarms)
    actions = {json.dumps(a["Properties"].get("AlarmActions"), sort_keys=True) for a in alarms.values()}
    assert len(actions) == 1 and "AlarmActions" in next(iter(alarms.values()))["Properties"]


def test_the_ingest_queue_is_not_held_to_fill_a_batch(template):
    """Latency first (serverless.yml ingestBatchWindowSeconds): a lone upload is handed over at once."""
    (mapping,) = [m["Properties"] for m in resources_of(template, "AWS::Lambda::EventSourceMapping").values()
                  if refers_to(m["Properties"]["EventSourceArn"], "IngestQueue")]
    assert mapping.get("MaximumBatchingWindowInSeconds", 0) == 0

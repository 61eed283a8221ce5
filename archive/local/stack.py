"""The local stack: AWS replaced by moto's server on loopback, plus the pieces AWS would run for us.

`LocalStack.start()` brings up, in this process:
- moto's server (S3, SQS, DynamoDB) on `host:port`, emptied first, with the bucket, the three tables,
  the ingest queue and its dead-letter queue, the datastream queue (archive.local.provision) and the bucket
  notification S3 ObjectCreated → ingest queue;
- a database: DATABASE_URL when set, else an embedded PostgreSQL cluster under the state directory,
  else (no PostgreSQL installed) a SQLite file; migrated;
- the environment the handlers read (endpoint, dummy credentials, names, DATABASE_URL), applied to
  this process and written to `{state_dir}/local.env` for other programs;
- the ingest worker (Lambda's SQS poller) and the TTL sweeper (DynamoDB's TTL + stream trigger);
- the functions' metrics (EMF records) kept in `{state_dir}/metrics.jsonl` (archive/local/metrics_log.py)
  for `python -m archive status` and the viewer, as CloudWatch keeps them for the dashboard;
- the HTTP front (API Gateway's part, archive/local/api.py) on a port of its own, next to moto's (its
  port + 1, or any free port when moto's is 0), serving `routes`: by default the image API's, by the
  render function's own handler. Its URL is `ARCHIVE_API_URL` in local.env.

`stop()` undoes all of it, including the environment, so tests can start and stop stacks freely.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto import backends as moto_backends
from moto.server import ThreadedMotoServer
from sqlalchemy import text

import db
import migrations
from archive import aws
from archive.aws import client
from archive.local import viewer
from archive.local.api import LocalApi, Route, lambda_routes
from archive.local.drain import DatastreamDrain
from archive.local.metrics_log import MetricsLog
from archive.local.ports import port_is_free
from archive.local.postgres import LocalPostgres, PostgresUnavailable
from archive.local.provision import provision_bucket, provision_queues, provision_tables
from archive.local.sweeper import StreamHandler, TtlSweeper, describe_ttl_tables
from archive.local.worker import Delivery, Handler, IngestWorker
from archive.ops import bucket_config
from archive.settings import get_settings
from handlers import render as render_handler
from handlers.expire import handler as expire_handler
from handlers.ingest import handler as ingest_handler

logger = logging.getLogger(__name__)

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Variables that would make boto3 use something other than the dummy credentials.
_CREDENTIAL_NOISE = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")


def default_routes() -> list[Route]:
    """What the deployed HTTP API routes, each to the function that serves it in AWS, then the viewer's
    page and JSON (local only, archive.local.viewer)."""
    return [*lambda_routes(list(render_handler.ROUTES), render_handler.handler, "render"), *viewer.routes()]


class StackError(RuntimeError):
    """The local stack could not start (port taken, database unusable…); the message says what to do."""


@dataclass
class StackOptions:
    host: str = "127.0.0.1"
    port: int = 4566  # 0 picks a free port
    state_dir: Path = Path(".archive")
    database_name: str = "archive"  # database in the embedded cluster, or the SQLite file's stem
    fresh_database: bool = False  # drop and recreate the embedded database (never a DATABASE_URL one)
    max_receive_count: int | None = None  # None: serverless.yml's ingestMaxReceiveCount
    retry_delay_seconds: int = 1
    ingest_batch_window_seconds: float = 0.0  # serverless.yml ingestBatchWindowSeconds (latency first)
    sweep_interval: float = 1.0
    settings_env: dict[str, str] = field(default_factory=dict)  # e.g. SITE_EXPIRY_SECONDS, LOG_LEVEL
    ingest_handler: Handler | None = None  # default: handlers.ingest.handler
    expire_handler: StreamHandler | None = None  # default: handlers.expire.handler
    on_delivery: Callable[[list[Delivery]], None] | None = None
    run_worker: bool = True  # False: the queue fills and a caller drives `stack.worker.poll_once()`
    drain_datastream: bool = False  # consume the datastream queue as the datastreamer would (archive.local.drain)
    write_env_file: bool = True
    notice: Callable[[str], None] = print
    routes: list[Route] = field(default_factory=default_routes)  # served by the HTTP front
    api_port: int | None = None  # None: moto's port + 1 (any free port when moto's is 0)


def format_env_file(env: dict[str, str]) -> str:
    """Shell `KEY=value` lines, quoted when needed, so `set -a; . file; set +a` works."""
    lines = ["# Written by `python -m archive serve`; valid while it runs."]
    lines += [f"{key}={shlex.quote(value)}" for key, value in env.items()]
    return "\n".join(lines) + "\n"


def parse_env_file(text: str) -> dict[str, str]:
    """Read back what `format_env_file` writes (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        parts = shlex.split(value) if value else [""]
        env[key.strip()] = parts[0] if parts else ""
    return env


@dataclass
class _Database:
    url: str
    description: str
    close: Callable[[], None] = lambda: None


def _named_postgres_url(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + "/" + name


def _ensure_postgres_database(server_url: str, name: str, fresh: bool) -> None:
    engine = db.create_database_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if exists and fresh:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                exists = None
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()


def open_database(
    options: StackOptions, env_url: str | None, postgres: Callable[..., Any] | None = None
) -> _Database:
    """DATABASE_URL if given; else the embedded PostgreSQL cluster; else a SQLite file.

    `postgres` builds the cluster (default LocalPostgres); it raises PostgresUnavailable when this
    machine has no PostgreSQL server binaries.
    """
    if env_url:
        return _Database(env_url, "DATABASE_URL from the environment")

    state_dir = options.state_dir.resolve()
    try:
        cluster = (postgres or LocalPostgres)(state_dir / "pg", durable=True)
        # Running for another live stack (another `serve` on this state directory): use it, leave it
        # running. Running with no live owner (a `serve` that was killed): adopt it, stop it at the end.
        shared = cluster.initialized() and cluster.running() and cluster.owner_alive()
        server_url = cluster.start()
        if not shared:
            cluster.claim()
    except PostgresUnavailable as exc:
        path = state_dir / f"{options.database_name}.sqlite"
        if options.fresh_database and path.exists():
            path.unlink()
        options.notice(f"note: no usable PostgreSQL ({str(exc).splitlines()[0]}); using SQLite at {path}")
        return _Database(f"sqlite:///{path}", f"SQLite file {path}")
    _ensure_postgres_database(server_url, options.database_name, options.fresh_database)
    url = _named_postgres_url(server_url, options.database_name)
    close = (lambda: None) if shared else cluster.stop
    return _Database(url, f"embedded PostgreSQL under {cluster.data_dir}", close)


def list_moto_modules_once() -> None:
    """Make moto's server list its own package directory once, not on every request.

    moto 5 finds the backend of each request by listing every directory of its package (some 200
    `isdir` calls) while holding the dispatcher's lock, so requests queue behind one another: a
    backfill through the local stack spent about a sixth of the server's CPU there (py-spy, 1,000
    objects). The listing cannot change while the process runs. Without the function (another moto)
    nothing is changed.
    """
    listing = getattr(moto_backends, "list_of_moto_modules", None)
    if listing is None or getattr(listing, "listed_once", False):
        return
    modules = tuple(listing())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules.listed_once = True  # type: ignore[attr-defined]
    moto_backends.list_of_moto_modules = list_of_moto_modules


@contextlib.contextmanager
def _quiet_werkzeug() -> Iterator[None]:
    log = logging.getLogger("werkzeug")
    previous = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(previous)


class LocalStack:
    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.env: dict[str, str] = {}
        self.endpoint_url = ""
        self.api: LocalApi | None = None
        self.database: _Database | None = None
        self.worker: IngestWorker | None = None
        self.sweeper: TtlSweeper | None = None
        self.provisioned: Any = None
        self._server: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._exit = contextlib.ExitStack()

    # -- environment ---------------------------------------------------------------------------

    def _apply_env(self, values: dict[str, str], unset: tuple[str, ...] = ()) -> None:
        for key in (*values, *unset):
            self._saved_env.setdefault(key, os.environ.get(key))
        for key in unset:
            os.environ.pop(key, None)
        os.environ.update(values)
        get_settings.cache_clear()
        aws.clear_clients()

    def _restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        get_settings.cache_clear()
        aws.clear_clients()

    @property
    def env_file(self) -> Path:
        return self.options.state_dir / "local.env"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        opts = self.options
        opts.state_dir.mkdir(parents=True, exist_ok=True)
        self._start_moto()
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._apply_env(
            {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                **DUMMY_CREDENTIALS,
                "AWS_DEFAULT_REGION": region,
                "AWS_REGION": region,
                **opts.settings_env,
            },
            unset=_CREDENTIAL_NOISE,
        )
        self._provision()
        self._start_metrics_log()
        self.database = open_database(opts, os.environ.get("DATABASE_URL"))
        self._exit.callback(self.database.close)
        self._apply_env({"DATABASE_URL": self.database.url})

        migrations.upgrade(self.database.url)
        self._exit.callback(db.dispose_engines)
        self._start_threads()
        self._start_api()
        self.env = self._public_env()
        if opts.write_env_file:  # last: its existence tells other programs the stack is ready
            # Whole or not at all: a reader polling for the file must never see half of it.
            partial = self.env_file.with_name(f".{self.env_file.name}.partial")
            partial.write_text(format_env_file(self.env))
            partial.replace(self.env_file)
            self._exit.callback(self._remove_env_file)

    def _start_moto(self) -> None:
        opts = self.options
        # ThreadedMotoServer.start() waits forever when the port is taken: check first.
        if opts.port and not port_is_free(opts.host, opts.port):
            raise StackError(
                f"{opts.host}:{opts.port} is in use (another `serve`?); stop it or choose --port"
            )
        self._exit.enter_context(_quiet_werkzeug())
        list_moto_modules_once()
        server = ThreadedMotoServer(ip_address=opts.host, port=opts.port, verbose=False)
        server.start()
        self._server = server
        self._exit.callback(server.stop)
        host, port = server.get_host_and_port()
        # Listening on every interface still means clients on this machine connect through loopback.
        reachable = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.endpoint_url = f"http://{reachable}:{port}"
        # moto keeps its state in this process's globals: start from nothing, as a fresh server would.

        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")).read()

    @property
    def metrics_log_path(self) -> Path:
        return (self.options.state_dir / "metrics.jsonl").resolve()

    def _start_metrics_log(self) -> None:
        """Keep the functions' metric lines (archive/local/metrics_log.py) for `status` and the viewer."""
        log = MetricsLog(self.metrics_log_path)
        log.start()
        self._exit.callback(log.stop)
        self._apply_env({"ARCHIVE_METRICS_LOG": str(self.metrics_log_path)})

    @property
    def api_url(self) -> str:
        return self.api.url if self.api else ""

    def _start_api(self) -> None:
        opts = self.options
        port = opts.api_port
        if port is None:
            moto_port = int(self.endpoint_url.rsplit(":", 1)[1])
            port = moto_port + 1 if opts.port else 0
        if port and not port_is_free(opts.host, port):
            raise StackError(f"{opts.host}:{port} (the HTTP front) is in use; stop what holds it or choose --port")
        self.api = LocalApi(opts.routes, host=opts.host, port=port).start()
        self._exit.callback(self.api.stop)

    def _provision(self) -> None:
        settings = get_settings()
        provision_bucket(settings)
        provision_tables(settings)
        self.provisioned = provision_queues(settings, max_receive_count=self.options.max_receive_count)
        queue_arn = client("sqs").get_queue_attributes(
            QueueUrl=self.provisioned.ingest_queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        # The notifications (per prefix) and lifecycle rules `python -m archive bucket configure` gives
        # the production bucket, so local uploads are notified exactly when real ones are.
        notifications, rules = bucket_config.read_bucket(settings.bucket)
        bucket_config.apply(settings.bucket, bucket_config.plan(notifications, rules, queue_arn))

    def _public_env(self) -> dict[str, str]:
        s = get_settings()
        env = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            **DUMMY_CREDENTIALS,
            "AWS_DEFAULT_REGION": s.region,
            "AWS_REGION": s.region,
            "STAGE": s.stage,
            "BUCKET_NAME": s.bucket,
            "UPLOADS_LOG_TABLE": s.uploads_log_table,
            "INFO_IMAGES_TABLE": s.info_images_table,
            "EXPIRATION_TABLE": s.expiration_table,
            "INGEST_QUEUE_NAME": s.ingest_queue_name,
            "INGEST_QUEUE_URL": self.provisioned.ingest_queue_url,
            "INGEST_DLQ_URL": self.provisioned.ingest_dlq_url,
            "DATASTREAM_QUEUE_NAME": s.datastream_queue_name,
            "DATASTREAM_QUEUE_URL": self.provisioned.datastream_queue_url,
            "DATABASE_URL": self.database.url if self.database else "",
            "ARCHIVE_API_URL": self.api_url,
            "ARCHIVE_METRICS_LOG": str(self.metrics_log_path),
        }
        for key, value in self.options.settings_env.items():
            env.setdefault(key, value)
        return env

    def _start_threads(self) -> None:
        opts = self.options
        settings = get_settings()
        ingest = opts.ingest_handler or ingest_handler
        expire = opts.expire_handler or expire_handler
        # Separate clients for the threads: boto3 clients are thread-safe, but the handlers share the
        # cached ones and a long poll should not sit in front of them in one connection pool.
        session = boto3.session.Session()
        sqs = session.client("sqs", region_name=settings.region, endpoint_url=self.endpoint_url)
        ddb = session.client("dynamodb", region_name=settings.region, endpoint_url=self.endpoint_url)
        self.worker = IngestWorker(
            sqs,
            self.provisioned.ingest_queue_url,
            ingest,
            region=settings.region,
            batch_window_seconds=opts.ingest_batch_window_seconds,
            retry_delay_seconds=opts.retry_delay_seconds,
            on_delivery=opts.on_delivery,
        )
        tables = describe_ttl_tables(
            client("dynamodb"), [settings.uploads_log_table, settings.info_images_table, settings.expiration_table]
        )
        self.sweeper = TtlSweeper(
            ddb, tables, {settings.expiration_table: expire}, region=settings.region, interval=opts.sweep_interval
        )
        if opts.run_worker:
            self.worker.start()
            self._exit.callback(self.worker.stop)
        self.sweeper.start()
        self._exit.callback(self.sweeper.stop)
        if opts.drain_datastream:
            drain = DatastreamDrain(sqs, self.provisioned.datastream_queue_url)
            drain.start()
            self._exit.callback(drain.stop)

    def _remove_env_file(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.env_file.unlink()

    def stop(self) -> None:
        """Stop threads, server and (our own) database; restore the environment. Safe to repeat."""
        try:
            self._exit.close()
        finally:
            self._restore_env()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

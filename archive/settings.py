"""The one place that reads the environment.

Everything configurable (table and queue names, TTLs, thumbnail size, expiry lifespans) is read here,
once per process, into an immutable value; the rest of the code asks `get_settings()`. Tests and the
local stack change the environment and call `get_settings.cache_clear()`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from functools import cache
from typing import Any

DEFAULT_STAGE = "dev"
# The web app, and the ports its development servers use (Vue CLI 8080, Vite 5173, others 3000).
DEFAULT_CORS_ORIGINS = ("https://www.photonranch.org", "http://localhost:8080", "http://localhost:5173",
                        "http://localhost:3000")
_ORIGIN = re.compile(r"https?://[^/\s:]+(:\d{1,5})?")


def _int(env: Mapping[str, str], name: str) -> int:
    raw = env[name].strip()
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"setting {name} must be an integer, got {raw!r}") from exc


def _seconds(env: Mapping[str, str], name: str) -> float:
    raw = env[name].strip()
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"setting {name} must be a number of seconds, got {raw!r}") from exc
    if not 0 < value < float("inf"):
        raise ValueError(f"setting {name} must be a positive number of seconds, got {raw!r}")
    return value


def _lifespans(raw: str, name: str) -> dict[str, int]:
    """Parse `KEY=seconds,KEY=seconds` into a dict; an empty string gives no entries."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, seconds = part.partition("=")
        if not sep or not key.strip() or not seconds.strip().isdigit():
            raise ValueError(f"setting {name} must look like 'EP=604800,EF=86400', got {raw!r}")
        out[key.strip()] = int(seconds)
    return out


def _origins(raw: str, name: str) -> tuple[str, ...]:
    """Parse `https://a.example,http://localhost:8080` (scheme, host, optional port; no path)."""
    origins = tuple(filter(None, (part.strip().rstrip("/") for part in raw.split(","))))
    bad = [origin for origin in origins if not _ORIGIN.fullmatch(origin)]
    if bad:
        raise ValueError(f"setting {name} must list origins like 'https://www.photonranch.org', got {bad[0]!r}")
    return origins


# Each setting is declared once, below: its type, the environment variable(s) it is read from and its
# default. A variable that is unset (or empty) leaves the default; `load_settings` reads the names from
# the fields' metadata, so there is no second table to keep in step.
def _env(name: str, default: Any, *fallbacks: str) -> Any:
    return field(default=default, metadata={"env": (name, *fallbacks)})


def _per_stage(name: str, pattern: str) -> Any:
    """A name that embeds the stage unless the variable sets it (the default is the default stage's)."""
    return field(default=pattern.format(stage=DEFAULT_STAGE), metadata={"env": (name,), "per_stage": pattern})


def _lifespans_env(name: str, default: str) -> Any:
    """`KEY=seconds,…`; unlike the others an empty value counts (no entries: nothing expires)."""
    return field(default_factory=lambda: _lifespans(default, name), metadata={"env": (name,), "lifespans": default})


def _origins_env(name: str, default: tuple[str, ...]) -> Any:
    """`https://a.example,http://localhost:8080`; unset or empty keeps the default."""
    return field(default=default, metadata={"env": (name,), "origins": True})


@dataclass(frozen=True)
class Settings:
    stage: str = _env("STAGE", DEFAULT_STAGE)
    region: str = _env("AWS_REGION", "us-east-1", "AWS_DEFAULT_REGION")
    aws_endpoint_url: str | None = _env("AWS_ENDPOINT_URL", None)
    bucket: str = _env("BUCKET_NAME", "photonranch-001")
    database_url: str | None = _env("DATABASE_URL", None)
    database_url_ssm_param: str | None = _env("DATABASE_URL_SSM_PARAM", None)
    uploads_log_table: str = _env("UPLOADS_LOG_TABLE", "recent-uploads-log")
    info_images_table: str = _env("INFO_IMAGES_TABLE", "info-images")
    expiration_table: str = _env("EXPIRATION_TABLE", "data-expiration-tracker")
    datastream_queue_name: str = _per_stage("DATASTREAM_QUEUE_NAME", "datastreamIncomingQueue-{stage}")
    datastream_queue_url: str | None = _env("DATASTREAM_QUEUE_URL", None)
    ingest_queue_name: str = _per_stage("INGEST_QUEUE_NAME", "photonranch-archive-ingest-{stage}")
    uploads_log_ttl_hours: int = _env("UPLOADS_LOG_TTL_HOURS", 48)
    info_image_ttl_hours: int = _env("INFO_IMAGE_TTL_HOURS", 48)
    # data type -> lifespan in seconds, and site -> lifespan overriding it for expiring types
    expiring_data_types: dict[str, int] = _lifespans_env("EXPIRING_DATA_TYPES", "EP=604800,EF=86400")
    site_expiry_seconds: dict[str, int] = _lifespans_env("SITE_EXPIRY_SECONDS", "tst=300")
    thumbnail_height_px: int = _env("THUMBNAIL_HEIGHT_PX", 128)
    thumbnail_quality: int = _env("THUMBNAIL_QUALITY", 85)
    thumbnail_cache_control: str = _env("THUMBNAIL_CACHE_CONTROL", "public, max-age=31536000, immutable")
    thumbnail_max_pixels: int = _env("THUMBNAIL_MAX_PIXELS", 100_000_000)
    thumbnail_max_bytes: int = _env("THUMBNAIL_MAX_BYTES", 64 * 1024 * 1024)
    # What decoding one JPEG may allocate (archive/formats/jpeg_layout.py): with the file itself (up to
    # thumbnail_max_bytes) and the process, a thumbnail stays under 300 MiB.
    thumbnail_max_decode_bytes: int = _env("THUMBNAIL_MAX_DECODE_BYTES", 128 * 1024 * 1024)
    fits_header_max_bytes: int = _env("FITS_HEADER_MAX_BYTES", 2_880 * 400)
    # Image API (archive/render/api.py): lifetime asked of presigned links, the lifetime assumed for temporary
    # credentials that do not say when they expire (Lambda's), and the budgets a source must fit.
    render_url_seconds: int = _env("RENDER_URL_SECONDS", 3600)
    render_assumed_credential_seconds: int = _env("RENDER_ASSUMED_CREDENTIAL_SECONDS", 900)
    render_max_pixels: int = _env("RENDER_MAX_PIXELS", 100_000_000)
    render_max_source_bytes: int = _env("RENDER_MAX_SOURCE_BYTES", 512 * 1024 * 1024)
    # The rest of a render's budget, all checked from headers before any data is read
    # (archive/formats/fits_data.py): pixels per axis, decompressed bytes of the frame, and the bytes one
    # row of .fz tiles decompresses to (what is held at once). A render past its deadline answers 504; it
    # stays under the function's 28 s timeout so the answer is ours, not API Gateway's.
    render_max_axis: int = _env("RENDER_MAX_AXIS", 100_000)
    render_max_data_bytes: int = _env("RENDER_MAX_DATA_BYTES", 1024 * 1024 * 1024)
    render_max_tile_bytes: int = _env("RENDER_MAX_TILE_BYTES", 64 * 1024 * 1024)
    render_deadline_seconds: float = _env("RENDER_DEADLINE_SECONDS", 24.0)
    # The Lambda's memory setting (set by the Lambda runtime): CPU is given in proportion to it, which
    # decides how many threads decode bzip2 (archive/formats/bz2_blocks.py). None outside Lambda.
    lambda_memory_mb: int | None = _env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", None)
    # Dead letters of the ingest queue above this are reported as a warning by /health/ready.
    ready_max_dead_letters: int = _env("READY_MAX_DEAD_LETTERS", 0)
    # Origins whose pages may read the image API's answers (CORS); serverless.yml's `corsOrigins`.
    cors_origins: tuple[str, ...] = _origins_env("CORS_ORIGINS", DEFAULT_CORS_ORIGINS)
    log_level: str = _env("LOG_LEVEL", "INFO")
    # CloudWatch metrics (archive/metrics.py): their namespace, and the `service` dimension and log key.
    metrics_namespace: str = _env("POWERTOOLS_METRICS_NAMESPACE", "PhotonRanchArchive")
    service_name: str = _env("POWERTOOLS_SERVICE_NAME", "photonranch-archive")
    # The local stack only: where it keeps the functions' metric lines for `status` and the viewer.
    metrics_log: str | None = _env("ARCHIVE_METRICS_LOG", None)



# Every environment variable load_settings reads (the deployment sets them; tests check the template).
ENVIRONMENT = tuple(name for f in fields(Settings) for name in f.metadata["env"])


def _value(env: Mapping[str, str], setting: Field[Any], stage: str) -> Any:
    """The setting's value from `env`, or `MISSING` to keep its default."""
    names = setting.metadata["env"]
    if "lifespans" in setting.metadata:
        raw = env.get(names[0])
        return _lifespans(raw, names[0]) if raw is not None else MISSING
    if "origins" in setting.metadata:
        raw = env.get(names[0], "")
        return _origins(raw, names[0]) if raw.strip() else MISSING
    name = next((n for n in names if env.get(n)), None)
    if name is None:
        if "per_stage" in setting.metadata:
            return setting.metadata["per_stage"].format(stage=stage)
        return MISSING
    if setting.type in ("int", "int | None"):
        return _int(env, name) if env[name].strip() else MISSING
    if setting.type == "float":
        return _seconds(env, name) if env[name].strip() else MISSING
    return env[name]


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    stage = env.get("STAGE") or DEFAULT_STAGE
    values = {f.name: _value(env, f, stage) for f in fields(Settings)}
    return Settings(**{name: value for name, value in values.items() if value is not MISSING})


@cache
def get_settings() -> Settings:
    return load_settings()

"""The one place that reads the environment.

Everything configurable (table and queue names, TTLs, thumbnail size, expiry lifespans) is read here,
once per process, into an immutable value; the rest of the code asks `get_settings()`. Tests and the
local stack change the environment and call `get_settings.cache_clear()`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

DEFAULT_EXPIRING_DATA_TYPES = "EP=604800,EF=86400"
DEFAULT_SITE_EXPIRY = "tst=300"
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


@dataclass(frozen=True)
class Settings:
    stage: str = "dev"
    region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    bucket: str = "photonranch-001"
    database_url: str | None = None
    database_url_ssm_param: str | None = None
    uploads_log_table: str = "recent-uploads-log"
    info_images_table: str = "info-images"
    expiration_table: str = "data-expiration-tracker"
    datastream_queue_name: str = "datastreamIncomingQueue-dev"
    datastream_queue_url: str | None = None
    ingest_queue_name: str = "photonranch-archive-ingest-dev"
    uploads_log_ttl_hours: int = 48
    info_image_ttl_hours: int = 48
    # data type -> lifespan in seconds, and site -> lifespan overriding it for expiring types
    expiring_data_types: dict[str, int] = field(default_factory=dict)
    site_expiry_seconds: dict[str, int] = field(default_factory=dict)
    thumbnail_height_px: int = 128
    thumbnail_quality: int = 85
    thumbnail_cache_control: str = "public, max-age=31536000, immutable"
    thumbnail_max_pixels: int = 100_000_000
    thumbnail_max_bytes: int = 64 * 1024 * 1024
    # What decoding one JPEG may allocate (archive/formats/jpeg_layout.py): with the file itself (up to
    # thumbnail_max_bytes) and the process, a thumbnail stays under 300 MiB.
    thumbnail_max_decode_bytes: int = 128 * 1024 * 1024
    fits_header_max_bytes: int = 2_880 * 400
    # Image API (archive/render/api.py): lifetime asked of presigned links, the lifetime assumed for temporary
    # credentials that do not say when they expire (Lambda's), and the budgets a source must fit.
    render_url_seconds: int = 3600
    render_assumed_credential_seconds: int = 900
    render_max_pixels: int = 100_000_000
    render_max_source_bytes: int = 512 * 1024 * 1024
    # The rest of a render's budget, all checked from headers before any data is read
    # (archive/formats/fits_data.py): pixels per axis, decompressed bytes of the frame, and the bytes one
    # row of .fz tiles decompresses to (what is held at once). A render past its deadline answers 504; it
    # stays under the function's 28 s timeout so the answer is ours, not API Gateway's.
    render_max_axis: int = 100_000
    render_max_data_bytes: int = 1024 * 1024 * 1024
    render_max_tile_bytes: int = 64 * 1024 * 1024
    render_deadline_seconds: int = 24
    # The Lambda's memory setting (set by the Lambda runtime): CPU is given in proportion to it, which
    # decides how many threads decode bzip2 (archive/formats/bz2_blocks.py). None outside Lambda.
    lambda_memory_mb: int | None = None
    # Dead letters of the ingest queue above this are reported as a warning by /health/ready.
    ready_max_dead_letters: int = 0
    # Origins whose pages may read the image API's answers (CORS); serverless.yml's `corsOrigins`.
    cors_origins: tuple[str, ...] = DEFAULT_CORS_ORIGINS
    log_level: str = "INFO"
    # CloudWatch metrics (archive/metrics.py): their namespace, and the `service` dimension and log key.
    metrics_namespace: str = "PhotonRanchArchive"
    service_name: str = "photonranch-archive"
    # The local stack only: where it keeps the functions' metric lines for `status` and the viewer.
    metrics_log: str | None = None

    def expiry_seconds(self, site: str, data_type: str) -> int | None:
        """Lifespan of an exposure, or None when its data type does not expire."""
        if data_type not in self.expiring_data_types:
            return None
        return self.site_expiry_seconds.get(site, self.expiring_data_types[data_type])


# Setting -> environment variable. Defaults live once, on the dataclass fields above; a variable that
# is unset (or empty) leaves its field's default.
_TEXT = {
    "bucket": "BUCKET_NAME",
    "uploads_log_table": "UPLOADS_LOG_TABLE",
    "info_images_table": "INFO_IMAGES_TABLE",
    "expiration_table": "EXPIRATION_TABLE",
    "datastream_queue_name": "DATASTREAM_QUEUE_NAME",
    "ingest_queue_name": "INGEST_QUEUE_NAME",
    "thumbnail_cache_control": "THUMBNAIL_CACHE_CONTROL",
    "log_level": "LOG_LEVEL",
    "metrics_namespace": "POWERTOOLS_METRICS_NAMESPACE",
    "service_name": "POWERTOOLS_SERVICE_NAME",
}
_OPTIONAL = {
    "aws_endpoint_url": "AWS_ENDPOINT_URL",
    "database_url": "DATABASE_URL",
    "database_url_ssm_param": "DATABASE_URL_SSM_PARAM",
    "datastream_queue_url": "DATASTREAM_QUEUE_URL",
    "metrics_log": "ARCHIVE_METRICS_LOG",
}
_INTEGER = {
    "uploads_log_ttl_hours": "UPLOADS_LOG_TTL_HOURS",
    "info_image_ttl_hours": "INFO_IMAGE_TTL_HOURS",
    "thumbnail_height_px": "THUMBNAIL_HEIGHT_PX",
    "thumbnail_quality": "THUMBNAIL_QUALITY",
    "thumbnail_max_pixels": "THUMBNAIL_MAX_PIXELS",
    "thumbnail_max_bytes": "THUMBNAIL_MAX_BYTES",
    "thumbnail_max_decode_bytes": "THUMBNAIL_MAX_DECODE_BYTES",
    "fits_header_max_bytes": "FITS_HEADER_MAX_BYTES",
    "ready_max_dead_letters": "READY_MAX_DEAD_LETTERS",
    "render_url_seconds": "RENDER_URL_SECONDS",
    "render_assumed_credential_seconds": "RENDER_ASSUMED_CREDENTIAL_SECONDS",
    "render_max_pixels": "RENDER_MAX_PIXELS",
    "render_max_source_bytes": "RENDER_MAX_SOURCE_BYTES",
    "render_max_axis": "RENDER_MAX_AXIS",
    "render_max_data_bytes": "RENDER_MAX_DATA_BYTES",
    "render_max_tile_bytes": "RENDER_MAX_TILE_BYTES",
    "render_deadline_seconds": "RENDER_DEADLINE_SECONDS",
    "lambda_memory_mb": "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
}
# Names that embed the stage when not set explicitly.
_PER_STAGE = {
    "datastream_queue_name": "datastreamIncomingQueue-{stage}",
    "ingest_queue_name": "photonranch-archive-ingest-{stage}",
}


# Every environment variable load_settings reads (the deployment sets them; tests check the template).
ENVIRONMENT = (
    "STAGE", "AWS_REGION", "AWS_DEFAULT_REGION", "EXPIRING_DATA_TYPES", "SITE_EXPIRY_SECONDS", "CORS_ORIGINS",
    *_TEXT.values(), *_OPTIONAL.values(), *_INTEGER.values(),
)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    stage = env.get("STAGE") or Settings.stage
    values: dict[str, Any] = {
        "stage": stage,
        "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or Settings.region,
        "expiring_data_types": _lifespans(
            env.get("EXPIRING_DATA_TYPES", DEFAULT_EXPIRING_DATA_TYPES), "EXPIRING_DATA_TYPES"
        ),
        "site_expiry_seconds": _lifespans(env.get("SITE_EXPIRY_SECONDS", DEFAULT_SITE_EXPIRY), "SITE_EXPIRY_SECONDS"),
    }
    if env.get("CORS_ORIGINS", "").strip():
        values["cors_origins"] = _origins(env["CORS_ORIGINS"], "CORS_ORIGINS")
    values.update({name: pattern.format(stage=stage) for name, pattern in _PER_STAGE.items()})
    values.update({name: env[var] for name, var in _TEXT.items() if env.get(var)})
    values.update({name: env.get(var) or None for name, var in _OPTIONAL.items()})
    values.update({name: _int(env, var) for name, var in _INTEGER.items() if env.get(var, "").strip()})
    return Settings(**values)


@cache
def get_settings() -> Settings:
    return load_settings()

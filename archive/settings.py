"""The one place that reads the environment.

Everything configurable (table and queue names, TTLs, thumbnail size, expiry lifespans) is read here,
once per process, into an immutable value; the rest of the code asks `get_settings()`. Tests and the
local stack change the environment and call `get_settings.cache_clear()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache

DEFAULT_EXPIRING_DATA_TYPES = "EP=604800,EF=86400"
DEFAULT_SITE_EXPIRY = "tst=300"


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
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
    fits_header_max_bytes: int = 2_880 * 400
    log_level: str = "INFO"

    def expiry_seconds(self, site: str, data_type: str) -> int | None:
        """Lifespan of an exposure, or None when its data type does not expire."""
        if data_type not in self.expiring_data_types:
            return None
        return self.site_expiry_seconds.get(site, self.expiring_data_types[data_type])


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    stage = env.get("STAGE", "dev")
    return Settings(
        stage=stage,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        bucket=env.get("BUCKET_NAME", "photonranch-001"),
        database_url=env.get("DATABASE_URL") or None,
        database_url_ssm_param=env.get("DATABASE_URL_SSM_PARAM") or None,
        uploads_log_table=env.get("UPLOADS_LOG_TABLE", "recent-uploads-log"),
        info_images_table=env.get("INFO_IMAGES_TABLE", "info-images"),
        expiration_table=env.get("EXPIRATION_TABLE", "data-expiration-tracker"),
        datastream_queue_name=env.get("DATASTREAM_QUEUE_NAME", f"datastreamIncomingQueue-{stage}"),
        datastream_queue_url=env.get("DATASTREAM_QUEUE_URL") or None,
        ingest_queue_name=env.get("INGEST_QUEUE_NAME", f"photonranch-archive-ingest-{stage}"),
        uploads_log_ttl_hours=_int(env, "UPLOADS_LOG_TTL_HOURS", 48),
        info_image_ttl_hours=_int(env, "INFO_IMAGE_TTL_HOURS", 48),
        expiring_data_types=_lifespans(
            env.get("EXPIRING_DATA_TYPES", DEFAULT_EXPIRING_DATA_TYPES), "EXPIRING_DATA_TYPES"
        ),
        site_expiry_seconds=_lifespans(env.get("SITE_EXPIRY_SECONDS", DEFAULT_SITE_EXPIRY), "SITE_EXPIRY_SECONDS"),
        thumbnail_height_px=_int(env, "THUMBNAIL_HEIGHT_PX", 128),
        thumbnail_quality=_int(env, "THUMBNAIL_QUALITY", 85),
        thumbnail_cache_control=env.get("THUMBNAIL_CACHE_CONTROL", "public, max-age=31536000, immutable"),
        thumbnail_max_pixels=_int(env, "THUMBNAIL_MAX_PIXELS", 100_000_000),
        thumbnail_max_bytes=_int(env, "THUMBNAIL_MAX_BYTES", 64 * 1024 * 1024),
        fits_header_max_bytes=_int(env, "FITS_HEADER_MAX_BYTES", 2_880 * 400),
        log_level=env.get("LOG_LEVEL", "INFO"),
    )


@cache
def get_settings() -> Settings:
    return load_settings()

"""Presigned GET links that say truthfully how long they work.

A presigned URL stops working when the credentials that signed it expire, whatever `ExpiresIn` says
(the reference service promised a week and signed with a Lambda role's credentials, which last hours).
So the lifetime we sign for, and report as `expires_at`, is the least of:

- what was asked (the RENDER_URL_SECONDS setting);
- the signing credentials' own expiry: botocore knows it for refreshable credentials (assumed roles,
  container and instance credentials, AWS_CREDENTIAL_EXPIRATION); temporary credentials that do not
  say (a session token and no expiry, as Lambda's environment gives them) are assumed to last
  RENDER_ASSUMED_CREDENTIAL_SECONDS from now; long-term keys do not expire;
- seven days, SigV4's limit.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from archive import aws

SIGV4_MAX_SECONDS = 7 * 24 * 3600


def credential_expiry(credentials: Any, now: dt.datetime, assumed_seconds: int) -> dt.datetime | None:
    """When the signing credentials stop working (aware UTC), or None if they do not expire."""
    if credentials is None:
        return None
    if hasattr(credentials, "get_frozen_credentials"):
        frozen = credentials.get_frozen_credentials()  # refreshes them first when they are about to expire
    else:
        frozen = credentials
    expiry = getattr(credentials, "_expiry_time", None)
    if isinstance(expiry, dt.datetime):
        return expiry if expiry.tzinfo else expiry.replace(tzinfo=dt.UTC)
    if getattr(frozen, "token", None):
        return now + dt.timedelta(seconds=assumed_seconds)
    return None


def honest_lifetime(requested_seconds: int, now: dt.datetime, expiry: dt.datetime | None) -> int:
    """Whole seconds the link will really work (at least 1)."""
    seconds = min(requested_seconds, SIGV4_MAX_SECONDS)
    if expiry is not None:
        seconds = min(seconds, math.floor((expiry - now).total_seconds()))
    return max(1, seconds)


def presigned_get(bucket: str, key: str, requested_seconds: int, assumed_seconds: int,
                  now: dt.datetime | None = None) -> tuple[str, dt.datetime]:
    """(URL, when it stops working) for a GET of `key`."""
    now = now or dt.datetime.now(dt.UTC)
    expiry = credential_expiry(aws.credentials(), now, assumed_seconds)
    seconds = honest_lifetime(requested_seconds, now, expiry)
    url = aws.client("s3").generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                                  ExpiresIn=seconds)
    return url, now.replace(microsecond=0) + dt.timedelta(seconds=seconds)

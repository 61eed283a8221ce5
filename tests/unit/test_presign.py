"""Presigned links promise no more than the signing credentials can keep."""

from __future__ import annotations

import datetime as dt

from botocore.credentials import Credentials, RefreshableCredentials

from archive.render.presign import SIGV4_MAX_SECONDS, credential_expiry, honest_lifetime

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def refreshable(now: dt.datetime, expires_in: dt.timedelta) -> RefreshableCredentials:
    """What botocore builds for assumed roles, container and instance credentials (it compares their
    expiry with the real clock, so `now` must be the real now)."""
    expiry = (now + expires_in).isoformat()
    return RefreshableCredentials.create_from_metadata(
        {"access_key": "A", "secret_key": "S", "token": "T", "expiry_time": expiry},
        refresh_using=lambda: {"access_key": "A", "secret_key": "S", "token": "T", "expiry_time": expiry},
        method="assume-role",
    )


def test_long_term_keys_do_not_expire_and_the_link_gets_what_was_asked_up_to_seven_days():
    assert credential_expiry(Credentials("A", "S"), NOW, 900) is None
    assert honest_lifetime(3600, NOW, None) == 3600
    assert honest_lifetime(30 * 86400, NOW, None) == SIGV4_MAX_SECONDS == 7 * 86400


def test_temporary_credentials_without_an_expiry_are_assumed_to_last_the_configured_time():
    expiry = credential_expiry(Credentials("A", "S", "session-token"), NOW, 900)
    assert expiry == NOW + dt.timedelta(seconds=900)
    assert honest_lifetime(3600, NOW, expiry) == 900
    assert honest_lifetime(60, NOW, expiry) == 60


def test_refreshable_credentials_give_their_own_expiry():
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    expiry = credential_expiry(refreshable(now, dt.timedelta(hours=2)), now, 900)
    assert expiry == now + dt.timedelta(hours=2)
    assert honest_lifetime(3 * 3600, now, expiry) == 2 * 3600
    assert honest_lifetime(600, now, expiry) == 600


def test_a_link_never_claims_less_than_a_second_even_from_expiring_credentials():
    assert honest_lifetime(3600, NOW, NOW - dt.timedelta(seconds=5)) == 1

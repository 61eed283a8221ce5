"""The local stack lists moto's backends once: the same answer moto's own listing gives, never stale."""

from __future__ import annotations

import os

import moto
from moto import backends

from archive.local.stack import list_moto_modules_once


def test_the_listing_made_once_names_every_backend_moto_would_find_on_disk():
    package = os.path.dirname(moto.__file__)
    on_disk = {
        name for name in os.listdir(package)
        if os.path.isdir(os.path.join(package, name)) and not name.startswith("__")
    }

    list_moto_modules_once()
    listed = backends.list_of_moto_modules()

    assert set(listed) == on_disk
    assert {"s3", "sqs", "dynamodb"} <= set(listed)


def test_listing_once_twice_keeps_the_first_listing():
    list_moto_modules_once()
    first = backends.list_of_moto_modules

    list_moto_modules_once()

    assert backends.list_of_moto_modules is first

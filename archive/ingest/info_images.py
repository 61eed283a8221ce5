"""The three info-image channels of a site in DynamoDB `info-images` (docs/contracts.md §4).

photonranch-api writes `{site}#metadata` (`channel1..3` = the base filename meant for each channel)
before a site uploads; each file under `info-images/` then updates `{site}#{channel}`.

Replacing a channel's exposure must not race with the files of either exposure arriving at the same
moment, so no write depends on an earlier read of the channel item:

1. UpdateItem conditioned on `base_filename = :b` adds this file to the exposure already there;
2. if that condition fails (no item, or another exposure), PutItem conditioned on the item holding a
   *different* exposure (or none) replaces the whole item with this exposure and this file;
3. if that condition fails too, a concurrent file of the same exposure won step 2 first: go to 1.

Decision: a file that the table has no field for (e.g. a JPG with reduction 12) still needs its
channel (no channel is a rejection, whatever the file), but changes nothing: claiming the channel for
it would blank the channel's picture with an exposure that has nothing to show.

Decision: a header too large for DynamoDB's 400 KB item limit is stored in part (the keywords that fit
within HEADER_BUDGET_BYTES, in card order), not refused: refusing would leave the channel showing the
previous exposure. The caller says in the upload log what was left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from archive.aws import client, from_dynamodb, is_condition_failure, to_dynamodb
from archive.clock import epoch_seconds
from archive.errors import Rejected
from archive.formats.filenames import ParsedName, file_role
from archive.settings import get_settings

CHANNELS = (1, 2, 3)
MAX_ATTEMPTS = 8  # each retry means another writer changed the channel in between; bounded, not forever
# The header map's share of the 400 KB (409 600-byte) item: the other attributes (paths, flags, names)
# take well under 2 kB, whichever order the exposure's files arrive in.
HEADER_BUDGET_BYTES = 380_000


class NoChannel(Rejected):
    """The site's metadata assigns no channel to this file's exposure; the file is rejected."""


def channel_of(metadata: Mapping[str, Any] | None, base_filename: str) -> int | None:
    """The (lowest) channel whose metadata names this base filename, else None."""
    for channel in CHANNELS:
        if metadata and metadata.get(f"channel{channel}") == base_filename:
            return channel
    return None


def fit_header(header: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The header as a channel item holds it, and the keywords left out to stay within the item limit.

    Keywords are kept in card order; one too large for what is left is skipped and the next tried.
    Blank keywords are dropped (DynamoDB refuses empty map keys; moto does not), and not reported.
    Sizes are DynamoDB's: UTF-8 bytes of name and value, plus a byte per map element.
    """
    kept: dict[str, str] = {}
    left_out: list[str] = []
    room = HEADER_BUDGET_BYTES - len("header") - 3
    for keyword, value in header.items():
        if not keyword:
            continue
        size = len(keyword.encode()) + len(str(value).encode()) + 1
        if size > room:
            left_out.append(keyword)
            continue
        kept[keyword] = value
        room -= size
    return kept, left_out


def file_fields(name: ParsedName, key: str, header: Mapping[str, str] | None) -> dict[str, Any]:
    """What this one file contributes to its channel item; empty for a file with no field."""
    if name.ext == "txt":
        return {"header": fit_header(header or {})[0]}
    role = file_role(name)
    return {role.path_field: key, role.flag: True} if role else {}


def exposure_fields(name: ParsedName, expiration_timestamp: int) -> dict[str, Any]:
    return {
        "base_filename": name.base_filename,
        "data_type": name.data_type,
        "file_date": name.date,
        "expiration_timestamp": expiration_timestamp,
    }


def _add_to_exposure(table: str, pk: str, fields: Mapping[str, Any]) -> bool:
    """Step 1: set these fields on the item if it holds this exposure. False when it does not."""
    names = {f"#a{i}": name for i, name in enumerate(fields)}
    values = to_dynamodb({f":v{i}": value for i, value in enumerate(fields.values())})
    values.update(to_dynamodb({":b": fields["base_filename"]}))
    assignments = ", ".join(f"#a{i} = :v{i}" for i in range(len(fields)))
    try:
        client("dynamodb").update_item(
            TableName=table,
            Key={"pk": {"S": pk}},
            UpdateExpression=f"SET {assignments}",
            ConditionExpression="base_filename = :b",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    except Exception as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def _replace_exposure(table: str, pk: str, fields: Mapping[str, Any]) -> bool:
    """Step 2: replace the whole item unless it already holds this exposure. False when it does."""
    item = to_dynamodb({"pk": pk, **fields})
    try:
        client("dynamodb").put_item(
            TableName=table,
            Item=item,
            ConditionExpression="attribute_not_exists(pk) OR attribute_not_exists(base_filename) "
            "OR base_filename <> :b",
            ExpressionAttributeValues=to_dynamodb({":b": fields["base_filename"]}),
        )
    except Exception as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def find_channel(site: str, base_filename: str) -> int:
    """The channel the site's metadata gives this exposure.

    Raises:
        NoChannel: the metadata names no channel for it (permanent: rejected).
        botocore errors from DynamoDB, for `archive.failures.classify`.
    """
    table = get_settings().info_images_table
    response = client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": f"{site}#metadata"}}, ConsistentRead=True
    )
    raw = response.get("Item") or {}
    metadata = {name: value.get("S") for name, value in raw.items()}
    channel = channel_of(metadata, base_filename)
    if channel is None:
        where = "no metadata item" if not raw else "metadata channel1-3 do not name it"
        raise NoChannel(
            f"no info-image channel for base filename {base_filename} at site {site} ({where} {site}#metadata)"
        )
    return channel


def apply_info_file(
    name: ParsedName, key: str, header: Mapping[str, str] | None, now: dt.datetime, channel: int | None = None
) -> int:
    """Record one info-image file on its channel item and return the channel number (1-3).

    `now` (naive UTC datetime) starts the item's TTL. Raises NoChannel when the site's metadata has
    no channel for the exposure; nothing is written then. Never touches the `images` table. A caller
    that already looked the channel up passes it, so one file reads the metadata once.
    """
    settings = get_settings()
    if channel is None:
        channel = find_channel(name.site, name.base_filename)
    per_file = file_fields(name, key, header)
    if not per_file:
        return channel
    expires = int(epoch_seconds(now)) + settings.info_image_ttl_hours * 3600
    fields = {**exposure_fields(name, expires), **per_file}
    pk = f"{name.site}#{channel}"
    for _ in range(MAX_ATTEMPTS):
        if _add_to_exposure(settings.info_images_table, pk, fields):
            return channel
        if _replace_exposure(settings.info_images_table, pk, fields):
            return channel
    raise RuntimeError(f"channel {pk} kept changing under {MAX_ATTEMPTS} attempts to write {key}")


def site_channels(site: str) -> dict[str, Any]:
    """What photonranch-api reads for a site's info images: `metadata` and channels 1-3.

    `{"metadata": item | None, "channels": {1: item | None, 2: …, 3: …}}`, items as `from_dynamodb`
    gives them; one BatchGetItem.
    """
    table = get_settings().info_images_table
    keys = [f"{site}#metadata", *(f"{site}#{channel}" for channel in CHANNELS)]
    request = {table: {"Keys": [{"pk": {"S": key}} for key in keys]}}
    found: dict[str, dict[str, Any]] = {}
    ddb = client("dynamodb")
    while request:
        response = ddb.batch_get_item(RequestItems=request)
        for item in response.get("Responses", {}).get(table, []):
            plain = from_dynamodb(item)
            found[plain["pk"]] = plain
        request = response.get("UnprocessedKeys") or {}
    return {
        "metadata": found.get(f"{site}#metadata"),
        "channels": {channel: found.get(f"{site}#{channel}") for channel in CHANNELS},
    }

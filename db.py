"""The `images` table (read by photonranch-api) and the atomic upserts that fill it.

Every write is one `INSERT … ON CONFLICT (base_filename) DO UPDATE` that sets only what the arriving
file knows, so an exposure's files may land in any order, twice, or at the same moment from several
Lambdas, and the row converges to the same state. One engine per URL per process, reused across
invocations. This module knows nothing of the archive's settings or AWS (photonranch-api mirrors it):
callers pass the URL, and `archive.database` finds it (DATABASE_URL or an SSM parameter).

capture_date/sort_date rule (never NULL, docs/contracts.md §2): the sources are ranked, DATE-OBS of the
header text, then DATE-OBS of a FITS header, then the earliest upload time seen for the exposure.
`capture_date_source` records the rank of the date a row holds; every upsert offers a date with its
rank, a higher rank replaces the date and an equal one keeps the earlier, so the row ends with the same
date whatever order the files arrive in.

URLs: the plain `postgresql://` form (libpq, RDS, photonranch-api) names no driver, and SQLAlchemy's
default for it is psycopg 3, which the functions do not ship; `database_url()` maps it (and Heroku's
`postgres://`) to psycopg2, the driver installed. Every engine (the functions', migrations', the
CLI's) is made by `create_database_engine`, so they all accept it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    bindparam,
    case,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, make_url

metadata = MetaData()

FLAGS = ("fits_01_exists", "fits_10_exists", "jpg_medium_exists", "jpg_small_exists")

images = Table(
    "images",
    metadata,
    Column("image_id", Integer, primary_key=True, autoincrement=True),
    Column("base_filename", String(29), nullable=False, unique=True),
    Column("data_type", String),
    Column("site", String(6)),
    Column("capture_date", DateTime(timezone=False), nullable=False),
    Column("sort_date", DateTime(timezone=False), nullable=False),
    Column("right_ascension", Float),
    Column("declination", Float),
    Column("altitude", Float),
    Column("azimuth", Float),
    Column("filter_used", String),
    Column("airmass", Float),
    Column("exposure_time", Float),
    Column("username", String),
    Column("user_id", String),
    Column("header", Text),
    *(Column(flag, Boolean, nullable=False, server_default=text("false")) for flag in FLAGS),
    # Ours, not part of the contract: the rank of the source capture_date came from (DATE_FROM_*), so a
    # later file replaces it only with a better-ranked date. Keeps the date independent of arrival order.
    Column("capture_date_source", SmallInteger, nullable=False, server_default=text("0")),
)

# capture_date sources, in rank order (docs/contracts.md §2).
DATE_FROM_UPLOAD = 0  # the earliest upload time seen
DATE_FROM_FITS_HEADER = 1  # DATE-OBS of a header read out of a FITS file
DATE_FROM_HEADER_TEXT = 2  # DATE-OBS of the `.txt` header

# Columns a header fills; a header upsert sets exactly these (plus the dates).
HEADER_COLUMNS = (
    "right_ascension",
    "declination",
    "altitude",
    "azimuth",
    "filter_used",
    "airmass",
    "exposure_time",
    "username",
    "user_id",
)


def header_json(header: Mapping[str, str]) -> str:
    """The `header` column's JSON: every keyword mapped to its value as a string."""
    return json.dumps(dict(header), ensure_ascii=False)


_ENGINES: dict[str, Engine] = {}
_PLAIN_POSTGRESQL = ("postgresql", "postgres")  # no driver named: libpq's form and Heroku's
INSTALLED_DRIVER = "postgresql+psycopg2"


class DatabaseURLError(ValueError):
    """A database URL that cannot be used here; the message is one line, without the password."""


def database_url(url: str) -> str:
    """`url` with the installed driver named when it names none (`postgresql://…` -> psycopg2)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's message would print the password
        reason = f"not a database URL ({type(exc).__name__}): expected postgresql://user@host/db"
        raise DatabaseURLError(reason) from None
    if parsed.drivername not in _PLAIN_POSTGRESQL:
        return url
    return parsed.set(drivername=INSTALLED_DRIVER).render_as_string(hide_password=False)


def create_database_engine(url: str, **options: Any) -> Engine:
    """A new engine for `url` (plain `postgresql://` accepted); `options` go to `create_engine`.

    Raises DatabaseURLError when the URL names a driver that is not installed.
    """
    url = database_url(url)
    try:
        return create_engine(url, **options)
    except ModuleNotFoundError as exc:
        driver = make_url(url).drivername
        raise DatabaseURLError(
            f"database URL names the driver {driver!r}, whose module {exc.name!r} is not installed; "
            f"use postgresql:// (or {INSTALLED_DRIVER}://)"
        ) from None


def engine_for(url: str) -> Engine:
    """The process's engine for `url`, created on first use and reused by later invocations."""
    engine = _ENGINES.get(url)
    if engine is not None:
        return engine
    if url.startswith("sqlite"):
        engine = create_database_engine(url, connect_args={"timeout": 30})
    else:
        # One Lambda handles one batch at a time; pre-ping survives RDS failovers and idle kills.
        engine = create_database_engine(
            url,
            pool_size=5,
            max_overflow=10,
            pool_pre_ping=True,
            pool_recycle=300,
            connect_args={"connect_timeout": 5, "application_name": "photonranch-archive"},
        )
    return _ENGINES.setdefault(url, engine)


def dispose_engines(close: bool = True) -> None:
    """Close pooled connections and forget engines (tests). After a fork or a restore from a snapshot,
    `close=False`: the pooled sockets are not this process's to close, only to drop."""
    while _ENGINES:
        _, engine = _ENGINES.popitem()
        engine.dispose(close=close)


def _insert_for(dialect: str) -> Any:
    """An INSERT with ON CONFLICT support for the dialect (PostgreSQL; SQLite for the no-server fallback)."""
    return (postgresql_insert if dialect == "postgresql" else sqlite_insert)(images)


def _earliest(dialect: str, a: Any, b: Any) -> Any:
    return func.least(a, b) if dialect == "postgresql" else func.min(a, b)


def _highest(dialect: str, a: Any, b: Any) -> Any:
    return func.greatest(a, b) if dialect == "postgresql" else func.max(a, b)


def _ranked_date(dialect: str, ex: Any) -> dict[str, Any]:
    """SET clauses that offer the incoming date with its rank: a higher rank replaces the row's date,
    the same rank keeps the earlier of the two, a lower one changes nothing."""
    ours, theirs = images.c.capture_date_source, ex.capture_date_source
    date = case(
        (theirs > ours, ex.capture_date),
        (theirs == ours, _earliest(dialect, images.c.capture_date, ex.capture_date)),
        else_=images.c.capture_date,
    )
    return {"capture_date": date, "sort_date": date, "capture_date_source": _highest(dialect, ours, theirs)}


_ROW_IDENTITY = ("base_filename", "site", "data_type", "capture_date", "sort_date", "capture_date_source")


@cache
def _header_upsert(dialect: str, only_if_missing: bool) -> Any:
    """The header upsert, built once per variant; values are bound parameters at execution."""
    names = (*_ROW_IDENTITY, "header", *HEADER_COLUMNS)
    stmt = _insert_for(dialect).values({name: bindparam(name) for name in names})
    ex = stmt.excluded
    update = {name: ex[name] for name in ("site", "data_type", "header", *HEADER_COLUMNS)}
    update.update(_ranked_date(dialect, ex))
    return stmt.on_conflict_do_update(
        index_elements=[images.c.base_filename],
        set_=update,
        where=images.c.header.is_(None) if only_if_missing else None,
    )


@cache
def _flag_upsert(dialect: str, flag: str) -> Any:
    stmt = _insert_for(dialect).values({name: bindparam(name) for name in _ROW_IDENTITY}).values({flag: True})
    return stmt.on_conflict_do_update(
        index_elements=[images.c.base_filename], set_={flag: True, **_ranked_date(dialect, stmt.excluded)}
    )


def _dated(capture_date: dt.datetime | None, source: int, upload_time: dt.datetime) -> dict[str, Any]:
    date, rank = (capture_date, source) if capture_date is not None else (upload_time, DATE_FROM_UPLOAD)
    return {"capture_date": date, "sort_date": date, "capture_date_source": rank}


def upsert_header(
    conn: Connection,
    *,
    base_filename: str,
    site: str,
    data_type: str,
    header: Mapping[str, str],
    columns: Mapping[str, Any],
    capture_date: dt.datetime | None,
    upload_time: dt.datetime,
    date_source: int = DATE_FROM_HEADER_TEXT,
    only_if_missing: bool = False,
) -> bool:
    """Write an exposure's header fields, creating the row if absent; file flags are left alone.

    `capture_date` is the header's DATE-OBS (None when it has none: the upload time is offered then),
    ranked as `date_source`. `only_if_missing` is for a header read out of a FITS file: it never
    replaces a header that a `.txt` (or an earlier FITS) already wrote, and then offers nothing (the
    FITS file's `mark_file` offers its date). Returns whether a row was written.
    """
    params = {name: columns.get(name) for name in HEADER_COLUMNS}
    params.update(
        base_filename=base_filename,
        site=site,
        data_type=data_type,
        header=header_json(header),
        **_dated(capture_date, date_source, upload_time),
    )
    return conn.execute(_header_upsert(conn.dialect.name, only_if_missing), params).rowcount > 0


def mark_file(
    conn: Connection,
    *,
    base_filename: str,
    site: str,
    data_type: str,
    flag: str,
    upload_time: dt.datetime,
    capture_date: dt.datetime | None = None,
    date_source: int = DATE_FROM_UPLOAD,
) -> None:
    """Set one file-existence flag, creating the row if absent, and offer the file's date.

    The date offered is `capture_date` ranked `date_source` (a FITS file's DATE-OBS), else the upload time.
    """
    if flag not in FLAGS:
        raise ValueError(f"unknown flag {flag!r}")
    params = dict(base_filename=base_filename, site=site, data_type=data_type,
                  **_dated(capture_date, date_source, upload_time))
    conn.execute(_flag_upsert(conn.dialect.name, flag), params)


def needs_fits_header(conn: Connection, base_filename: str) -> bool:
    """Whether a FITS file of this exposure should have its header read: the row has no header yet, or
    its date is still an upload time (the header text had no DATE-OBS, and a FITS DATE-OBS ranks higher)."""
    row = conn.execute(
        select(images.c.header.is_(None) | (images.c.capture_date_source == DATE_FROM_UPLOAD)).where(
            images.c.base_filename == base_filename
        )
    ).first()
    return row is None or bool(row[0])


def get_row(conn: Connection, base_filename: str) -> dict[str, Any] | None:
    row = conn.execute(select(images).where(images.c.base_filename == base_filename)).mappings().first()
    return dict(row) if row else None


def delete_exposure(conn: Connection, base_filename: str) -> int:
    """Delete an exposure's row; returns the number of rows removed (0 or 1)."""
    return conn.execute(images.delete().where(images.c.base_filename == base_filename)).rowcount


def site_summaries(conn: Connection) -> list[dict[str, Any]]:
    """One entry per site in the table: its row count and newest sort_date."""
    query = (
        select(images.c.site, func.count().label("exposures"), func.max(images.c.sort_date).label("latest"))
        .group_by(images.c.site)
        .order_by(images.c.site)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def rows_with_header_text(
    conn: Connection, *, site: str, captured_from: dt.datetime, captured_to: dt.datetime, text: str
) -> list[dict[str, Any]]:
    """Rows of one site captured in a window whose header JSON contains `text` (a LIKE, escaped), e.g.
    `"SMARTSTK": "tst00000042"`. The caller checks the parsed header: this only narrows the search."""
    stmt = (
        select(images.c.base_filename, images.c.filter_used, images.c.header)
        .where(images.c.site == site)
        .where(images.c.capture_date.between(captured_from, captured_to))
        .where(images.c.header.contains(text, autoescape=True))
        .order_by(images.c.base_filename)
    )
    return [dict(row) for row in conn.execute(stmt).mappings()]


def _exposure_filters(site: str, filters: Mapping[str, Any], with_preview: bool) -> list[Any]:
    """WHERE clauses of the viewer's filtered list: photonranch-api's filtered search, one site.

    `filters` keys (each optional): user_id, filter_used, data_type, exposure_time_min/max (seconds),
    captured_from / captured_before (naive UTC, half-open), text (a substring of the base filename or
    of the header's OBJECT, case-insensitive).
    """
    c = images.c
    where = [c.site == site]
    if with_preview:
        where.append(c.jpg_medium_exists.is_(True))
    if filters.get("user_id"):
        where.append(c.user_id == filters["user_id"])
    if filters.get("filter_used"):
        where.append(c.filter_used == filters["filter_used"])
    if filters.get("data_type"):
        where.append(c.data_type == filters["data_type"])
    if filters.get("exposure_time_min") is not None:
        where.append(c.exposure_time >= filters["exposure_time_min"])
    if filters.get("exposure_time_max") is not None:
        where.append(c.exposure_time <= filters["exposure_time_max"])
    if filters.get("captured_from") is not None:
        where.append(c.capture_date >= filters["captured_from"])
    if filters.get("captured_before") is not None:
        where.append(c.capture_date < filters["captured_before"])
    if filters.get("text"):
        needle = str(filters["text"])
        # OBJECT's value in the header JSON (json.dumps spacing, as header_json writes it), any case.
        escaped = "".join(f"\\{ch}" if not ch.isalnum() and not ch.isspace() else ch for ch in needle)
        where.append(c.base_filename.icontains(needle, autoescape=True)
                     | c.header.regexp_match(f'"OBJECT": "[^"]*{escaped}', flags="i"))
    return where


def exposure_page(
    conn: Connection,
    site: str,
    limit: int,
    *,
    filters: Mapping[str, Any] | None = None,
    before: tuple[dt.datetime, int] | None = None,
    with_preview: bool = True,
) -> list[dict[str, Any]]:
    """One page of a site's rows, newest first by (sort_date, image_id), after the cursor `before`.

    The cursor is the last row of the previous page, so rows inserted meanwhile never shift a page and
    equal sort_dates are never skipped or repeated. Served by the (site, jpg_medium_exists, sort_date)
    index read backwards; the filters are checked on the rows it yields.
    """
    c = images.c
    query = select(images).where(*_exposure_filters(site, filters or {}, with_preview))
    if before is not None:
        date, image_id = before
        query = query.where((c.sort_date < date) | ((c.sort_date == date) & (c.image_id < image_id)))
    query = query.order_by(c.sort_date.desc(), c.image_id.desc()).limit(limit)
    return [dict(row) for row in conn.execute(query).mappings()]


def count_exposures(
    conn: Connection, site: str, *, filters: Mapping[str, Any] | None = None, with_preview: bool = True
) -> int:
    """How many rows the filtered list of a site holds in all (its pages together)."""
    query = select(func.count()).select_from(images).where(*_exposure_filters(site, filters or {}, with_preview))
    return int(conn.execute(query).scalar_one())


def exposure_facets(conn: Connection, site: str) -> dict[str, list[Any]]:
    """The values the viewer's filters offer for a site: its users, filters and data types."""
    c = images.c
    users = conn.execute(
        select(c.user_id, func.max(c.username)).where(c.site == site, c.user_id.is_not(None))
        .group_by(c.user_id).order_by(func.max(c.username), c.user_id)
    ).all()
    filters = conn.execute(
        select(c.filter_used).where(c.site == site, c.filter_used.is_not(None)).distinct().order_by(c.filter_used)
    ).scalars().all()
    data_types = conn.execute(
        select(c.data_type).where(c.site == site, c.data_type.is_not(None)).distinct().order_by(c.data_type)
    ).scalars().all()
    return {
        "users": [{"user_id": user_id, "username": username} for user_id, username in users],
        "filters": list(filters),
        "data_types": list(data_types),
    }

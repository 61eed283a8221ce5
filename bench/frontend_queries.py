"""The reads photonranch-api makes on `images`, written the way its `api/db.py` writes them.

photonranch-api queries the table through its own SQLAlchemy model (every column but ours,
`capture_date_source`); these functions issue the same statements: the same filters, spelled the same
way (`jpg_medium_exists IS true` from `.is_(True)`, but `= true` from `== True` in the all-sites
query), the same ordering and limits, and the filtered search's values as the strings a query string
carries. The scale benchmark times them, and the migration tests check that each can be answered from
an index. When photonranch-api changes a query, change it here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.sql import Select

import db

IMAGE = db.images.c
# The columns photonranch-api's model maps (it selects them all, header included).
IMAGE_COLUMNS = tuple(c for c in db.images.c if c.name != "capture_date_source")


def _images() -> Select:
    return select(*IMAGE_COLUMNS)


def latest_site_images_query(site: str, number_of_images: int, user_id: str | None = None) -> Select:
    """`get_latest_site_images`: a site's newest images with a medium JPG, optionally one user's."""
    filters = [IMAGE.site == site, IMAGE.jpg_medium_exists.is_(True)]
    if user_id:
        filters.append(IMAGE.user_id == user_id)
    return _images().order_by(IMAGE.sort_date.desc()).where(*filters).limit(number_of_images)


def latest_image_of_site_query(site: str) -> Select:
    """One step of `get_latest_image_all_sites`, which runs it for every site, one after the other."""
    return (
        _images()
        .where(IMAGE.site == site)
        .where(IMAGE.jpg_medium_exists == True)  # noqa: E712 - photonranch-api's spelling, rendered `= true`
        .order_by(IMAGE.sort_date.desc())
        .limit(1)
    )


def files_within_date_range_query(site: str, start: dt.datetime, end: dt.datetime, fits_size: str) -> Select:
    """`get_files_within_date_range`: a site's exposures captured in [start, end], by FITS size."""
    filters = [IMAGE.site == site, IMAGE.capture_date >= start, IMAGE.capture_date <= end]
    if fits_size == "small":
        filters.append(IMAGE.fits_10_exists.is_(True))
    elif fits_size == "large":
        filters.append(IMAGE.fits_01_exists.is_(True))
    return _images().where(*filters)


# Query-string parameter of the filtered search -> the filter it adds.
SEARCH_FILTERS = {
    "username": lambda v: IMAGE.username == v,
    "user_id": lambda v: IMAGE.user_id == v,
    "site": lambda v: IMAGE.site == v,
    "filter": lambda v: IMAGE.filter_used == v,
    "exposure_time_min": lambda v: IMAGE.exposure_time >= v,
    "exposure_time_max": lambda v: IMAGE.exposure_time <= v,
    "start_date": lambda v: IMAGE.capture_date >= v,
    "end_date": lambda v: IMAGE.capture_date <= v,
    "filename": lambda v: IMAGE.base_filename.like(v),
}


def filtered_images_query(params: Mapping[str, str]) -> Select:
    """`filtered_images_query_handler`: any of the filters, a medium JPG, newest first, no limit."""
    filters = [make(params[name]) for name, make in SEARCH_FILTERS.items() if name in params]
    filters.append(IMAGE.jpg_medium_exists.is_(True))
    return _images().order_by(IMAGE.sort_date.desc()).where(*filters)


def fits_header_query(base_filename: str) -> Select:
    """`get_fits_header_from_db`: the header JSON of one exposure."""
    return select(IMAGE.header).where(IMAGE.base_filename == base_filename)

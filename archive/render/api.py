"""The image API's core: any archived exposure as a JPEG of the size asked, cached in S3.

`render_request(target, query)` does, in order:

1. parse the parameters (archive.render.params; a 400 names the bad one) and the path's base filename
   or pinned filename;
2. find the source objects (archive.render.sources): one file, or the red/green/blue frames of a colour
   set, each with its ETag, checked against the byte budget;
3. derive the cache key `thumbnails/{base_filename}/{sha256}.jpg` from what changes the picture (the
   normalised parameters, the sources' keys and ETags and RENDER_VERSION: archive.render.params), and
   HEAD it: a hit costs no source read at all;
4. on a miss, render (archive.formats.fits_data + archive.render.picture, or the medium JPG scaled) and
   PUT it with `Cache-Control: public, max-age=31536000, immutable` (the key changes whenever the pixels
   would) and its size in the object's metadata; the `thumbnails/` prefix expires by a lifecycle rule
   (`archive bucket configure`), so the cache cleans itself;
5. sign a GET link whose lifetime is honest about the signing credentials (archive.render.presign).

One render per picture: in a process, concurrent requests for one key take turns on a lock of that
key (`one_at_a_time`), and whoever comes second finds the first one's object with its HEAD. Across
processes (Lambdas) the PUT is conditional (`If-None-Match: *`, S3's conditional write): two Lambdas
that missed together both render, but only the first write lands and the other answers with the
object already there, so the cached object never changes under a link already handed out.

Failures come out as `RenderError`s with their HTTP status: 404 unknown exposure or missing source,
413 over a budget (checked from listings and headers before any data is read), 422 unrenderable data
(whatever a source's bytes make the decoders raise, naming the file: `blamed_on`), 429 AWS throttling
us, 502/504 AWS or database trouble, 504 a render past its deadline (RENDER_DEADLINE_SECONDS, checked
between bands, tiles and chunks: nothing runs on after the answer).
"""

from __future__ import annotations

import bz2
import contextlib
import datetime as dt
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from botocore.exceptions import ClientError

from archive import errors, lazy
from archive.aws import client, is_aws_error, is_missing_object
from archive.failures import classify, is_upstream
from archive.formats.filenames import ParsedName
from archive.formats.fits_data import reduce_fits
from archive.formats.jpeg import fit_size
from archive.render import picture
from archive.render.params import (
    NotFound,
    RenderError,
    RenderParams,
    RenderTimeout,
    SourceRef,
    Throttled,
    TooLarge,
    Unrenderable,
    UpstreamFailed,
    UpstreamTimeout,
    cache_key,
    parse_params,
)
from archive.render.presign import presigned_get
from archive.render.sources import (
    COLOURS,
    check_bytes,
    choose,
    dimensions,
    fits_dimensions,
    list_files,
    matched_frames,
    parse_target,
    pick,
    pinned,
    smallest_filling,
    source_kind,
)
from archive.settings import Settings, get_settings

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Rendered:
    key: str
    url: str
    expires_at: dt.datetime
    width: int
    height: int
    cached: bool
    redirect: bool  # the request asked for the picture itself (image=true)
    source: str = ""  # what it was rendered from: jpg, small, large or colour (sources.source_kind)

    def as_json(self) -> dict[str, object]:
        return {"url": self.url, "expires_at": self.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "width": self.width, "height": self.height, "cached": self.cached}


def as_render_error(exc: BaseException) -> RenderError | None:
    """The API's answer to a failure: the data's own trouble (413/422) or AWS and database trouble,
    as `archive.failures.classify` sees it (404, 429, 504, 502). None for a bug of ours: it stays a 500."""
    if isinstance(exc, RenderError):
        return exc
    if isinstance(exc, errors.TooLarge):
        return TooLarge(exc.reason)
    if isinstance(exc, errors.Unreadable):
        return Unrenderable(exc.reason)
    if not is_upstream(exc):
        return None
    failure = classify(exc)
    if isinstance(failure, errors.ObjectMissing):
        return NotFound("a source file disappeared while it was being read; try again")
    if isinstance(failure, errors.Throttled):
        return Throttled("AWS is throttling the image service; retry in a second", retry_after=1)
    database = not is_aws_error(exc)
    if isinstance(failure, errors.TimedOut):
        return UpstreamTimeout("the database did not answer in time" if database
                               else f"AWS did not answer in time: {exc}")
    return UpstreamFailed(f"database unavailable: {type(exc).__name__}" if database else f"AWS request failed: {exc}")


@contextlib.contextmanager
def upstream_errors() -> Iterator[None]:
    """Whatever the work below raises, as the API's statuses (translated here, once)."""
    try:
        yield
    except Exception as exc:
        answer = as_render_error(exc)
        if answer is None or answer is exc:
            raise
        raise answer from exc


def colour_sources(bucket: str, base_filename: str, params: RenderParams) -> tuple[SourceRef, ...]:
    """The red, green and blue frames' FITS files: named by r/g/b, or matched by smart stack and filter."""
    names = dict(zip(COLOURS, params.channels, strict=True)) if params.channels else matched_frames(base_filename)
    kinds = (params.source,) if params.source in ("small", "large") else ("small", "large")
    refs = []
    for colour, name in names.items():
        files = list_files(bucket, name)
        candidates = [r for r in (pick(files, kind) for kind in kinds) if r is not None]
        if not candidates:
            raise NotFound(f"the {colour} frame {name} has no {' or '.join(kinds)} FITS file",
                           missing=colour, base_filename=name)
        refs.append(smallest_filling(candidates, lambda ref: fits_dimensions(bucket, ref), params.box))
    return tuple(refs)


def find_sources(bucket: str, base_filename: str, pinned_name: ParsedName | None, params: RenderParams,
                 settings: Settings) -> tuple[tuple[SourceRef, ...], bool]:
    """(the objects to read — one, or red/green/blue — and whether they are FITS), within the byte budget."""
    if params.color:
        sources, is_fits = colour_sources(bucket, base_filename, params), True
    elif pinned_name is not None:
        ref, is_fits = pinned(bucket, pinned_name, params)
        sources = (ref,)
    else:
        files = list_files(bucket, base_filename)
        ref, is_fits = choose(files, params, lambda found: dimensions(bucket, found), base_filename)
        sources = (ref,)
    for ref in sources:
        check_bytes(ref, source_budget(is_fits, settings))
    return sources, is_fits


def source_budget(is_fits: bool, settings: Settings) -> int:
    """Bytes a source may have. FITS is streamed (memory is one band whatever its size), so its budget
    is about time; a JPG is decoded from memory, so it also fits the thumbnails' byte budget
    (THUMBNAIL_MAX_BYTES), which with the decode budget keeps a render under 300 MiB."""
    if is_fits:
        return settings.render_max_source_bytes
    return min(settings.render_max_source_bytes, settings.thumbnail_max_bytes)


def cached_size(bucket: str, key: str) -> tuple[int, int] | None:
    """(width, height) of an already rendered picture, or None when it is not in the cache."""
    try:
        head = client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_missing_object(exc):
            return None
        raise
    meta = head.get("Metadata") or {}
    try:
        return int(meta["width"]), int(meta["height"])
    except (KeyError, ValueError):
        return None  # written by something else: render it again over it


def deadline(filename: str, end: float, seconds: float) -> Callable[[], None]:
    """The checkpoint the reduction calls between bands, tiles and chunks: past `end` (monotonic; the
    render started `seconds` before it) it stops the work with a 504 naming the source. Steps that
    cannot be interrupted (a tile, a bzip2 block, a JPEG decode) are bounded by the budgets instead."""

    def check() -> None:
        if time.monotonic() > end:
            raise RenderTimeout(f"rendering {filename} took longer than the {seconds:g} s allowed "
                                "(RENDER_DEADLINE_SECONDS); try a smaller source (source=small)",
                                filename=filename)

    return check


@contextlib.contextmanager
def blamed_on(filename: str) -> Iterator[None]:
    """Whatever a source's bytes make the decoders raise, as a 413/422 naming the file. AWS and database
    failures and the API's own answers pass through; an unexpected exception is logged with its
    traceback (it may be a bug of ours) and answered 422: it came from this file's data."""
    try:
        yield
    except (TooLarge, Unrenderable) as exc:
        if "filename" in exc.details:
            raise
        raise type(exc)(f"{filename}: {exc.message}", **exc.details, filename=filename) from exc
    except RenderError:
        raise
    except errors.TooLarge as exc:
        raise TooLarge(f"{filename}: {exc.reason}", filename=filename) from exc
    except errors.Unreadable as exc:
        raise Unrenderable(f"{filename} cannot be rendered: {exc.reason}", filename=filename) from exc
    except (ValueError, TypeError, OverflowError, ArithmeticError, IndexError, KeyError) as exc:
        if is_upstream(exc):
            raise
        logger.exception("unexpected error decoding a source", extra={"filename": filename})
        raise Unrenderable(f"{filename} cannot be rendered: {type(exc).__name__}", filename=filename) from exc


def render_picture(bucket: str, sources: tuple[SourceRef, ...], is_fits: bool, params: RenderParams,
                   settings: Settings) -> bytes:
    s3 = client("s3")
    if not is_fits:
        ref = sources[0]
        with blamed_on(ref.filename):
            # At most its budget (check_bytes saw its listed size; a larger body is not read past it).
            budget = source_budget(False, settings)
            data = s3.get_object(Bucket=bucket, Key=ref.key)["Body"].read(budget + 1)
            if len(data) > budget:
                raise TooLarge(f"{ref.filename} is larger than the budget of {budget} bytes",
                               filename=ref.filename)
            image = picture.jpg_picture(data, params, settings.render_max_pixels)
        return picture.finish(image, params)
    frames = []
    end = time.monotonic() + settings.render_deadline_seconds
    for ref in sources:
        body = s3.get_object(Bucket=bucket, Key=ref.key)["Body"]
        ext = ref.filename.split(".", 1)[1]
        try:
            with blamed_on(ref.filename):
                frames.append(reduce_fits(body, ext, lambda w, h: fit_size(w, h, *params.box),
                                          max_pixels=settings.render_max_pixels,
                                          header_limit=settings.fits_header_max_bytes,
                                          max_axis=settings.render_max_axis,
                                          max_data_bytes=settings.render_max_data_bytes,
                                          max_tile_bytes=settings.render_max_tile_bytes,
                                          source_bytes=ref.size,
                                          checkpoint=deadline(ref.filename, end, settings.render_deadline_seconds)))
        finally:
            body.close()
    with blamed_on(", ".join(ref.filename for ref in sources)):
        image = picture.fits_picture(frames, params)
    return picture.finish(image, params)


def lost_the_race(exc: ClientError) -> bool:
    """S3 refused a conditional write because the object is there: 412, or 409 when two writes of the
    key were under way at once."""
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


def store(bucket: str, key: str, jpeg: bytes, sources: tuple[SourceRef, ...],
          settings: Settings) -> tuple[int, int]:
    """PUT the picture unless another writer stored this key first; (width, height) of what is stored."""
    width, height = lazy.Image.open(io.BytesIO(jpeg)).size
    request = dict(
        Bucket=bucket, Key=key, Body=jpeg, ContentType="image/jpeg",
        CacheControl=settings.thumbnail_cache_control,
        Metadata={"width": str(width), "height": str(height), "sources": " ".join(s.filename for s in sources)},
    )
    s3 = client("s3")
    try:
        s3.put_object(**request, IfNoneMatch="*")
    except ClientError as exc:
        if not lost_the_race(exc):
            raise
        theirs = cached_size(bucket, key)
        if theirs is not None:
            logger.info("render already stored by another writer", extra={"key": key})
            return theirs
        s3.put_object(**request)  # an object without our metadata (written by something else): ours wins
    return width, height


_flights: dict[str, tuple[threading.Lock, int]] = {}
_flights_guard = threading.Lock()


@contextlib.contextmanager
def one_at_a_time(key: str) -> Iterator[bool]:
    """Hold the process's lock of `key` (made on first use, dropped when nobody holds or waits for it);
    yields whether another request held it first (and so may have done the work already)."""
    with _flights_guard:
        lock, users = _flights.get(key, (threading.Lock(), 0))
        _flights[key] = (lock, users + 1)
    try:
        waited = not lock.acquire(blocking=False)
        if waited:
            lock.acquire()
        try:
            yield waited
        finally:
            lock.release()
    finally:
        with _flights_guard:
            lock, users = _flights[key]
            if users == 1:
                del _flights[key]
            else:
                _flights[key] = (lock, users - 1)


def render_request(target: str, query: Mapping[str, str] | None, now: dt.datetime | None = None) -> Rendered:
    """Answer `GET /thumbnails/{target}?{query}` (see the module docstring)."""
    settings = get_settings()
    params = parse_params(query)
    base_filename, pinned_name = parse_target(target)
    bucket = settings.bucket
    with upstream_errors():
        sources, is_fits = find_sources(bucket, base_filename, pinned_name, params, settings)
        key = cache_key(base_filename, params, sources, is_fits)
        size = cached_size(bucket, key)
        cached = size is not None
        if size is None:
            with one_at_a_time(key) as waited:
                size = cached_size(bucket, key) if waited else None  # rendered by the request waited for
                cached = size is not None
                if size is None:
                    jpeg = render_picture(bucket, sources, is_fits, params, settings)
                    size = store(bucket, key, jpeg, sources, settings)
                    logger.info("rendered", extra={"key": key, "sources": [s.key for s in sources], "size": size})
        url, expires_at = presigned_get(bucket, key, settings.render_url_seconds,
                                        settings.render_assumed_credential_seconds, now)
    return Rendered(key, url, expires_at, size[0], size[1], cached, params.image,
                    source_kind(sources, is_fits, params.color))


def rehearse() -> None:
    """A tiny frame rendered in memory through the real code, touching no AWS and no database: as plain,
    .bz2 and .fz FITS, as a colour composite, and as a JPG source. The first use of numpy, astropy's FITS
    reader, Pillow's codecs and the label font happens here, before a SnapStart snapshot
    (archive/snapstart.py), instead of in the first request."""
    np, fits = lazy.np, lazy.fits
    params = RenderParams(width=32, height=32, label="warm-up")
    frame = np.linspace(0, 1000, 64 * 48, dtype=np.float32).reshape(48, 64)
    plain, packed = io.BytesIO(), io.BytesIO()
    fits.PrimaryHDU(frame).writeto(plain)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(frame, compression_type="RICE_1")]).writeto(packed)
    sources = {"fits": plain.getvalue(), "fits.bz2": bz2.compress(plain.getvalue()), "fits.fz": packed.getvalue()}
    reduced = [reduce_fits(io.BytesIO(data), ext, lambda w, h: fit_size(w, h, *params.box), max_pixels=10**6,
                           header_limit=2880 * 10, bz2_workers=1) for ext, data in sources.items()]
    jpg = picture.finish(picture.fits_picture(reduced[:1], params), params)
    picture.finish(picture.fits_picture(reduced, params), params)
    picture.finish(picture.jpg_picture(jpg, params, 10**6), params)

"""`python -m archive simulate-site`: an observatory site producing exposures and uploading them.

Each exposure is a small star field with the header a Photon Ranch site writes (DATE-OBS, RA/DEC in
several spellings, FILTER, EXPTIME, AIRMASS, ALTITUDE/AZIMUTH, USERID/USERNAME, SMARTSTK/SSTKNUM/
SSTKLEN, OBJECT…), turned into the files sites send, and uploaded the way sites do: a presigned POST
per file (what photonranch-api's upload endpoint hands out), as multipart/form-data over plain HTTP.
Frame counters continue after the highest one already in the bucket for that site, instrument and
night, so repeated runs add exposures instead of overwriting them.

`--files` letters (default per directory: data `hjfF`, info-images `hjf`, allsky `j`):

  h  header text, the FITS cards as 80-character cards   {base}-{type}00.txt
  j  medium JPG, stretched for display (the archive makes the thumbnail)   {base}-{type}10.jpg
  t  thumbnail JPG made by the site itself              {base}-{type}11.jpg
  f  small FITS, 2×2 binned reduced image               {base}-{type}10.fits
  F  large FITS, the raw frame, bz2-compressed          {base}-{type}00.fits.bz2

Generation is pure (numpy + astropy + Pillow, seeded); only `upload_*` and `simulate` touch the network.
"""

from __future__ import annotations

import bz2
import datetime as dt
import io
import math
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits
from PIL import Image
from tqdm import tqdm

from archive.aws import client
from archive.formats.filenames import parse_key
from archive.settings import get_settings

FILE_LETTERS = {
    "h": ("00", "txt", "text/plain"),
    "j": ("10", "jpg", "image/jpeg"),
    "t": ("11", "jpg", "image/jpeg"),
    "f": ("10", "fits", "application/fits"),
    "F": ("00", "fits.bz2", "application/x-bzip2"),
}
DEFAULT_FILES = {"data": "hjfF", "info-images": "hjf", "allsky": "j"}
DEFAULT_INSTRUMENT = {"data": "kb001ms", "info-images": "kb001ms", "allsky": "as001"}
IMAGE_SHAPE = (192, 256)  # rows, columns: small so a demo of a hundred exposures stays fast

# Site latitude/longitude (degrees, east positive) for plausible altitudes; unknown sites get tst's.
SITE_LOCATIONS = {"tst": (34.43, -119.69), "mrc": (34.46, -119.68), "sro": (37.07, -119.41), "saf": (35.55, -105.87)}
# A few bright targets: name, RA hours, Dec degrees.
TARGETS = (
    ("M31", 0.7123, 41.269),
    ("M42", 5.5881, -5.391),
    ("M45", 3.7833, 24.117),
    ("M13", 16.6949, 36.460),
    ("M51", 13.4980, 47.195),
    ("M57", 18.8931, 33.029),
    ("M81", 9.9259, 69.065),
    ("NGC7000", 20.9794, 44.330),
    ("M27", 19.9934, 22.721),
    ("M101", 14.0535, 54.349),
)
FILTERS = ("ip", "rp", "gp", "w", "Ha", "O3")
USERS = (("google-oauth2|100354044221813550027", "Wayne Rosing"), ("auth0|5f8a2c6e1d", "Tim Beccue"))


# ---------------------------------------------------------------------------------------------------
# Sky geometry (good to a degree or so; enough for plausible headers without astropy's IERS tables).


def local_sidereal_hours(moment: dt.datetime, longitude_deg: float) -> float:
    days = (moment.replace(tzinfo=None) - dt.datetime(2000, 1, 1, 12)).total_seconds() / 86_400
    gmst = 18.697374558 + 24.06570982441908 * days
    return (gmst + longitude_deg / 15) % 24


def alt_az(ra_hours: float, dec_deg: float, latitude_deg: float, lst_hours: float) -> tuple[float, float]:
    """Altitude and azimuth (degrees, azimuth from north through east) of a target."""
    ha = math.radians((lst_hours - ra_hours) * 15)
    dec, lat = math.radians(dec_deg), math.radians(latitude_deg)
    sin_alt = math.sin(dec) * math.sin(lat) + math.cos(dec) * math.cos(lat) * math.cos(ha)
    alt = math.asin(max(-1.0, min(1.0, sin_alt)))
    north = math.sin(dec) * math.cos(lat) - math.cos(dec) * math.sin(lat) * math.cos(ha)
    az = math.atan2(-math.cos(dec) * math.sin(ha), north)
    return math.degrees(alt), math.degrees(az) % 360


def airmass(altitude_deg: float) -> float:
    """Pickering (2002): finite at the horizon, 1.0 at the zenith."""
    h = max(altitude_deg, 0.0)
    return 1 / math.sin(math.radians(h + 244 / (165 + 47 * h**1.1)))


def sexagesimal(value: float, signed: bool) -> str:
    sign = "-" if value < 0 else ("+" if signed else "")
    value = abs(value)
    whole = int(value)
    minutes = int((value - whole) * 60)
    seconds = ((value - whole) * 60 - minutes) * 60
    return f"{sign}{whole:02d}:{minutes:02d}:{seconds:04.1f}"


# ---------------------------------------------------------------------------------------------------
# Exposures.


@dataclass(frozen=True)
class Exposure:
    s3_directory: str
    base_filename: str
    data_type: str
    header: Any  # astropy.io.fits.Header of the raw frame
    image: np.ndarray  # raw frame, uint16

    @property
    def site(self) -> str:
        return self.base_filename.split("-", 1)[0]

    def key(self, letter: str) -> str:
        reduction, ext, _ = FILE_LETTERS[letter]
        return f"{self.s3_directory}/{self.base_filename}-{self.data_type}{reduction}.{ext}"


@dataclass(frozen=True)
class SimFile:
    key: str
    body: bytes
    content_type: str


# How bright a star of colour index t (0 blue-white … 1 red) is through each colour's filters.
BAND_RESPONSE = {"red": (0.5, 1.0), "green": (0.8, 0.8), "blue": (1.2, 0.3)}
FILTER_BANDS = {"R": "red", "rp": "red", "ip": "red", "Ha": "red", "V": "green", "G": "green", "gp": "green",
                "OIII": "green", "O3": "green", "B": "blue", "SII": "blue"}


def star_field(rng: np.random.Generator, shape: tuple[int, int] = IMAGE_SHAPE, stars: int = 40, *,
               sky: np.random.Generator | None = None, band: str | None = None) -> np.ndarray:
    """Sky background with read noise and Gaussian stars, as a raw uint16 frame.

    `sky` places the stars instead of `rng` (frames of one smart stack share it: the same stars in
    every filter); `band` (red/green/blue) scales each star by its colour through that band.
    """
    rows, cols = shape
    image = rng.normal(1000, 25, size=shape)
    y, x = np.mgrid[0:rows, 0:cols]
    stars_rng = sky or rng
    for _ in range(stars):
        cy, cx = stars_rng.uniform(0, rows), stars_rng.uniform(0, cols)
        flux = stars_rng.pareto(1.5) * 3000 + 500
        sigma = stars_rng.uniform(1.2, 2.0)
        colour = stars_rng.uniform(0, 1)
        if band is not None:
            blue_end, red_end = BAND_RESPONSE[band]
            flux *= blue_end + (red_end - blue_end) * colour
        image += flux * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
    return np.clip(image, 0, 65535).astype(np.uint16)


def make_exposure(
    *,
    s3_directory: str,
    site: str,
    instrument: str,
    night: str,
    counter: int,
    data_type: str,
    moment: dt.datetime,
    rng: np.random.Generator,
    smartstack: tuple[str, int, int] | None = None,
    filter_name: str | None = None,
    sky_seed: int | None = None,
) -> Exposure:
    """One exposure: a star field and the header a site writes for it.

    `smartstack` is (stack id, number in the stack from 1, stack length), or None for a single frame.
    `filter_name` fixes the filter (else one is drawn); `sky_seed` fixes where the stars are, so the
    frames of a colour set show one sky.
    """

    base = f"{site}-{instrument}-{night}-{counter:08d}"
    latitude, longitude = SITE_LOCATIONS.get(site, SITE_LOCATIONS["tst"])
    lst = local_sidereal_hours(moment, longitude)
    # The highest target from the list, jittered a little as pointing is.
    name, ra, dec = max(TARGETS, key=lambda t: alt_az(t[1], t[2], latitude, lst)[0])
    ra = (ra + rng.normal(0, 0.002)) % 24
    dec = dec + rng.normal(0, 0.03)
    altitude, azimuth = alt_az(ra, dec, latitude, lst)
    user_id, username = USERS[int(rng.integers(len(USERS)))]
    sky = np.random.default_rng(sky_seed) if sky_seed is not None else None
    image = star_field(rng, sky=sky, band=FILTER_BANDS.get(filter_name or "") if sky is not None else None)
    stack_id, stack_num, stack_len = smartstack or ("no", "no", "no")
    cards = [
        ("DATE-OBS", moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "Start date and time of observation"),
        ("DATE", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"), "Date FITS file was written"),
        ("EXPTIME", float(rng.choice([5.0, 10.0, 30.0, 60.0])), "[s] Requested exposure length"),
        ("FILTER", filter_name or str(rng.choice(FILTERS)), "Filter type"),
        ("OBJECT", name, "Target object name"),
        ("IMAGETYP", "Light Frame" if data_type != "EF" else "Focus Frame", "Type of image"),
        ("RA", sexagesimal(ra, signed=False), "[hms] Telescope right ascension"),
        ("DEC", sexagesimal(dec, signed=True), "[dms] Telescope declination"),
        ("RAhrs", round(ra, 6), "[hrs] Telescope right ascension"),
        ("RADEG", round(ra * 15, 5), "[deg] Telescope right ascension"),
        ("DECDEG", round(dec, 5), "[deg] Telescope declination"),
        ("OBJCTRA", sexagesimal(ra, signed=False).replace(":", " "), "[hms] Object right ascension"),
        ("OBJCTDEC", sexagesimal(dec, signed=True).replace(":", " "), "[dms] Object declination"),
        ("ALTITUDE", round(altitude, 4), "[deg] Altitude"),
        ("AZIMUTH", round(azimuth, 4), "[deg] Azimuth"),
        ("AIRMASS", round(airmass(altitude), 4) if altitude > 0 else "N/A", "Effective mean airmass"),
        ("SITEID", site, "Site ID"),
        ("SITE", site.upper(), "Site name"),
        ("LATITUDE", latitude, "[deg] Site latitude"),
        ("LONGITUD", longitude, "[deg] Site longitude"),
        ("TELESCOP", "PW_L600", "Telescope"),
        ("INSTRUME", instrument, "Camera"),
        ("CCD-TEMP", round(float(rng.normal(-10, 0.1)), 2), "[C] CCD temperature"),
        ("XBINING", 1, "Pixel binning in x"),
        ("YBINING", 1, "Pixel binning in y"),
        ("GAIN", 1.2, "[e-/ADU] Pixel gain"),
        ("USERID", user_id, "User ID"),
        ("USERNAME", username, "Username"),
        ("SMARTSTK", stack_id, "Smart stack ID"),
        ("SSTKNUM", str(stack_num), "Number of this frame in the smart stack"),
        ("SSTKLEN", str(stack_len), "Length of the smart stack"),
        ("FRAMENUM", counter, "Frame counter"),
        ("ORIGNAME", f"{base}-{data_type}00.fits", "Original filename"),
    ]
    header = fits.PrimaryHDU(image).header
    for keyword, value, comment in cards:
        header[keyword] = (value, comment)
    header.add_comment("Simulated by python -m archive simulate-site")
    return Exposure(s3_directory, base, data_type, header, image)


def _fits_bytes(image: np.ndarray, header: Any) -> bytes:
    out = io.BytesIO()
    fits.PrimaryHDU(image, header=header).writeto(out, output_verify="silentfix")
    return out.getvalue()


def stretched_jpg(image: np.ndarray, height: int | None = None) -> bytes:
    """An asinh stretch between sky and bright stars, as sites make their preview JPGs."""

    data = image.astype(np.float64)
    low, high = np.percentile(data, [25, 99.7])
    scaled = np.clip((data - low) / max(high - low, 1.0), 0, 1)
    stretched = np.arcsinh(10 * scaled) / np.arcsinh(10)
    picture = Image.fromarray((stretched * 255).astype(np.uint8), mode="L").convert("RGB")
    if height is not None:
        picture = picture.resize((round(picture.width * height / picture.height), height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=85)
    return out.getvalue()


def render_files(exposure: Exposure, letters: str) -> list[SimFile]:
    """The files a site uploads for `exposure`, in `--files` order."""
    files = []
    for letter in letters:
        _, _, content_type = FILE_LETTERS[letter]
        if letter == "h":
            body = exposure.header.tostring(endcard=True, padding=False).encode("ascii")
        elif letter == "j":
            body = stretched_jpg(exposure.image)
        elif letter == "t":
            body = stretched_jpg(exposure.image, height=128)
        elif letter == "f":
            binned = exposure.image.reshape(IMAGE_SHAPE[0] // 2, 2, IMAGE_SHAPE[1] // 2, 2).mean(axis=(1, 3))
            header = exposure.header.copy()
            header["XBINING"], header["YBINING"] = 2, 2
            body = _fits_bytes(binned.astype(np.float32), header)
        else:  # "F"
            body = bz2.compress(_fits_bytes(exposure.image, exposure.header), compresslevel=5)
        files.append(SimFile(exposure.key(letter), body, content_type))
    return files


def check_letters(letters: str) -> str:
    unknown = sorted(set(letters) - set(FILE_LETTERS))
    if unknown or not letters:
        raise ValueError(f"--files takes letters from {''.join(FILE_LETTERS)}, got {letters!r}")
    return "".join(dict.fromkeys(letters))


# ---------------------------------------------------------------------------------------------------
# Uploading, as a site does: a presigned POST per file.


def multipart_form(fields: dict[str, str], filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body with the policy fields first and the file last, as S3 requires."""
    boundary = f"----archive-sim-{uuid.uuid4().hex}"
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class UploadError(RuntimeError):
    pass


def presigned_post(s3: Any, bucket: str, key: str, expires_in: int = 3600) -> dict[str, Any]:
    """What photonranch-api's upload endpoint returns: a URL and the signed form fields."""
    return s3.generate_presigned_post(
        Bucket=bucket, Key=key, Conditions=[["content-length-range", 1, 2_000_000_000]], ExpiresIn=expires_in
    )


def post_file(post: dict[str, Any], file: SimFile, timeout: float = 60) -> int:
    body, content_type = multipart_form(post["fields"], file.key.rsplit("/", 1)[-1], file.body, file.content_type)
    request = urllib.request.Request(post["url"], data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        raise UploadError(f"POST {file.key}: HTTP {exc.code}: {exc.read()[:300]!r}") from None


@dataclass(frozen=True)
class UploadRecord:
    key: str
    size_bytes: int
    started_at: float
    finished_at: float  # time.time() when S3 answered: the object exists from here on


@dataclass
class SimulationResult:
    exposures: list[Exposure] = field(default_factory=list)
    uploads: list[UploadRecord] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def size_bytes(self) -> int:
        return sum(u.size_bytes for u in self.uploads)


def next_counter(s3: Any, bucket: str, prefix: str) -> int:
    """One more than the highest frame counter under `prefix` (`{dir}/{site}-{instrument}-{night}-`)."""
    highest = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            counter = obj["Key"][len(prefix) :].split("-", 1)[0]
            if counter.isdigit():
                highest = max(highest, int(counter))
    return highest + 1


def write_channel_metadata(site: str, channel: int, base_filename: str) -> None:
    """What photonranch-api's info-image upload endpoint does before the site uploads."""

    client("dynamodb").update_item(
        TableName=get_settings().info_images_table,
        Key={"pk": {"S": f"{site}#metadata"}},
        UpdateExpression=f"SET channel{channel} = :base",
        ExpressionAttributeValues={":base": {"S": base_filename}},
    )


@dataclass(frozen=True)
class SiteRun:
    site: str = "tst"
    exposures: int = 1
    files: str | None = None
    s3_directory: str = "data"
    channel: int = 1
    data_type: str = "EX"
    smartstack: int = 0
    filters: tuple[str, ...] = ()  # cycled through, one per exposure; a smart stack then shows one sky
    instrument: str | None = None
    start_counter: int | None = None
    seed: int | None = None
    parallel: int = 4

    @property
    def letters(self) -> str:
        return check_letters(self.files or DEFAULT_FILES[self.s3_directory])


def validate(run: SiteRun, night: str) -> None:
    """Fail before generating anything when the names would be rejected by the archive."""

    if run.s3_directory not in DEFAULT_FILES:
        raise ValueError(f"--s3dir must be one of {', '.join(DEFAULT_FILES)}")
    if not 1 <= run.channel <= 3:
        raise ValueError("--channel must be 1, 2 or 3")
    if run.exposures < 0 or run.smartstack < 0:
        raise ValueError("--exposures and --smartstack must not be negative")
    instrument = run.instrument or DEFAULT_INSTRUMENT[run.s3_directory]
    parse_key(f"{run.s3_directory}/{run.site}-{instrument}-{night}-00000001-{run.data_type}00.txt")
    run.letters  # noqa: B018 - raises on unknown letters


def simulate(
    run: SiteRun,
    *,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    progress: bool = True,
) -> SimulationResult:
    """Generate and upload `run.exposures` exposures; returns what was sent and when it landed."""

    start = time.time()
    moment = now().astimezone(dt.UTC).replace(tzinfo=None)
    night = moment.strftime("%Y%m%d")
    validate(run, night)
    instrument = run.instrument or DEFAULT_INSTRUMENT[run.s3_directory]
    s3 = client("s3")
    bucket = get_settings().bucket
    prefix = f"{run.s3_directory}/{run.site}-{instrument}-{night}-"
    first = run.start_counter if run.start_counter is not None else next_counter(s3, bucket, prefix)
    rng = np.random.default_rng(run.seed)
    result = SimulationResult()
    bar = tqdm(total=run.exposures * len(run.letters), unit="file", desc=f"{run.site} upload", disable=not progress)

    def send(file: SimFile) -> UploadRecord:
        post = presigned_post(s3, bucket, file.key)
        began = time.time()
        post_file(post, file)
        record = UploadRecord(file.key, len(file.body), began, time.time())
        bar.update(1)
        return record

    with ThreadPoolExecutor(max_workers=max(1, run.parallel)) as pool:
        pending: list[Any] = []
        for i in range(run.exposures):
            counter = first + i
            stack, sky_seed = None, None
            if run.smartstack:
                stack_start = first + (i // run.smartstack) * run.smartstack
                # Digits only, as sites write it: photonranch-api collapses only numeric SMARTSTK ids.
                stack = (f"{night}{stack_start:08d}", i % run.smartstack + 1, run.smartstack)
                sky_seed = stack_start if run.filters else None
            exposure = make_exposure(
                s3_directory=run.s3_directory,
                site=run.site,
                instrument=instrument,
                night=night,
                counter=counter,
                data_type=run.data_type,
                moment=moment + dt.timedelta(seconds=70 * i),
                rng=rng,
                smartstack=stack,
                filter_name=run.filters[i % len(run.filters)] if run.filters else None,
                sky_seed=sky_seed,
            )
            result.exposures.append(exposure)
            if run.s3_directory == "info-images":
                # The channel must point at this exposure before its files arrive.
                for future in pending:
                    result.uploads.append(future.result())
                pending = []
                write_channel_metadata(run.site, run.channel, exposure.base_filename)
            pending.extend(pool.submit(send, file) for file in render_files(exposure, run.letters))
        for future in pending:
            result.uploads.append(future.result())
    bar.close()
    result.seconds = time.time() - start
    return result


def describe(result: SimulationResult) -> str:
    rate = len(result.uploads) / result.seconds if result.seconds else 0.0
    return (
        f"uploaded {len(result.uploads)} files ({result.size_bytes / 1e6:.1f} MB) of "
        f"{len(result.exposures)} exposures in {result.seconds:.1f} s ({rate:.1f} files/s)"
    )

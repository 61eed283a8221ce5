"""The one place the archive defers imports: Pillow, astropy and numpy.

They cost 100-300 ms each at import, and most invocations never need them (a header text, a FITS flag,
an expiry), so a Lambda cold start must not pay for them. Everything else is imported at the top of
its module (ruff's PLC0415 holds the rest of the tree to that). Use them as `lazy.Image.open(...)`: the
module is imported on first use, and type checkers see the real module.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from astropy.io import fits
    from astropy.io.fits.hdu.compressed import _quantization as fits_quantization
    from astropy.io.fits.hdu.compressed import _tiled_compression as fits_tiles
    from PIL import Image, ImageDraw, ImageFont, ImageOps, JpegImagePlugin

    __all__ = ["Image", "ImageDraw", "ImageFont", "ImageOps", "JpegImagePlugin", "fits", "fits_quantization",
               "fits_tiles", "np"]

DEFERRED = {
    "Image": "PIL.Image",
    "ImageDraw": "PIL.ImageDraw",
    "ImageFont": "PIL.ImageFont",
    "ImageOps": "PIL.ImageOps",
    "JpegImagePlugin": "PIL.JpegImagePlugin",
    "fits": "astropy.io.fits",
    # astropy's tile codecs (what CompImageHDU decodes with), for .fz read tile by tile (archive/formats/fz_tiles.py)
    "fits_tiles": "astropy.io.fits.hdu.compressed._tiled_compression",
    "fits_quantization": "astropy.io.fits.hdu.compressed._quantization",
    "np": "numpy",
}


def __getattr__(name: str) -> ModuleType:
    try:
        return importlib.import_module(DEFERRED[name])
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def warm_up() -> list[str]:
    """Import every deferred module this installation ships, and name them.

    For SnapStart (archive/snapstart.py): imports done before the snapshot cost nothing at restore, so
    there the deferral only gets in the way. A module the zip does not ship (ingest and expire have no
    numpy or astropy) is skipped.
    """
    done = []
    for name, module in DEFERRED.items():
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        done.append(name)
    return done

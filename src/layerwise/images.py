"""Read the inputs of ``layerwise predict``: PNG/JPEG images and IDX files.

Reading (``read_image``): images of more than ``MAX_PIXELS`` pixels are refused
before they are decoded; 16-bit and 32-bit integer images are scaled from their bit
depth to 0..255, float images (TIFF mode ``"F"``) from 0..1 or 0..255 (whichever
holds all their values), so that the same digit gives the same pixels as its 8-bit
PNG; transparent pixels are put on a white background; then the image is converted
to 8-bit grayscale (Pillow's ``"L"`` mode).

Then the image is made to look like an MNIST sample, one of two ways:

- ``preprocess="mnist"`` (the default): MNIST's own recipe, for photos and scans —
  auto-invert, contrast stretch, crop to the ink, fit into 20×20 keeping the aspect
  ratio, centre by the centre of mass in 28×28 (``layerwise.photo.prepare_digit``
  explains each step).  ``layerwise.photo.preview`` draws what the model then sees.
- ``preprocess="none"``: the picture as it is, for digits already drawn MNIST-style:
  resized to side×side pixels (28×28 for a 784-input model) with Lanczos filtering,
  without keeping the aspect ratio, and inverted (255 − pixel) when its mean pixel is
  above 127 (a light background).  This was ``predict``'s only reading before the
  MNIST recipe became the default.

``invert="always"`` / ``"never"`` override the automatic choice in both.

An IDX file (raw or gzip) holds images (n, H, W), one image (H, W), or rows
(n, H*W); H*W must equal the model's number of inputs.
"""

from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, DataFormatError, ShapeError

__all__ = ["INVERT_MODES", "MAX_PIXELS", "PREPROCESS_MODES", "is_idx_file", "load_image", "load_inputs", "read_image"]

INVERT_MODES = ("auto", "always", "never")
#: How a picture becomes a model input: MNIST's recipe, or only resized (see the module docstring).
PREPROCESS_MODES = ("mnist", "none")
#: The largest image (width × height) read; a header claiming more is refused before decoding.
MAX_PIXELS = 50_000_000
# What Pillow's decoders raise on damaged or hostile data (besides OSError/ValueError).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError,
                  ZeroDivisionError, RuntimeError)  # fmt: skip
_GZIP_MAGIC = b"\x1f\x8b"


def _side(n_inputs: int) -> int:
    side = math.isqrt(n_inputs)
    if side * side != n_inputs:
        raise ShapeError(f"the model takes {n_inputs} inputs, which is not a square image; it cannot read images")
    return side


def is_idx_file(path: str | Path) -> bool:
    """True for a gzip file or a file starting with the IDX magic (two zero bytes)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head[:2] in (b"\x00\x00", _GZIP_MAGIC)


def load_image(path: str | Path, side: int, invert: str = "auto", preprocess: str = "mnist") -> np.ndarray:
    """A PNG/JPEG (any format Pillow reads) as a (side, side) uint8 array, MNIST-style (see above)."""
    from PIL import Image

    if invert not in INVERT_MODES:
        raise ConfigError(f"invert: expected one of {INVERT_MODES}, got {invert!r}")
    if preprocess not in PREPROCESS_MODES:
        raise ConfigError(f"preprocess: expected one of {PREPROCESS_MODES}, got {preprocess!r}")
    grey = read_image(path, mode="L")
    if preprocess == "mnist":
        from .photo import prepare_digit

        return prepare_digit(np.asarray(grey, dtype=np.uint8), side, invert)
    pixels = np.asarray(grey.resize((side, side), Image.Resampling.LANCZOS), dtype=np.uint8)
    if invert == "always" or (invert == "auto" and pixels.mean() > 127):
        pixels = 255 - pixels
    return pixels


def read_image(path: str | Path, mode: str = "L") -> Any:
    """The picture in ``path`` as a loaded Pillow image in ``mode`` ("L" grey or "RGB"), checked as described above.

    Raises DataFormatError for damaged, hostile or oversized files (naming the file).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; both become our one error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise DataFormatError(
                    f"{path}: the image claims {width}×{height} = {width * height:,} pixels; "
                    f"layerwise reads images of at most {MAX_PIXELS:,} pixels"
                )
            image.load()
            image = _to_8bit(path, image)
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, rgba)
            result = image.convert(mode)
    except UnidentifiedImageError:
        raise DataFormatError(f"{path}: not an image Pillow can read (PNG, JPEG...) nor an IDX file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        reason = str(e).rstrip(".")
        raise DataFormatError(f"{path}: {reason}; layerwise reads images of at most {MAX_PIXELS:,} pixels") from None
    except DataFormatError:
        raise
    except _DECODE_ERRORS as e:  # truncated or damaged image data
        if isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise DataFormatError(f"{path}: cannot read the image ({type(e).__name__}: {e})") from None
    return result


def _to_8bit(path: str | Path, image: Any) -> Any:
    """A high-bit-depth or float image as 8-bit ``"L"``, scaled by its range; other images unchanged.

    Pillow's own ``convert("L")`` clips instead: a 16-bit digit becomes nearly all
    white, a float image in 0..1 all black.
    """
    from PIL import Image

    mode = image.mode
    if not (mode.startswith("I") or mode == "F"):
        return image
    values = np.asarray(image).astype(np.float64)
    if values.ndim != 2:
        raise DataFormatError(f"{path}: cannot read a {mode} image of shape {values.shape}")
    if not np.isfinite(values).all():
        raise DataFormatError(f"{path}: the image holds NaN or infinite pixel values")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode == "F":
        if low < 0 or high > 255:
            raise DataFormatError(f"{path}: float pixel values span {low:g}..{high:g}; expected 0..1 or 0..255")
        full = 1.0 if high <= 1.0 else 255.0
    else:
        if low < 0:
            raise DataFormatError(f"{path}: the image holds negative pixel values (down to {low:g})")
        # The bit depth: 16 for Pillow's I;16 modes, else the smallest common depth holding the values.
        full = 65535.0 if mode.startswith("I;16") else next(d for d in (255.0, 65535.0, 2.0**32 - 1) if high <= d)
    return Image.fromarray(np.rint(values * (255.0 / full)).clip(0, 255).astype(np.uint8))


def load_idx_inputs(path: str | Path, n_inputs: int) -> np.ndarray:
    """The samples of an IDX file as rows (n, n_inputs); a clear error when sizes disagree."""
    from .data.idx import read_idx

    array = read_idx(path)
    side = math.isqrt(n_inputs)
    square = f" ({side}×{side})" if side * side == n_inputs else ""
    if array.ndim >= 2 and math.prod(array.shape[1:]) == n_inputs:
        rows = array.reshape(len(array), n_inputs)
    elif array.size == n_inputs:  # a single image (H, W) or row
        rows = array.reshape(1, n_inputs)
    else:
        if array.ndim >= 3:
            what = f"{len(array)} images of {'×'.join(map(str, array.shape[1:]))} pixels"
            what += f" ({math.prod(array.shape[1:])} each)"
        else:
            what = f"an array of shape {array.shape}"
        raise ShapeError(f"{path}: holds {what}, but the model takes {n_inputs} inputs{square}")
    if rows.dtype.kind == "f" and not np.isfinite(rows).all():
        raise DataFormatError(f"{path}: holds NaN or infinite values")
    return rows


def load_inputs(
    path: str | Path, n_inputs: int, invert: str = "auto", preprocess: str = "mnist"
) -> tuple[list[str], np.ndarray]:
    """(names, rows): one row per image in ``path`` (an image or an IDX file), ready for ``Model.predict``.

    preprocess: how an image becomes a row (``"mnist"`` or ``"none"``, see above); IDX files are taken as they are.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such input file", str(path))
    if path.is_dir():
        raise IsADirectoryError(21, "is a folder, expected an image or IDX file", str(path))
    if is_idx_file(path):
        rows = load_idx_inputs(path, n_inputs)
        names = [f"{path}[{i}]" for i in range(len(rows))] if len(rows) > 1 else [str(path)]
        return names, rows
    side = _side(n_inputs)
    return [str(path)], load_image(path, side, invert, preprocess).reshape(1, n_inputs)

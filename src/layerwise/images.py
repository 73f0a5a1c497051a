"""Read the inputs of ``layerwise predict``: PNG/JPEG images and IDX files.

An image is made to look like an MNIST sample:

1. transparent pixels are put on a white background, then the image is converted
   to 8-bit grayscale (Pillow's ``"L"`` mode);
2. it is resized to side×side pixels (28×28 for a 784-input model) with Lanczos
   filtering, without keeping the aspect ratio;
3. it is inverted (255 − pixel) when its background is light, i.e. when the mean
   pixel is above 127: MNIST digits are white on black, a scan or a drawing is
   usually dark on white.  ``invert="always"`` / ``"never"`` override this.

MNIST itself also centres each digit by its centre of mass in a 20×20 box; that is
not done here, so crop the digit roughly to the middle of the picture.

An IDX file (raw or gzip) holds images (n, H, W), one image (H, W), or rows
(n, H*W); H*W must equal the model's number of inputs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import DataFormatError, ShapeError

__all__ = ["INVERT_MODES", "is_idx_file", "load_image", "load_inputs"]

INVERT_MODES = ("auto", "always", "never")
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


def load_image(path: str | Path, side: int, invert: str = "auto") -> np.ndarray:
    """A PNG/JPEG (any format Pillow reads) as a (side, side) uint8 array, MNIST-style (see above)."""
    from PIL import Image, UnidentifiedImageError

    if invert not in INVERT_MODES:
        raise ValueError(f"invert: expected one of {INVERT_MODES}, got {invert!r}")
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, rgba)
            gray = image.convert("L").resize((side, side), Image.Resampling.LANCZOS)
    except UnidentifiedImageError:
        raise DataFormatError(f"{path}: not an image Pillow can read (PNG, JPEG...) nor an IDX file") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated or damaged image data
        if isinstance(e, FileNotFoundError):
            raise
        raise DataFormatError(f"{path}: cannot read the image ({e})") from None
    pixels = np.asarray(gray, dtype=np.uint8)
    if invert == "always" or (invert == "auto" and pixels.mean() > 127):
        pixels = 255 - pixels
    return pixels


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


def load_inputs(path: str | Path, n_inputs: int, invert: str = "auto") -> tuple[list[str], np.ndarray]:
    """(names, rows): one row per image in ``path`` (an image or an IDX file), ready for ``Model.predict``."""
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
    return [str(path)], load_image(path, side, invert).reshape(1, n_inputs)

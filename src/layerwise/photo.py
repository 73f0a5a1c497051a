"""A photo or scan of a handwritten digit, prepared the way MNIST's digits were; and a picture of the result.

MNIST's digits are white on black, fitted into a 20×20 box keeping their aspect
ratio, and centred by their centre of mass in a 28×28 field.  A photo of a digit on
paper is none of that, so ``prepare_digit`` (``load_image``'s default,
``preprocess="mnist"``) redoes the recipe:

1. grey: the picture as 8-bit grey levels (``images.read_image``); pictures larger
   than ``WORK_SIDE`` pixels are first shrunk by averaging pixel blocks;
2. background and noise: the paper's level is a plane fitted to the medians of a
   24×24 grid of blocks, leaving out the blocks that hold ink (so that light falling unevenly
   across the photo is not ink); the noise level is the median absolute deviation
   from it;
3. auto-invert: the ink is what differs from the background; if more of it is darker
   than the background than lighter (dark ink on light paper), the picture is
   inverted, so that the ink is bright on a black background (``invert="always"``
   / ``"never"`` decide instead);
4. contrast stretch: the background goes to 0 and the ink's peak, measured on a
   lightly smoothed copy so that noise does not count, to 255; after step 6 what is
   left of the noise (three σ, shrunk with the picture) is taken off, anything above
   the peak is full ink, and a digit whose strokes all came out fainter (thin strokes
   blur when shrunk) is stretched back to 255;
5. crop to the ink: the bounding box of the (smoothed) pixels above 30% of the
   peak, widened to take in the faint edges of the strokes (pixels above 10% of the
   peak and four noise levels);
6. fit into 20×20 keeping the aspect ratio (Lanczos filtering);
7. centre: put the result in the 28×28 field so that its centre of mass falls on
   pixel (14, 14), as in MNIST (rounded to whole pixels, kept inside the field).

For a model of other square inputs (side s) the box is round(20·s/28).  Lighting
may vary smoothly across the picture, but a sharp shadow on the paper counts as ink.
``preview(original, prepared)`` draws the photo beside what the model is given.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, ShapeError

__all__ = ["WORK_SIDE", "prepare_digit", "preview", "save_preview"]

#: Pictures with a longer side are shrunk (block averages) to about this size first: quicker, and less noise.
WORK_SIDE = 1024
_CORE, _EDGE = 0.30, 0.10  # fractions of the ink's peak: what is surely ink, and how far the crop reaches


def prepare_digit(grey: np.ndarray, side: int = 28, invert: str = "auto") -> np.ndarray:
    """grey: (H, W) grey levels 0..255 -> (side, side) uint8, white digit on black, MNIST-style (module docstring).

    A picture with no ink at all (one grey level) gives an all-black image.
    """
    if invert not in ("auto", "always", "never"):
        raise ConfigError(f"invert: expected one of ('auto', 'always', 'never'), got {invert!r}")
    g = np.asarray(grey)
    if g.ndim != 2 or min(g.shape) < 1:
        raise ShapeError(f"grey: expected a 2-D picture (height, width), got shape {g.shape}")
    g = _shrink(g.astype(np.float32))
    d = g - _background(g)
    noise = 1.4826 * float(np.median(np.abs(d)))  # the MAD as a Gaussian σ
    margin = max(3 * noise, 2.0)
    if invert == "auto":
        darker = np.clip(-d - margin, 0, None).sum(dtype=np.float64)
        lighter = np.clip(d - margin, 0, None).sum(dtype=np.float64)
        dark_ink = darker > lighter
    else:
        dark_ink = invert == "always"
    ink = -d if dark_ink else d  # signed: the background averages to 0 when the picture is shrunk
    # The peak on a 3×3-smoothed copy: a single noisy pixel must not set the contrast.
    smooth = _box3(ink)
    peak = float(smooth.max())
    box = max(1, round(side * 20 / 28))
    if peak <= max(4 * noise / 3, 2.0):  # nothing stands out from the noise: no digit
        return np.zeros((side, side), np.uint8)
    top, bottom, left, right = _ink_box(ink, smooth, peak, noise)
    fitted = _fit(ink[top:bottom, left:right] / peak, box, noise / peak)
    return _centre(fitted, side)


def _shrink(g: np.ndarray) -> np.ndarray:
    """Block means so that the longer side is at most about WORK_SIDE."""
    factor = math.ceil(max(g.shape) / WORK_SIDE)
    if factor <= 1:
        return g
    h, w = (g.shape[0] // factor) * factor, (g.shape[1] // factor) * factor
    if h == 0 or w == 0:  # a strip thinner than a block: left as it is
        return g
    return g[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def _background(g: np.ndarray, grid: int = 24) -> np.ndarray:
    """The paper's grey level at each pixel: a plane a + b·row + c·column fitted to block medians.

    A plane, not a constant, so that light falling unevenly across a photo is not taken
    for ink.  Blocks holding ink are outliers and are left out of the fit (twice
    refitted without the blocks more than three robust σ away).
    """
    h, w = g.shape
    gh, gw = min(grid, h), min(grid, w)
    bh, bw = h // gh, w // gw  # block size; the few rows and columns left over are not needed for a plane
    blocks = g[: gh * bh, : gw * bw].reshape(gh, bh, gw, bw).transpose(0, 2, 1, 3).reshape(gh, gw, bh * bw)
    medians = np.median(blocks, axis=-1)
    cy, cx = np.arange(gh) * bh + (bh - 1) / 2, np.arange(gw) * bw + (bw - 1) / 2
    design = np.stack(np.broadcast_arrays(1.0, cy[:, None], cx[None, :]), axis=-1).reshape(-1, 3)
    values = medians.reshape(-1)
    keep = np.ones(len(values), bool)
    for _ in range(3):
        coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        residual = values - design @ coef
        spread = 1.4826 * np.median(np.abs(residual[keep] - np.median(residual[keep])))
        keep = np.abs(residual - np.median(residual[keep])) <= 3 * spread + 1.0
    coef[0] += np.median(residual[keep])
    return (coef[0] + coef[1] * np.arange(h)[:, None] + coef[2] * np.arange(w)[None, :]).astype(np.float32)


def _box3(a: np.ndarray) -> np.ndarray:
    """3×3 box mean (edges padded by repetition)."""
    p = np.pad(a, 1, mode="edge")
    rows = p[:-2] + p[1:-1] + p[2:]
    return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 9


def _ink_box(ink: np.ndarray, smooth: np.ndarray, peak: float, noise: float) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), bottom/right exclusive: the core ink's box, widened to its faint edges.

    The core is found on the smoothed ink (no noisy pixel counts), the faint edges on the
    ink itself (smoothing would widen the box by a pixel, a lot for a small digit), above
    the noise.
    """
    core = smooth > _CORE * peak
    rows, cols = np.flatnonzero(core.any(axis=1)), np.flatnonzero(core.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    # Faint stroke edges just outside the core: look within a margin of 10% of the box's size.
    pad = max(2, round(0.1 * max(bottom - top, right - left)))
    t, b = max(0, top - pad), min(smooth.shape[0], bottom + pad)
    lf, rt = max(0, left - pad), min(smooth.shape[1], right + pad)
    edge = ink[t:b, lf:rt] > max(_EDGE * peak, 4 * noise)
    edge[top - t : bottom - t, left - lf : right - lf] = True  # the core's box stays
    rows, cols = np.flatnonzero(edge.any(axis=1)), np.flatnonzero(edge.any(axis=0))
    return t + rows[0], t + rows[-1] + 1, lf + cols[0], lf + cols[-1] + 1


def _fit(crop: np.ndarray, box: int, noise: float) -> np.ndarray:
    """The crop (ink ~1, background ~0 ± noise) resized so that its longer side is ``box`` pixels, values 0..1.

    The aspect ratio is kept.  Shrinking averages the noise down by about the shrink
    factor; what is left of it (three σ) is then taken off, so the background is 0.
    """
    from PIL import Image

    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL: (width, height)
    resized = np.asarray(Image.fromarray(crop.astype(np.float32), "F").resize(size, Image.Resampling.LANCZOS))
    floor = 3 * noise * min(1.0, scale)
    resized = np.clip(resized - floor, 0, None)  # also Lanczos' ringing a little below 0 next to sharp edges
    top = float(resized.max())
    # Above the peak (ringing, a noisy pixel) is full ink; a digit whose strokes all came out fainter
    # (thin strokes blur when shrunk) is stretched back to full ink.
    return np.clip(resized, 0, 1) if top >= 1 else resized / top if top > 0 else resized


def _centre(patch: np.ndarray, side: int) -> np.ndarray:
    """``patch`` placed in a side×side field with its centre of mass on pixel (side/2, side/2); uint8."""
    h, w = patch.shape
    mass = patch.sum()
    cy = (patch.sum(axis=1) @ np.arange(h)) / mass
    cx = (patch.sum(axis=0) @ np.arange(w)) / mass
    top = min(max(round(side / 2 - cy), 0), side - h)
    left = min(max(round(side / 2 - cx), 0), side - w)
    out = np.zeros((side, side), np.float32)
    out[top : top + h, left : left + w] = patch
    return np.rint(out * 255).astype(np.uint8)


def preview(original: Any, prepared: np.ndarray, height: int = 280) -> Any:
    """A PIL image: the original picture (scaled to ``height`` pixels) beside what the model sees.

    original: a path (read as ``images.read_image`` reads it, in colour), a PIL image or
    an array (H, W) / (H, W, 3).  prepared: the model's input, (side, side) or
    (1, side, side), drawn with square pixels (nearest neighbour) so that each pixel
    the model gets is visible.
    """
    from PIL import Image

    if isinstance(original, (str, Path)):
        from .images import read_image

        original = read_image(original, mode="RGB")
    elif isinstance(original, np.ndarray):
        original = Image.fromarray(np.asarray(original, np.uint8))
    left = original.convert("RGB")
    left = left.resize((max(1, round(left.width * height / left.height)), height), Image.Resampling.LANCZOS)
    seen = np.asarray(prepared)
    seen = seen.reshape(seen.shape[-2:]) if seen.ndim == 3 and seen.shape[0] == 1 else seen
    if seen.ndim != 2:
        raise ShapeError(f"prepared: expected one grey image (side, side), got shape {seen.shape}")
    if seen.dtype != np.uint8:
        seen = np.clip(np.rint(seen * (255 if seen.max() <= 1 else 1)), 0, 255).astype(np.uint8)
    right = Image.fromarray(seen).resize((height, height), Image.Resampling.NEAREST).convert("RGB")
    gap = 12
    canvas = Image.new("RGB", (left.width + gap + right.width, height), (128, 128, 128))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + gap, 0))
    return canvas


def save_preview(path: str | Path, original: Any, prepared: np.ndarray, height: int = 280) -> None:
    """Write ``preview(original, prepared)`` to ``path`` (the format from its suffix, PNG by default), atomically."""
    from .atomic import atomic_write

    image = preview(original, prepared, height)
    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "gif": "GIF", "webp": "WEBP"}.get(suffix, "PNG")
    with atomic_write(path) as f:
        image.save(f, format=fmt)

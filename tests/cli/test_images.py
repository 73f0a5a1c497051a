"""In-process checks of the image preparation behind ``layerwise predict`` and of the CLI's metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from layerwise.cli import confusion, per_class
from layerwise.errors import DataFormatError, ShapeError
from layerwise.images import is_idx_file, load_image, load_inputs


def digit(light_background: bool) -> np.ndarray:
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 255  # a white "1" on black
    return 255 - image if light_background else image


def test_dark_on_light_is_inverted(tmp_path: Path) -> None:
    # preprocess="none": the picture only resized and inverted (the MNIST recipe, the default, also
    # crops and centres the digit: tests/test_ux_photos.py).
    Image.fromarray(digit(light_background=True)).save(tmp_path / "one.png")
    pixels = load_image(tmp_path / "one.png", 28, preprocess="none")
    assert pixels.dtype == np.uint8 and pixels.shape == (28, 28)
    np.testing.assert_array_equal(pixels, digit(light_background=False))
    np.testing.assert_array_equal(load_image(tmp_path / "one.png", 28, invert="never", preprocess="none"), digit(True))
    assert load_image(tmp_path / "one.png", 28)[14, 13] == 255  # the default inverts too


def test_light_on_dark_is_kept_and_resized(tmp_path: Path) -> None:
    Image.fromarray(digit(False)).resize((280, 140)).convert("RGB").save(tmp_path / "one.jpg", quality=95)
    pixels = load_image(tmp_path / "one.jpg", 28)
    assert pixels.shape == (28, 28)
    assert pixels.mean() < 127 and pixels[14, 13:15].min() > 200  # still white on black


def test_transparent_background_counts_as_white(tmp_path: Path) -> None:
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[6:22, 12:16] = (0, 0, 0, 255)  # black strokes, transparent elsewhere
    Image.fromarray(rgba, "RGBA").save(tmp_path / "ink.png")
    pixels = load_image(tmp_path / "ink.png", 28)
    assert pixels[14, 13] == 255 and pixels[0, 0] == 0


def test_inputs_from_images_and_idx(tmp_path: Path) -> None:
    from layerwise.data.idx import write_idx

    Image.fromarray(digit(False)).save(tmp_path / "one.png")
    names, rows = load_inputs(tmp_path / "one.png", 784)
    assert names == [str(tmp_path / "one.png")] and rows.shape == (1, 784)
    write_idx(tmp_path / "x.idx", np.stack([digit(False)] * 4))
    assert is_idx_file(tmp_path / "x.idx") and not is_idx_file(tmp_path / "one.png")
    names, rows = load_inputs(tmp_path / "x.idx", 784)
    assert rows.shape == (4, 784) and names[3].endswith("x.idx[3]")
    with pytest.raises(ShapeError, match="4 images of 28×28"):
        load_inputs(tmp_path / "x.idx", 64)
    with pytest.raises(ShapeError, match="not a square"):
        load_inputs(tmp_path / "one.png", 10)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    with pytest.raises(DataFormatError):
        load_inputs(tmp_path / "junk.png", 784)
    with pytest.raises(FileNotFoundError):
        load_inputs(tmp_path / "none.png", 784)


def test_confusion_and_per_class() -> None:
    matrix = confusion(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    rows = per_class(matrix, ["a", "b", "c"])
    assert rows[1]["precision"] == pytest.approx(2 / 3) and rows[1]["recall"] == 1.0
    assert rows[2] == {"class": 2, "name": "c", "precision": 0.0, "recall": 0.0, "support": 1}

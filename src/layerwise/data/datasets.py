"""Finding, downloading and loading the data sets layerwise trains on.

``load(name)`` returns ``((x_train, y_train), (x_test, y_test))`` with images as
uint8 arrays of shape (n, H, W) and labels as int64 arrays of shape (n,).

MNIST and Fashion-MNIST are four IDX files each (gzip-compressed or not)::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

They are looked for in this order; the first folder holding all four wins:

1. ``data_dir`` when given -- and only there: missing files are an error.
2. ``$LAYERWISE_DATA/<name>/``.
3. System folders (``SYSTEM_DIRS``): Debian's ``/usr/share/datasets/fashion-mnist/``.
4. The cache, ``$LAYERWISE_CACHE/<name>/``, else ``$XDG_CACHE_HOME/layerwise/<name>/``,
   else ``~/.cache/layerwise/<name>/``.
5. A download from the mirrors (``MIRRORS``, or the base URLs in ``$LAYERWISE_MIRROR``,
   separated by spaces; ``{name}`` in one is replaced by the data set's name) into
   the cache.  Each file is kept only once the SHA-256 of its decompressed contents
   matches ``SHA256``.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import numpy.typing as npt

from layerwise.atomic import atomic_write
from layerwise.data.idx import (
    PathLike,
    check_idx_pair,
    decompress_idx,
    parse_idx_bytes,
    read_idx_raw,
)
from layerwise.errors import (
    ChecksumError,
    ConfigError,
    DataFormatError,
    DatasetNotFoundError,
    DTypeError,
    InputError,
    ShapeError,
)

__all__ = [
    "DATASETS",
    "IDX_FILES",
    "MIRRORS",
    "SHA256",
    "SYSTEM_DIRS",
    "cache_dir",
    "flatten",
    "load",
    "scale",
]

log = logging.getLogger(__name__)

Split = tuple[np.ndarray, np.ndarray]

#: The names ``load`` accepts (case-insensitive; "fashion_mnist" works too).
DATASETS = ("mnist", "fashion-mnist", "digits")
_ALIASES = {"fashion_mnist": "fashion-mnist"}

#: The four files of an IDX data set, without the optional ``.gz``.
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: Base URLs to download from, tried in order.  ``$LAYERWISE_MIRROR`` replaces them.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

#: SHA-256 of each file's *decompressed* contents: it holds for any gzip container.
SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    "fashion-mnist": {
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
}

#: Folders where an operating system package installs a data set.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

DOWNLOAD_TIMEOUT_S = 30.0  # per connect / read; a stalled mirror must not hang load()
MAX_DOWNLOAD_BYTES = 128 * 2**20  # the largest file (Fashion train images) is ~26 MB
_URL_SCHEMES = ("http", "https", "file")

IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
DIGITS_N_TRAIN = 1500  # digits split: the first 1500 samples train, the other 297 test


# --------------------------------------------------------------------------- public


def load(
    name: str,
    data_dir: PathLike | None = None,
    *,
    verify: bool = False,
    download: bool = True,
) -> tuple[Split, Split]:
    """Load a data set as ``((x_train, y_train), (x_test, y_test))``.

    Args:
        name: "mnist", "fashion-mnist" (or "fashion_mnist") or "digits"; any case.
        data_dir: the folder holding the four IDX files, or (like ``$LAYERWISE_DATA``)
            the folder holding the data set's folder (``<data_dir>/mnist/``).  When
            given, only it is searched.  Not used for "digits", which ships with scikit-learn.
        verify: also check the SHA-256 of files found on disk (downloads are always
            checked).  Off by default: hashing 50 MB on every load is slow.
        download: fetch missing files from the mirrors into the cache.

    Returns:
        Images, uint8 of shape (n, 28, 28) for MNIST and Fashion-MNIST (60000 train,
        10000 test) and (n, 8, 8) for digits (1500 train, 297 test), pixels 0..255;
        labels, int64 of shape (n,), values 0..9.

    Raises:
        ConfigError: unknown ``name``, or ``data_dir`` given for "digits".
        DatasetNotFoundError: the files are in none of the folders and could not be
            downloaded (the message says which files to put where); or
            scikit-learn is missing for "digits".
        ChecksumError: a downloaded file, or with ``verify`` a file on disk, has the
            wrong SHA-256.
        DataFormatError: a file is malformed or does not hold the expected shapes.
    """
    key = _canonical_name(name)
    if key == "digits":
        if data_dir is not None:
            raise ConfigError(
                f"load('digits', data_dir={os.fspath(data_dir)!r}): digits ships with "
                "scikit-learn and is not read from files; leave data_dir out"
            )
        return _load_digits()
    if data_dir is not None and (Path(data_dir) / key).is_dir():
        # The same folder as $LAYERWISE_DATA works too: the one holding mnist/, fashion-mnist/ ...
        data_dir = Path(data_dir) / key
    folder = _locate(key, data_dir, download)
    return _load_folder(key, folder, verify)


def cache_dir(name: str) -> Path:
    """The cache folder of data set ``name``: ``$LAYERWISE_CACHE/<name>``, else
    ``$XDG_CACHE_HOME/layerwise/<name>``, else ``~/.cache/layerwise/<name>``."""
    if root := os.environ.get("LAYERWISE_CACHE"):
        return Path(root).expanduser() / name
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says to ignore a relative XDG_CACHE_HOME.
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "layerwise" / name


def flatten(x: np.ndarray) -> np.ndarray:
    """Flatten images (n, H, W, ...) into rows (n, H*W*...) -- a view when possible.

    Raises:
        ShapeError: ``x`` is 0-d (there is no sample axis to keep).
    """
    x = np.asarray(x)
    if x.ndim == 0:
        raise ShapeError("flatten(x): x must have a sample axis, got a 0-d array")
    # shape[0] rather than -1: a (0, 28, 28) batch must still give (0, 784).
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def scale(x: np.ndarray, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """Map integer pixels 0..255 to floats in [0, 1]: ``x / 255`` as ``dtype``.

    Any shape; the result has ``x``'s shape and is a new array.

    Raises:
        DTypeError: ``x`` is not integer (already-scaled floats would shrink again),
            or ``dtype`` is not a floating type.
        InputError: a non-uint8 ``x`` holds values outside 0..255.
    """
    x = np.asarray(x)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise DTypeError(f"scale(x, dtype={dtype}): dtype must be a floating type")
    if x.dtype.kind not in "ui":
        raise DTypeError(f"scale(x): x must hold integer pixel values 0..255, got dtype {x.dtype}")
    if x.dtype != np.uint8 and x.size and (x.min() < 0 or x.max() > 255):
        raise InputError(f"scale(x): pixel values must be in 0..255, got {x.min()}..{x.max()}")
    # One pass, no integer->float temporary; the division is exact-rounded in dtype.
    return np.divide(x, dtype.type(255), dtype=dtype)


# ------------------------------------------------------------------------ helpers


def _canonical_name(name: str) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"load(name): name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ConfigError(f"load({name!r}): unknown data set; valid names: {', '.join(DATASETS)}")
    return key


def _find_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem.gz`` or ``folder/stem``, whichever exists (gzip preferred)."""
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _missing(folder: Path) -> list[str]:
    """The IDX file stems not present in ``folder``."""
    return [stem for stem in IDX_FILES if _find_file(folder, stem) is None]


def _search_dirs(key: str) -> list[tuple[Path, str]]:
    """Folders searched when no ``data_dir`` is given, in order, each with why."""
    dirs: list[tuple[Path, str]] = []
    if root := os.environ.get("LAYERWISE_DATA"):
        dirs.append((Path(root).expanduser() / key, "$LAYERWISE_DATA"))
    dirs += [(d, "system folder") for d in SYSTEM_DIRS.get(key, ())]
    dirs.append((cache_dir(key), "cache"))
    unique: dict[Path, str] = {}
    for folder, why in dirs:
        unique.setdefault(folder, why)
    return list(unique.items())


def _locate(key: str, data_dir: PathLike | None, download: bool) -> Path:
    """The folder holding all four files of ``key``, downloading them if needed."""
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if missing := _missing(folder):
            state = "is not a folder" if not folder.is_dir() else "lacks files"
            raise DatasetNotFoundError(
                f"load({key!r}, data_dir={os.fspath(data_dir)!r}): {folder} {state}; "
                f"missing: {', '.join(f'{s}[.gz]' for s in missing)}"
            )
        return folder
    searched = _search_dirs(key)
    for folder, _ in searched:
        if not _missing(folder):
            return folder
    if not download:
        raise DatasetNotFoundError(_not_found_message(key, searched, ["not attempted (download=False)"]))
    cache = cache_dir(key)
    _download_missing(key, cache, searched)
    return cache


def _not_found_message(key: str, searched: list[tuple[Path, str]], failures: list[str]) -> str:
    """One message: which files to put in which folder, and why downloading failed."""
    lines = [
        f"Data set {key!r} not found. Put these four files (gzip-compressed or not):",
        *(f"    {stem}.gz" for stem in IDX_FILES),
        "into one of these folders (searched in this order):",
        *(f"    {folder}    ({why})" for folder, why in searched),
    ]
    if "LAYERWISE_DATA" not in os.environ:
        lines.append("    ($LAYERWISE_DATA is not set)")
    lines += [
        f"or set LAYERWISE_DATA to a folder with a '{key}/' subfolder holding them,",
        f"or pass data_dir=<the folder holding them> to load({key!r}, data_dir=...).",
        "Download:",
        *(f"    {reason}" for reason in failures),
    ]
    return "\n".join(lines)


def _mirrors(key: str) -> list[str]:
    """Base URLs to try for ``key``: ``$LAYERWISE_MIRROR`` if set, else ``MIRRORS``.

    Each is checked here, so that a malformed one is a ConfigError naming it and where
    it came from, not an error of urllib in the middle of a download.
    """
    override = os.environ.get("LAYERWISE_MIRROR", "").split()
    source = "$LAYERWISE_MIRROR" if override else "MIRRORS"
    bases = [b.replace("{name}", key) for b in override] or list(MIRRORS.get(key, ()))
    for base in bases:
        if problem := _url_problem(base):
            raise ConfigError(
                f"mirror URL {base!r} (from {source}) {problem}; expected base URLs such as "
                f"'https://example.org/{key}/' separated by spaces"
            )
    return bases


def _url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as a mirror's base URL, or None."""
    if len(url) > 2000 or any(ord(c) < 32 or ord(c) == 127 for c in url):
        return "is too long or holds control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (a port such as ':99999' or ':x' raises ValueError only when read)
    except ValueError as e:
        return f"is malformed ({e})"
    if parts.scheme not in _URL_SCHEMES:
        return f"must start with one of {', '.join(s + '://' for s in _URL_SCHEMES)}"
    if parts.scheme != "file" and not parts.hostname:
        return "has no host name"
    return None


def _fetch(url: str) -> bytes:
    """The body at ``url``, with a timeout, refusing more than MAX_DOWNLOAD_BYTES."""
    parts, total = [], 0
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        while chunk := response.read(1 << 20):
            total += len(chunk)
            if total > MAX_DOWNLOAD_BYTES:
                raise OSError(f"larger than MAX_DOWNLOAD_BYTES = {MAX_DOWNLOAD_BYTES} bytes")
            parts.append(chunk)
    return b"".join(parts)


def _check_sha256(raw: bytes | bytearray | memoryview, expected: str, name: str) -> None:
    got = hashlib.sha256(raw).hexdigest()
    if got != expected:
        raise ChecksumError(f"{name}: SHA-256 of the decompressed contents is {got}, expected {expected}")


def _download_one(key: str, stem: str, cache: Path, bases: list[str]) -> list[str]:
    """Fetch ``stem`` from the first mirror that serves a good copy into ``cache``.

    Returns the failure reasons (empty on success).  A copy is written to the cache,
    atomically, only after its decompressed SHA-256 matched.  Raises ChecksumError
    if every mirror failed and at least one served a damaged copy.
    """
    reasons: list[str] = []
    damaged: list[str] = []
    for base in bases:
        url = urllib.parse.urljoin(base if base.endswith("/") else base + "/", f"{stem}.gz")
        try:
            log.info("downloading %s", url)
            data = _fetch(url)
        except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
            reasons.append(f"{url}: {exc}")
            continue
        try:
            _check_sha256(decompress_idx(data, url), SHA256[key][stem], url)
        except DataFormatError as exc:  # a damaged gzip is a bad checksum too
            damaged.append(str(exc))
            continue
        # Keep the container the mirror served; the reader detects gzip by magic.
        suffix = ".gz" if data[:2] == b"\x1f\x8b" else ""
        with atomic_write(cache / f"{stem}{suffix}") as f:
            f.write(data)
        return []
    if damaged:
        raise ChecksumError(
            f"every mirror failed for {stem}; damaged downloads were discarded:\n    "
            + "\n    ".join(damaged + reasons)
        )
    return reasons or [f"{stem}.gz: no mirror configured for {key!r}"]


def _download_missing(key: str, cache: Path, searched: list[tuple[Path, str]]) -> None:
    """Download the files ``cache`` lacks; raise DatasetNotFoundError when one fails."""
    bases = _mirrors(key)
    cache.mkdir(parents=True, exist_ok=True)
    for stem in _missing(cache):
        # Stop at the first failure: offline, every further try would only add waiting.
        if reasons := _download_one(key, stem, cache, bases):
            raise DatasetNotFoundError(_not_found_message(key, searched, reasons))


def _read_split(key: str, folder: Path, images_stem: str, labels_stem: str, verify: bool) -> Split:
    """Read, optionally verify, and validate one (images, labels) pair of ``folder``."""
    arrays = []
    paths = [_find_file(folder, images_stem), _find_file(folder, labels_stem)]
    for stem, path in zip((images_stem, labels_stem), paths, strict=True):
        assert path is not None  # _locate guarantees all four files exist
        raw = read_idx_raw(path)
        if verify:
            _check_sha256(raw, SHA256[key][stem], os.fspath(path))
        arrays.append(parse_idx_bytes(raw, os.fspath(path)))
    images, labels = arrays
    check_idx_pair(images, labels, os.fspath(paths[0]), os.fspath(paths[1]))
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise DataFormatError(
            f"{paths[0]}: expected uint8 images of shape (n, {IMAGE_SHAPE[0]}, "
            f"{IMAGE_SHAPE[1]}), got {images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or (labels.size and labels.max() >= N_CLASSES):
        raise DataFormatError(
            f"{paths[1]}: expected uint8 labels in 0..{N_CLASSES - 1}, "
            f"got {labels.dtype} with maximum {labels.max() if labels.size else None}"
        )
    return images, labels.astype(np.int64)


def _load_folder(key: str, folder: Path, verify: bool) -> tuple[Split, Split]:
    train = _read_split(key, folder, IDX_FILES[0], IDX_FILES[1], verify)
    test = _read_split(key, folder, IDX_FILES[2], IDX_FILES[3], verify)
    return train, test


def _load_digits() -> tuple[Split, Split]:
    """scikit-learn's 8x8 digits (1797 samples), pixels rescaled from 0..16 to 0..255.

    The split is fixed: the first ``DIGITS_N_TRAIN`` (1500) samples train, the
    remaining 297 test.
    """
    try:
        from sklearn.datasets import load_digits  # lazy: scikit-learn is optional
    except ImportError as exc:
        raise DatasetNotFoundError(
            "the 'digits' data set comes with scikit-learn, which is not installed: pip install scikit-learn"
        ) from exc
    bunch = load_digits()
    images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    n = DIGITS_N_TRAIN
    return (images[:n], labels[:n]), (images[n:], labels[n:])

"""Issue 9, items 3, 5, 7 and 9: files from strangers, read with bounded memory and one-line errors.

Crafted files whose declared sizes add up to gigabytes are refused before anything
of that size is allocated; the peak memory of each refusal is measured with
``resource`` in a freshly forked process (whose peak RSS starts at its current RSS,
so the growth is what the refusal itself took) and must stay under 100 MB.  Header
values that are not numbers a float or an int can hold, encrypted members, layer
chains that do not connect, and hostile images give ``layerwise.errors``
exceptions, never a traceback.  16-bit and float images decode to the same pixels
(and predictions) as the 8-bit image of the same digit.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import layerwise as lw
import layerwise.data
from layerwise.errors import MAX_MESSAGE, DataFormatError, ModelFileError
from layerwise.images import MAX_PIXELS, load_image, load_inputs

HEADER = "__header__.npy"
LIMIT_BYTES = 100 * 2**20  # the bound on the memory a refusal may take


# -- building files ------------------------------------------------------------------------
def small_model() -> lw.Model:
    net = lw.NeuralNetwork(4, [(5, "ReLU"), (3, "Linear")], seed=0)
    model = lw.Model(net, optimizer="adam")
    model.fit(np.random.default_rng(0).random((16, 4)), np.arange(16) % 3, epochs=1, batch_size=8, verbose=0)
    return model


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("valid") / "model.npz"
    small_model().save(path)
    return path


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def header_of(parts: dict[str, bytes]) -> dict:
    return json.loads(np.load(io.BytesIO(parts[HEADER])).tobytes())


def with_header(parts: dict[str, bytes], text: str) -> dict[str, bytes]:
    return {**parts, HEADER: npy(np.frombuffer(text.encode(), np.uint8))}


def write_zip(path: Path, parts: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return path


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def raw_zip(entries: list[tuple[str, int, bytes, int]], flags: int = 0, zip64_count: bool = False) -> bytes:
    """A zip built byte by byte: entries (name, method 0/8, data as stored, declared uncompressed size).

    Deflated members get CRC 0: they are refused before they are read to the end.
    """
    out, central = bytearray(), bytearray()
    for name, method, data, size in entries:
        n = name.encode()
        offset = len(out)
        crc = zlib.crc32(data) if method == 0 else 0
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0, crc, len(data), size, len(n), 0) + n
        out += data
        sizes = (crc, len(data), size, len(n), 0, 0, 0, 0, 0, offset)
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, method, 0, 0, *sizes)
        central += n
    count = len(entries)
    end = b""
    if zip64_count:  # more than 65,535 members: the zip64 end record holds the count
        record_at = len(out) + len(central)
        end += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), len(out))
        end += struct.pack("<4sLQL", b"PK\x06\x07", 0, record_at, 1)
        count = 0xFFFF
    end += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), len(out), 0)
    return bytes(out + central + end)


def deflated_zeros(prefix: bytes, n_mib: int) -> bytes:
    """A raw deflate stream of ``prefix`` and ``n_mib`` MiB of zeros (~1 kB per MiB), made without compressing it all.

    After a full flush the compressor starts afresh, so every further MiB of zeros
    compresses to the same bytes.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    assert block == c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return head + block * n_mib + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width×height pixels."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR's data starts at byte 16
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def refused(path: Path, error=ModelFileError, *needles: str) -> str:
    with pytest.raises(error) as info:
        lw.load(path) if error is ModelFileError else load_image(path, 28)
    message = str(info.value)
    assert str(path) in message and len(message) <= MAX_MESSAGE and "\n" not in message, message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


# -- peak memory of refusals, measured in a fresh process ---------------------------------------
MEASURE = r"""
import json, os, resource, sys
import layerwise as lw
from layerwise.data.idx import read_idx
from layerwise.images import load_image

readers = {"model": lw.load, "idx": read_idx, "image": lambda p: load_image(p, 28)}
for kind, path in json.loads(sys.argv[2]):  # valid files first: lazy imports (numba...) are not the file's doing
    readers[kind](path)
results = []
for kind, path in json.loads(sys.argv[1]):
    # Each case in a forked child: a new process's peak RSS (ru_maxrss) starts at its current RSS,
    # so the growth is what this one call took, whatever this process or pytest used before.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            readers[kind](path)
            outcome = "loaded"
        except lw.errors.LayerwiseError as e:
            outcome = f"{type(e).__name__}: {e}"
        except BaseException as e:
            outcome = f"UNEXPECTED {type(e).__name__}: {e}"
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        os.write(write_end, json.dumps({"outcome": outcome, "grew_bytes": (peak - before) * 1024}).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        results.append(json.loads(f.read()))
    os.waitpid(pid, 0)
print(json.dumps(results))
"""


def peak_memory_of_refusals(cases: list[tuple[str, Path]], warm_up: list[tuple[str, Path]]) -> list[dict]:
    def listing(pairs: list[tuple[str, Path]]) -> str:
        return json.dumps([(kind, str(path)) for kind, path in pairs])

    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, listing(cases), listing(warm_up)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def crafted(valid_file, tmp_path_factory) -> dict[str, tuple[str, Path, str]]:
    """Files whose declared sizes add up to gigabytes: name -> (reader, path, expected words in the error)."""
    d = tmp_path_factory.mktemp("crafted")
    parts = members(valid_file)
    cases: dict[str, tuple[str, Path, str]] = {}

    # A 1 MB zip whose deflated members expand to 1 GB: not called for by the header.
    zeros = deflated_zeros(npy_header((256, 2**20)), 1024)
    entries = [(name, 0, data, len(data)) for name, data in parts.items()]
    bomb = d / "deflate-bomb.npz"
    bomb.write_bytes(raw_zip([*entries, ("optimizer/zz/0.npy", 8, zeros, 2**30 + 128)]))
    cases["deflate-bomb"] = ("model", bomb, "unexpected")

    # The same 1 GB, called for by a header of one Dense(4 -> 2**26): consistent, but 1000:1.
    header = header_of(parts)
    header.update(input_shape=[4], layers=[{"type": "Dense", "units": 2**26, "input_shape": [4]}])
    header["optimizer"]["slots"] = {}
    wide = deflated_zeros(npy_header((4, 2**26)), 1024)
    bias = deflated_zeros(npy_header((2**26,)), 256)
    text = json.dumps(header).encode()
    consistent = d / "consistent-bomb.npz"
    consistent.write_bytes(
        raw_zip(
            [
                (HEADER, 0, npy(np.frombuffer(text, np.uint8)), len(npy(np.frombuffer(text, np.uint8)))),
                ("net/0.W.npy", 8, wide, 2**30 + 128),
                ("net/0.b.npy", 8, bias, 2**28 + 128),
            ]
        )  # fmt: skip
    )
    cases["consistent-bomb"] = ("model", consistent, "16 times")

    # A 4.5 kB file whose header lists 300 Dense layers of 4096x4096 (each 64 MB, 20 GB in all).
    header = header_of(parts)
    header["input_shape"] = [4096]
    header["layers"] = [{"type": "Dense", "units": 4096, "input_shape": [4096]}] * 300
    many = write_zip(d / "many-layers.npz", with_header(parts, json.dumps(header)))
    cases["many-layers"] = ("model", many, "stores only")

    # 200,000 members.
    entries = [(f"net/{i}.W.npy", 0, b"", 0) for i in range(200_000)]
    crowd = d / "crowd.npz"
    crowd.write_bytes(raw_zip(entries, zip64_count=True))
    cases["200k-members"] = ("model", crowd, "200,000 members")

    # IDX: a valid small header, then 3 GB of sparse trailing data.
    sparse = d / "sparse-idx3-ubyte"
    with open(sparse, "wb") as f:
        f.write(struct.pack(">BBBB3I", 0, 0, 8, 3, 10, 28, 28) + bytes(7840))
        f.truncate(3 * 2**30)
    cases["idx-sparse-tail"] = ("idx", sparse, "trailing data")

    # IDX: a header declaring 3 GB in a 1 MB file.
    liar = d / "liar-idx3-ubyte"
    liar.write_bytes(struct.pack(">BBBB3I", 0, 0, 8, 3, 3_000_000, 1000, 1) + bytes(2**20))
    cases["idx-declares-3GB"] = ("idx", liar, "truncated")

    # IDX.gz: a valid small header, then 1 GB of zeros (~1 MB compressed).
    gz_tail = d / "tail-idx3-ubyte.gz"
    body = deflated_zeros(struct.pack(">BBBB3I", 0, 0, 8, 3, 10, 28, 28), 1024)
    gz_tail.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + body + bytes(8))
    cases["idx-gz-tail"] = ("idx", gz_tail, "trailing data")

    # IDX.gz: a header declaring 3 GB, 1 MB inside.
    gz_liar = d / "liar-idx3-ubyte.gz"
    gz_liar.write_bytes(gzip.compress(struct.pack(">BBBB3I", 0, 0, 8, 3, 3_000_000, 1000, 1) + bytes(2**20)))
    cases["idx-gz-declares-3GB"] = ("idx", gz_liar, "truncated")

    # An image whose header claims 20000x20000 pixels.
    cases["image-20000x20000"] = ("image", png_claiming(d / "huge.png", 20000, 20000), "400000000 pixels")
    return cases


def test_crafted_sizes_are_refused_with_bounded_memory(crafted, valid_file, tmp_path):
    for name, (_, path, _) in crafted.items():
        assert path.stat().st_size < 32 * 2**20 or name == "idx-sparse-tail", name  # all small files
    from layerwise.data.idx import write_idx

    write_idx(tmp_path / "ok-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    Image.new("L", (28, 28)).save(tmp_path / "ok.png")
    warm_up = [("model", valid_file), ("idx", tmp_path / "ok-idx3-ubyte.gz"), ("image", tmp_path / "ok.png")]
    results = peak_memory_of_refusals([(kind, path) for kind, path, _ in crafted.values()], warm_up)
    for (name, (_, path, needle)), result in zip(crafted.items(), results, strict=True):
        outcome = result["outcome"]
        assert outcome.startswith(("ModelFileError", "DataFormatError")) and str(path) in outcome, (name, outcome)
        assert needle in outcome, (name, outcome)
        assert len(outcome) < MAX_MESSAGE + 40, name
        assert result["grew_bytes"] < LIMIT_BYTES, (name, result["grew_bytes"])


# -- one-line errors for hostile headers ------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "needles"),
    [
        ('"lr": 0.001', '"lr": 1e400', ["optimizer.config.lr", "1e400"]),
        ('"lr": 0.001', '"lr": 1' + "0" * 400, ["optimizer.config.lr", "401 digits"]),
        ('"seed": 0', '"seed": 1' + "0" * 5000, ["seed", "5001 digits"]),
        ('"iterations": 2', '"iterations": -1' + "0" * 50, ["optimizer.iterations"]),
        ('"lr": 0.001', '"lr": NaN', ["lr"]),
        ('"lr": 0.001', '"lr": -Infinity', ["lr"]),
        ('"units": 5', '"units": 1e300', ["layers[0]", "units"]),
        ('"units": 5', '"units": 99999999999999999999', ["layers[0]"]),
    ],
    ids=[
        "float-overflow",
        "int-400-digits",
        "int-5000-digits",
        "negative-50-digits",
        "nan",
        "minus-inf",
        "units-float",
        "units-20-digits",
    ],  # fmt: skip
)
def test_numbers_out_of_range_in_the_header(valid_file, tmp_path, old, new, needles):
    parts = members(valid_file)
    text = json.dumps(header_of(parts))
    assert old in text
    path = write_zip(tmp_path / "m.npz", with_header(parts, text.replace(old, new)))
    refused(path, ModelFileError, *needles)


def test_encrypted_member_is_refused(valid_file, tmp_path):
    parts = members(valid_file)
    path = tmp_path / "locked.npz"
    path.write_bytes(raw_zip([(name, 0, data, len(data)) for name, data in parts.items()], flags=0x1))
    refused(path, ModelFileError, "encrypted")


def test_lying_member_count_and_long_lists_are_cut(valid_file, tmp_path):
    parts = members(valid_file)
    entries = [(name, 0, data, len(data)) for name, data in parts.items()]
    extra = [(f"net/{i}.junk.npy", 0, b"", 0) for i in range(9000)]
    listed = tmp_path / "listed.npz"
    listed.write_bytes(raw_zip(entries + extra))
    message = refused(listed, ModelFileError, "unexpected", "and 8,995 more")
    assert len(message) < 500
    # An end record claiming 1 member for a directory of 12,000: counted after parsing, still refused.
    lying = bytearray(raw_zip(entries + [(f"x/{i}.npy", 0, b"", 0) for i in range(12_000)]))
    lying[-14:-10] = struct.pack("<2H", 1, 1)
    (tmp_path / "lying.npz").write_bytes(bytes(lying))
    refused(tmp_path / "lying.npz", ModelFileError, "12,", "members")


def test_chains_that_do_not_connect(valid_file, tmp_path):
    parts = members(valid_file)
    header = header_of(parts)
    header["layers"][2]["input_shape"] = [6]
    path = write_zip(tmp_path / "gap.npz", with_header(parts, json.dumps(header)))
    refused(path, ModelFileError, "layers[2]", "[6]", "[5]")
    # A version-1 file (Dense layers give n_in, n_out) whose second Dense takes 6 inputs after 5.
    v1 = {"format": "layerwise.model", "version": 1, "dtype": "float32", "seed": 0, "loss": "CrossEntropyLogit",
          "layers": [{"type": "Dense", "n_in": 4, "n_out": 5}, {"type": "ReLU", "inplace": True},
                     {"type": "Dense", "n_in": 6, "n_out": 3}, {"type": "Linear", "inplace": False}],
          "optimizer": {"name": "SGD", "config": {"lr": 0.1}, "iterations": 0, "slots": {}},
          "train_config": {}, "train_state": None}  # fmt: skip
    shapes = {"net/0.W.npy": (4, 5), "net/0.b.npy": (5,), "net/2.W.npy": (6, 3), "net/2.b.npy": (3,)}
    arrays = {name: npy(np.zeros(shape, np.float32)) for name, shape in shapes.items()}
    path = write_zip(tmp_path / "v1-gap.npz", with_header(arrays, json.dumps(v1)))
    refused(path, ModelFileError, "layers[2]", "[6]", "[5]")
    # A convolution after a flat input.
    header = header_of(parts)
    header["layers"].insert(0, {"type": "Conv2D", "filters": 2, "kernel_size": 3, "input_shape": [4]})
    path = write_zip(tmp_path / "conv.npz", with_header(parts, json.dumps(header)))
    refused(path, ModelFileError, "layers[0]")


def test_version_1_file_without_dense_layers_is_refused(tmp_path):
    v1 = {"format": "layerwise.model", "version": 1, "dtype": "float32", "seed": 0, "loss": "CrossEntropyLogit",
          "layers": [{"type": "ReLU", "inplace": True}],
          "optimizer": {"name": "SGD", "config": {"lr": 0.1}, "iterations": 0, "slots": {}}}  # fmt: skip
    path = write_zip(tmp_path / "v1.npz", with_header({}, json.dumps(v1)))
    refused(path, ModelFileError, "how many inputs")


def test_model_without_dense_layers_works(tmp_path):
    """Nothing to train, but a network of activations computes: it saves, loads, predicts and fits."""
    model = lw.Model(lw.Sequential([lw.layers.Tanh()], input_shape=(4,)), optimizer="sgd")
    x = np.random.default_rng(0).standard_normal((12, 4))
    model.save(tmp_path / "act.npz")
    loaded = lw.load(tmp_path / "act.npz")
    assert loaded.net.n_params == 0 and "Total parameters: 0" in loaded.summary()
    np.testing.assert_array_equal(loaded.predict(x), np.tanh(x.astype(np.float32)).argmax(axis=1))
    history = loaded.fit(x, np.arange(12) % 4, epochs=2, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], history.history["loss"][1], rtol=1e-6)


def test_rescale_zero_in_a_file(valid_file, tmp_path):
    parts = members(valid_file)
    header = header_of(parts)
    header["layers"].insert(0, {"type": "Rescale", "scale": 0, "input_shape": [4]})
    path = write_zip(tmp_path / "zero.npz", with_header(parts, json.dumps(header)))
    refused(path, ModelFileError, "layers[0]", "Rescale", "scale")


@lw.register_layer("Tag")
class Tag(lw.layers.Layer):
    """A pass-through layer carrying a free-text label (a user's custom layer), shown raw by its repr."""

    def __init__(self, label: str = "") -> None:
        super().__init__()
        self.label = label

    def forward(self, x, training=False):
        return x

    def backward(self, dy, need_dx=True):
        return dy

    def get_config(self):
        return {"label": self.label}

    def __repr__(self):
        return f"Tag({self.label})"


def test_control_characters_from_a_file_never_reach_the_terminal(tmp_path):
    model = lw.Model(lw.Sequential([Tag("ok"), lw.layers.Dense(3)], input_shape=(4,), seed=0))
    model.save(tmp_path / "tag.npz")
    parts = members(tmp_path / "tag.npz")
    evil = "\x1b[2J\x1b[31mEVIL\r\u202egnp.exe\x07"
    text = json.dumps(header_of(parts)).replace('"label": "ok"', f'"label": {json.dumps(evil)}')
    path = write_zip(tmp_path / "evil.npz", with_header(parts, text))
    loaded = lw.load(path)
    assert loaded.net.layers[0].label == evil  # the data is kept as it is...
    for shown in (loaded.summary(), loaded.net.summary(), repr(loaded)):  # ...but shown escaped
        assert not any(ord(c) < 32 and c != "\n" for c in shown) and "\u202e" not in shown, shown
        assert "\\x1b[2J" in shown
    # Error messages too: an unknown layer type with escapes in its name.
    text = json.dumps(header_of(parts)).replace('"type": "Tag"', f'"type": {json.dumps(evil)}')
    message = refused(write_zip(tmp_path / "evil2.npz", with_header(parts, text)), ModelFileError, "\\x1b[2J")
    assert "\x1b" not in message and "\r" not in message


def test_error_messages_are_capped():
    err = ModelFileError("m.npz: " + "x" * 2_000_000)
    assert len(str(err)) <= MAX_MESSAGE and str(err).startswith("m.npz: ") and "more characters" in str(err)


# -- images --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("width", "height"), [(20000, 20000), (10000, 10000), (8000, 8000)])
def test_huge_image_headers_are_refused_before_decoding(tmp_path, width, height):
    """20000² is past Pillow's bomb error, 10000² between its warning and error, 8000² past ours only."""
    assert width * height > MAX_PIXELS
    path = png_claiming(tmp_path / "big.png", width, height)
    refused(path, DataFormatError, "pixels", f"{MAX_PIXELS:,}")
    with pytest.raises(DataFormatError, match="pixels"):
        load_inputs(path, 784)


@pytest.fixture(scope="module")
def mnist_digit() -> np.ndarray:
    """A real MNIST test digit (a drawn 7 if the data set is not on this machine)."""
    try:
        (_, _), (x_test, _) = layerwise.data.load("mnist", download=False)
        return x_test[0]
    except lw.errors.DatasetNotFoundError:
        image = np.zeros((28, 28), np.uint8)
        image[6:9, 7:21] = 250
        for r in range(9, 24):
            image[r, 20 - (r - 9) // 2 : 23 - (r - 9) // 2] = 200 + r
        return image


def save_variants(digit8: np.ndarray, folder: Path) -> dict[str, Path]:
    """The same picture as an 8-bit PNG, a 16-bit PNG and float TIFFs in 0..1 and in 0..255."""
    paths = {name: folder / name for name in ("8bit.png", "16bit.png", "float01.tif", "float255.tif", "16bit.tif")}
    Image.fromarray(digit8).save(paths["8bit.png"])
    Image.fromarray(digit8.astype(np.uint16) * 257).save(paths["16bit.png"])
    Image.fromarray(digit8.astype(np.uint16) * 257).save(paths["16bit.tif"])
    Image.fromarray(digit8.astype(np.float32) / 255).save(paths["float01.tif"])
    Image.fromarray(digit8.astype(np.float32)).save(paths["float255.tif"])
    assert Image.open(paths["16bit.png"]).mode.startswith("I") and Image.open(paths["float01.tif"]).mode == "F"
    return paths


@pytest.mark.parametrize("scale", [1, 10], ids=["28px", "280px"])
@pytest.mark.parametrize("background", ["dark", "light"])
def test_high_bit_depth_images_decode_like_the_8bit_image(tmp_path, mnist_digit, scale, background):
    digit = mnist_digit if background == "dark" else 255 - mnist_digit
    digit = np.kron(digit, np.ones((scale, scale), np.uint8))  # a larger picture: resized on reading
    paths = save_variants(digit, tmp_path)
    reference = load_image(paths["8bit.png"], 28)
    assert reference.std() > 30  # a real picture, not a blank
    for name, path in paths.items():
        np.testing.assert_array_equal(load_image(path, 28), reference, err_msg=name)


def test_high_bit_depth_images_predict_like_the_8bit_image(tmp_path, mnist_digit):
    """Through ``load_inputs`` (what ``layerwise predict`` reads) and a model: identical predictions."""
    rng = np.random.default_rng(0)
    net = lw.NeuralNetwork(784, [(32, "ReLU"), (10, "Linear")], seed=0, input_scale=1 / 255)
    model = lw.Model(net)
    model.fit(rng.integers(0, 256, (64, 784)), rng.integers(0, 10, 64), epochs=1, verbose=0)
    paths = save_variants(np.kron(mnist_digit, np.ones((4, 4), np.uint8)), tmp_path)
    rows = {name: load_inputs(path, 784)[1] for name, path in paths.items()}
    expected = model.predict_proba(rows["8bit.png"])
    for name, row in rows.items():
        np.testing.assert_array_equal(model.predict_proba(row), expected, err_msg=name)
    # Before the fix Pillow's convert("L") clipped them: every inked pixel of a 16-bit digit
    # white, a float one all black.
    clipped16 = np.asarray(Image.open(paths["16bit.png"]).convert("L"))
    clipped_f = np.asarray(Image.open(paths["float01.tif"]).convert("L"))
    assert set(np.unique(clipped16)) == {0, 255} and len(np.unique(mnist_digit)) > 10 and clipped_f.max() <= 1


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        (np.full((28, 28), 300.0), "expected 0..1 or 0..255"),
        (np.full((28, 28), -2.0), "-2..-2"),
        (np.full((28, 28), np.nan), "NaN"),
    ],  # fmt: skip
    ids=["above-255", "negative", "nan"],
)
def test_float_images_out_of_range_are_refused(tmp_path, values, needle):
    path = tmp_path / "f.tif"
    Image.fromarray(values.astype(np.float32)).save(path)
    refused(path, DataFormatError, needle)


def test_damaged_images_give_data_format_errors(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(good)
    data = good.read_bytes()
    half = len(data) // 2
    for i, damaged in enumerate([data[:40], data[:half], data[:half] + bytes(64) + data[half + 64 :], data[:8]]):
        path = tmp_path / f"bad{i}.png"
        path.write_bytes(damaged)
        with pytest.raises(DataFormatError, match=f"bad{i}.png"):
            load_image(path, 28)
    with pytest.raises(lw.errors.ConfigError, match="invert"):
        load_image(good, 28, invert="sometimes")


@pytest.mark.parametrize("value", [-1, 2**128, "x", None])
def test_checkpoint_with_a_bad_rng_state(tmp_path, value):
    """Found by the property test: a PCG64 state of -1 raised NumPy's OverflowError."""
    from layerwise.io import save_model

    model = small_model()
    save_model(model, tmp_path / "c.npz", train_state=model.train_state)
    parts = members(tmp_path / "c.npz")
    header = header_of(parts)
    header["train_state"]["rng_state"]["state"]["state"] = value
    path = write_zip(tmp_path / "bad.npz", with_header(parts, json.dumps(header)))
    refused(path, ModelFileError, "rng_state")


@pytest.mark.parametrize(
    ("mirror", "needle"),
    [
        ("http://[::1/", "malformed"),
        ("https://example.org:99999/", "malformed"),
        ("https://example.org:port/", "malformed"),
        ("ftp://example.org/", "must start with"),
        ("example.org/mnist/", "must start with"),
        ("http:///mnist/", "no host name"),
        ("https://example.org/\x1b[2J/", "control characters"),
    ],
)
def test_malformed_mirror_is_a_config_error(tmp_path, monkeypatch, mirror, needle):
    from layerwise.data import datasets

    monkeypatch.setenv("LAYERWISE_MIRROR", f"https://good.example.org/ {mirror}")
    monkeypatch.setenv("LAYERWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LAYERWISE_DATA", raising=False)
    with pytest.raises(lw.errors.ConfigError) as info:
        datasets.load("mnist")
    message = str(info.value)
    assert "$LAYERWISE_MIRROR" in message and needle in message and "\x1b" not in message, message


def test_version_1_file_still_loads(tmp_path):
    """The layout layerwise 0.1 wrote (Dense layers with n_in/n_out, no input_shape), rebuilt here."""
    rng = np.random.default_rng(0)
    W1, b1 = rng.standard_normal((12, 10)).astype(np.float32), rng.standard_normal(10).astype(np.float32)
    W2, b2 = rng.standard_normal((10, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    v1 = {"format": "layerwise.model", "version": 1, "dtype": "float32", "seed": 0, "loss": "CrossEntropyLogit",
          "layers": [{"type": "Rescale", "scale": 1 / 255}, {"type": "Dense", "n_in": 12, "n_out": 10},
                     {"type": "ReLU", "inplace": True}, {"type": "Dense", "n_in": 10, "n_out": 3},
                     {"type": "Linear", "inplace": True}],
          "optimizer": {"name": "Adam", "config": {"lr": 0.001}, "iterations": 1, "slots": {"m": 1, "v": 1}},
          "train_config": {"epochs": 1}, "train_state": None}  # fmt: skip
    state = {"optimizer/m/0.npy": np.zeros(163, np.float32), "optimizer/v/0.npy": np.ones(163, np.float32)}
    arrays = {"net/1.W.npy": W1, "net/1.b.npy": b1, "net/3.W.npy": W2, "net/3.b.npy": b2, **state}
    path = write_zip(tmp_path / "v1.npz", with_header({k: npy(v) for k, v in arrays.items()}, json.dumps(v1)))
    model = lw.load(path)
    x = rng.integers(0, 256, (5, 12)).astype(np.uint8)
    expected = np.maximum(x / np.float32(255) @ W1 + b1, 0) @ W2 + b2
    np.testing.assert_allclose(model.predict_logits(x), expected, rtol=1e-5, atol=1e-5)

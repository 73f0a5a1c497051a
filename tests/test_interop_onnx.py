"""ONNX export checked by ONNX Runtime and onnx.checker, and import of what was exported (bit-identical).

For random MLPs and CNNs covering every built-in layer (BatchNorm after training
steps, Dropout, padding and stride variants, a uint8 Rescale input), ONNX Runtime's
outputs must equal ``predict_logits`` within 1e-5 in float32, every file must pass
``check_model(full_check=True)``, and ``from_onnx(to_onnx(net))`` must predict
bit-identically.  onnx and onnxruntime are test dependencies: without them these
tests skip locally but fail when the environment variable CI is set.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import layerwise as lw
from layerwise.errors import ConfigError
from layerwise.interop import from_onnx, load_onnx_model, register_onnx_exporter, to_onnx

try:
    import onnx
    import onnxruntime as ort
except ImportError:  # pragma: no cover - exercised only where onnx is missing
    if os.environ.get("CI"):
        raise
    pytest.skip("onnx/onnxruntime are not installed (set CI=1 to make this an error)", allow_module_level=True)

TOL = {"rtol": 1e-5, "atol": 1e-5}
ACTIVATIONS = [lw.ReLU, lw.Sigmoid, lw.Tanh, lw.Linear]


def run_ort(path, x: np.ndarray, input_name: str = "input") -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {input_name: x})[0]


def random_cnn(rng: np.random.Generator, dtype=np.float32) -> tuple[lw.Sequential, tuple[int, ...]]:
    """A random CNN: Rescale, 1-3 conv blocks (kernel, stride, padding variants, BN, pools), a dense head."""
    channels, height, width = int(rng.integers(1, 4)), int(rng.integers(9, 17)), int(rng.integers(9, 17))
    layers: list[lw.Layer] = [lw.Rescale(1 / 255)]
    h, w = height, width
    for _ in range(int(rng.integers(1, 4))):
        if min(h, w) < 3:  # no room for another 3x3 kernel
            break
        kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        padding = [0, 1, (1, 2), "same", "valid"][int(rng.integers(5))]
        conv = lw.Conv2D(int(rng.integers(2, 6)), kernel, stride=stride, padding=padding)
        layers.append(conv)
        h, w = conv.output_shape((1, h, w))[1:]
        if rng.random() < 0.5:
            layers.append(lw.BatchNorm())
        layers.append(ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))]())
        if min(h, w) >= 4 and rng.random() < 0.7:
            pool = (lw.MaxPool2D if rng.random() < 0.5 else lw.AvgPool2D)(
                (int(rng.integers(1, 3)), int(rng.integers(2, 4))), stride=(int(rng.integers(1, 3)), 2)
            )
            layers.append(pool)
            h, w = pool.output_shape((1, h, w))[1:]
        if rng.random() < 0.3:
            layers.append(lw.Dropout(0.25))
    layers += [lw.Flatten(), lw.Dense(int(rng.integers(5, 20))), lw.BatchNorm(), lw.Tanh(), lw.Dropout(0.5)]
    layers += [lw.Dense(7)]
    if rng.random() < 0.3:
        layers.append(lw.Softmax())
    return lw.Sequential(layers, input_shape=(channels, height, width), seed=int(rng.integers(1000)), dtype=dtype), (
        channels,
        height,
        width,
    )


def random_mlp(rng: np.random.Generator, dtype=np.float32) -> tuple[lw.Sequential, tuple[int, ...]]:
    n_in = int(rng.integers(3, 40))
    layers: list[lw.Layer] = [lw.Rescale(1 / 255)] if rng.random() < 0.5 else []
    for _ in range(int(rng.integers(1, 4))):
        layers.append(lw.Dense(int(rng.integers(2, 30))))
        if rng.random() < 0.5:
            layers.append(lw.BatchNorm())
        layers.append(ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))]())
        if rng.random() < 0.3:
            layers.append(lw.Dropout(0.1))
    layers += [lw.Dense(5), lw.Softmax() if rng.random() < 0.3 else lw.Linear()]
    return lw.Sequential(layers, input_shape=(n_in,), seed=int(rng.integers(1000)), dtype=dtype), (n_in,)


def trained(net: lw.Sequential, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[lw.Model, np.ndarray]:
    """A model after a few training steps (weights and BatchNorm statistics moved), and a uint8 test batch."""
    # A Softmax output trains under MSE on one-hot targets: the cross-entropy on logits refuses it.
    probabilities = isinstance(net.layers[-1], lw.Softmax)
    loss = "mse" if probabilities else "crossEntropyLogit"
    model = lw.Model(net, loss=loss, optimizer=lw.optim.Adam(1e-2), seed=0)
    x = rng.integers(0, 256, (48, *shape)).astype(np.uint8)
    if not net.layers[0].casts_input:
        x = x.astype(net.dtype) / 255
    y = rng.integers(0, net.output_shape[0], len(x))
    model.fit(x, np.eye(net.output_shape[0])[y] if probabilities else y, epochs=3, batch_size=16, verbose=0)
    return model, x[:20]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_onnx_runtime_matches_predict_logits(tmp_path, kind, seed):
    rng = np.random.default_rng(seed)
    net, shape = (random_cnn if kind == "cnn" else random_mlp)(rng)
    model, x = trained(net, shape, rng)
    path = tmp_path / "net.onnx"
    to_onnx(model, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    expected = model.predict_logits(x)
    np.testing.assert_allclose(run_ort(path, x), expected, **TOL)
    # ... and back: the same layers and weights, so the same arithmetic, bit for bit.
    back = from_onnx(path)
    assert [type(layer) for layer in back.layers] == [type(layer) for layer in net.layers]
    assert np.array_equal(lw.Model(back).predict_logits(x), expected)
    for name, value in net.state_dict().items():
        assert np.array_equal(back.state_dict()[name], value), name


def test_uint8_input_goes_straight_in(tmp_path):
    net = lw.NeuralNetwork(784, [(30, "ReLU"), (10, "Linear")], seed=0, input_scale=1 / 255)
    proto = to_onnx(net, tmp_path / "m.onnx")
    (graph_input,) = proto.graph.input
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [n.op_type for n in proto.graph.node][:2] == ["Cast", "Mul"]
    x = np.random.default_rng(0).integers(0, 256, (9, 784)).astype(np.uint8)
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), net.forward(x), **TOL)
    # A float input is possible too (the Cast then goes away).
    proto = to_onnx(net, tmp_path / "f.onnx", input_dtype="float32")
    assert [n.op_type for n in proto.graph.node][0] == "Mul"
    np.testing.assert_allclose(run_ort(tmp_path / "f.onnx", x.astype(np.float32)), net.forward(x), **TOL)


def test_names_dynamic_batch_and_metadata(tmp_path):
    net = lw.NeuralNetwork(20, [(8, "ReLU"), (3, "Linear")], seed=0)
    model = lw.Model(net)
    model.train_config.update(dataset="mnist", arch="[(8,ReLU),(3,Linear)]", test_accuracy=0.875)
    proto = to_onnx(model, tmp_path / "m.onnx", input_name="pixels", output_name="logits", metadata={"note": "hi"})
    assert [i.name for i in proto.graph.input] == ["pixels"] and [o.name for o in proto.graph.output] == ["logits"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 20
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["architecture"] == "[(8,ReLU),(3,Linear)]"
    assert props["dataset"] == "mnist" and float(props["test_accuracy"]) == 0.875
    assert props["loss"] == "CrossEntropyLogit" and props["note"] == "hi"
    for batch in (1, 5, 64):  # any batch size runs
        x = np.random.default_rng(batch).random((batch, 20), dtype=np.float32)
        np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x, "pixels"), net.forward(x), **TOL)
    loaded = load_onnx_model(tmp_path / "m.onnx")
    assert loaded.train_config["dataset"] == "mnist" and loaded.train_config["arch"] == "[(8,ReLU),(3,Linear)]"
    assert type(loaded.loss).__name__ == "CrossEntropyLogit"


def test_batchnorm_on_rows_and_images_uses_running_statistics(tmp_path):
    rng = np.random.default_rng(3)
    net = lw.Sequential(
        [lw.Conv2D(3, 3), lw.BatchNorm(), lw.ReLU(), lw.Flatten(), lw.Dense(6), lw.BatchNorm()],
        input_shape=(2, 6, 6),
        seed=0,
    )
    x = rng.standard_normal((30, 2, 6, 6)).astype(np.float32) * 3 + 1
    for _ in range(5):  # training-mode passes move the running statistics away from (0, 1)
        net.forward(x, training=True)
    for i in (1, 5):
        assert not np.allclose(net.layers[i].buffers["running_mean"], 0)
    to_onnx(net, tmp_path / "bn.onnx")
    np.testing.assert_allclose(run_ort(tmp_path / "bn.onnx", x[:7]), net.forward(x[:7]), **TOL)
    back = from_onnx(tmp_path / "bn.onnx")
    assert back.layers[1].momentum == 0.1 and back.layers[1].eps == 1e-5


@pytest.mark.parametrize("opset", [13, 15, 17, 21])
def test_opsets(tmp_path, opset):
    rng = np.random.default_rng(opset)
    net, shape = random_cnn(rng)
    model, x = trained(net, shape, rng)
    proto = to_onnx(model, tmp_path / "m.onnx", opset=opset)
    assert proto.opset_import[0].version == opset
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), model.predict_logits(x), **TOL)
    assert np.array_equal(from_onnx(tmp_path / "m.onnx").forward(x), net.forward(x))


def test_float64_network(tmp_path):
    rng = np.random.default_rng(5)
    net, shape = random_mlp(rng, dtype=np.float64)
    model, x = trained(net, shape, rng)
    proto = to_onnx(model, tmp_path / "m.onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    back = from_onnx(tmp_path / "m.onnx")
    assert back.dtype == np.float64 and np.array_equal(back.forward(x), net.forward(x))
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), net.forward(x), rtol=1e-12, atol=1e-12)


def test_asymmetric_same_padding_is_written_as_onnx_pads(tmp_path):
    net = lw.Sequential([lw.Conv2D(2, (2, 4), stride=(2, 3), padding="same")], input_shape=(1, 7, 8), seed=0)
    proto = to_onnx(net, tmp_path / "m.onnx")
    (conv,) = proto.graph.node
    pads = next(a for a in conv.attribute if a.name == "pads").ints
    top, bottom, left, right = net.layers[0].pads((1, 7, 8))
    assert list(pads) == [top, left, bottom, right] and (top, left) != (bottom, right)
    x = np.random.default_rng(0).standard_normal((3, 1, 7, 8)).astype(np.float32)
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), net.forward(x), **TOL)
    assert from_onnx(tmp_path / "m.onnx").layers[0].padding == "same"


# -- layers without an exporter ---------------------------------------------------------------
@lw.register_layer
class Doubler(lw.Layer):
    """A user layer: y = 2x."""

    def forward(self, x, training=False):
        return 2 * x

    def backward(self, dy, need_dx=True):
        return 2 * dy


@lw.register_layer
class Halver(lw.Layer):
    def forward(self, x, training=False):
        return x / 2

    def backward(self, dy, need_dx=True):
        return dy / 2


def test_layer_without_exporter_is_named(tmp_path):
    net = lw.Sequential([lw.Dense(4), Halver(), lw.Dense(2)], input_shape=(3,), seed=0)
    with pytest.raises(ConfigError, match=r"layers\[1\] .*Halver.* no ONNX exporter.*register_onnx_exporter"):
        to_onnx(net, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_user_layer_with_registered_exporter(tmp_path):
    @register_onnx_exporter(Doubler)
    def export_doubler(layer, graph, x, input_shape):
        return graph.node("Mul", [x, graph.constant(np.array(2.0), "two")])

    net = lw.Sequential([lw.Dense(4), Doubler(), lw.ReLU(), lw.Dense(2)], input_shape=(3,), seed=0)
    to_onnx(net, tmp_path / "m.onnx")
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), net.forward(x), **TOL)
    # The importer reads the Mul by a scalar as a Rescale: the same function.
    np.testing.assert_allclose(from_onnx(tmp_path / "m.onnx").forward(x), net.forward(x), **TOL)


def test_broken_user_exporter_is_caught_by_the_checker(tmp_path):
    @register_onnx_exporter(Halver)
    def bad(layer, graph, x, input_shape):
        return graph.node("NoSuchOp", [x])

    net = lw.Sequential([lw.Dense(4), Halver()], input_shape=(3,), seed=0)
    with pytest.raises(ConfigError, match="not valid ONNX"):
        to_onnx(net, tmp_path / "m.onnx")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"opset": 9}, "opset"),
        ({"opset": "17"}, "opset"),
        ({"input_dtype": "complex64"}, "input_dtype"),
        ({"input_name": ""}, "input_name"),
        ({"input_name": "x", "output_name": "x"}, "must differ"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, needle):
    net = lw.NeuralNetwork(4, [(2, "Linear")], seed=0)
    with pytest.raises(ConfigError, match=needle):
        to_onnx(net, tmp_path / "m.onnx", **kwargs)


def test_not_a_network(tmp_path):
    with pytest.raises(ConfigError, match="expected a layerwise Sequential or Model"):
        to_onnx("model.npz", tmp_path / "m.onnx")


def test_random_networks_cover_every_layer_and_padding():
    """The parity test above really meets every built-in layer, padding and pooling variant."""
    kinds, paddings, strides = set(), set(), set()
    for seed in range(12):
        for make in (random_cnn, random_mlp):
            net, _ = make(np.random.default_rng(seed))
            kinds |= {type(layer) for layer in net.layers}
            paddings |= {str(layer.padding) for layer in net.layers if isinstance(layer, lw.Conv2D)}
            strides |= {layer.stride for layer in net.layers if isinstance(layer, lw.Conv2D)}
    assert kinds >= {lw.Rescale, lw.Conv2D, lw.BatchNorm, lw.ReLU, lw.Sigmoid, lw.Tanh, lw.Linear, lw.Softmax,
                     lw.MaxPool2D, lw.AvgPool2D, lw.Dropout, lw.Flatten, lw.Dense}  # fmt: skip
    assert paddings >= {"0", "1", "(1, 2)", "same", "valid"}
    assert {(1, 1), (2, 2), (1, 2), (2, 1)} <= strides

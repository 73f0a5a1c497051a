"""``from_onnx`` on hand-made graphs: each accepted pattern computes what ONNX Runtime computes; the rest is refused.

Patterns other exporters write (MatMul + Add, Constant nodes, Div, auto_pad,
Gemm's alpha/beta and transB, Reshape to (batch, -1)...) are checked against
ONNX Runtime running the same file; graphs layerwise cannot represent must raise
``ModelFileError`` naming the node and the reason.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import layerwise as lw
from layerwise.errors import ModelFileError
from layerwise.interop import from_onnx

try:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # pragma: no cover - exercised only where onnx is missing
    if os.environ.get("CI"):
        raise
    pytest.skip("onnx/onnxruntime are not installed (set CI=1 to make this an error)", allow_module_level=True)

RNG = np.random.default_rng(0)


def const(name: str, value) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def save(tmp_path, nodes, inits, in_shape, out_shape, elem=TensorProto.FLOAT, opset=17, name="m.onnx"):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", elem, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *out_shape])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def agrees_with_ort(path, x: np.ndarray) -> lw.Sequential:
    net = from_onnx(path)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(net.forward(x), expected, rtol=1e-5, atol=1e-5)
    return net


def test_matmul_add_constant_nodes_and_div(tmp_path):
    W, b = RNG.standard_normal((6, 4)).astype(np.float32), RNG.standard_normal(4).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["ten"], value=const("t", np.array(10.0, np.float32))),
        helper.make_node("Div", ["x", "ten"], ["d"]),
        helper.make_node("MatMul", ["d", "W"], ["m"]),
        helper.make_node("Add", ["b", "m"], ["a"]),  # the constant first: Add commutes
        helper.make_node("Identity", ["a"], ["y"]),
    ]
    path = save(tmp_path, nodes, [const("W", W), const("b", b)], [6], [4])
    net = agrees_with_ort(path, RNG.standard_normal((5, 6)).astype(np.float32))
    assert [type(layer) for layer in net.layers] == [lw.Rescale, lw.Dense, lw.Linear]
    assert np.array_equal(net.layers[1].params["b"], b)


def test_gemm_alpha_beta_trans_b_and_a_broadcast_bias(tmp_path):
    B = RNG.standard_normal((4, 6)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "B", "C"], ["y"], alpha=0.5, beta=2.0, transB=1)]
    path = save(tmp_path, nodes, [const("B", B), const("C", np.full((1, 4), 0.25, np.float32))], [6], [4])
    net = agrees_with_ort(path, RNG.standard_normal((3, 6)).astype(np.float32))
    assert net.layers[0].params["W"].shape == (6, 4)


def test_auto_pad_same_upper_and_reshape_to_rows(tmp_path):
    W = RNG.standard_normal((3, 2, 2, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("AveragePool", ["c"], ["p"], kernel_shape=[2, 2], strides=[1, 1]),
        helper.make_node("Reshape", ["p", "shape"], ["y"]),
    ]
    inits = [const("W", W), const("shape", np.array([0, -1], np.int64))]
    path = save(tmp_path, nodes, inits, [2, 7, 8], [3 * 3 * 3])
    net = agrees_with_ort(path, RNG.standard_normal((4, 2, 7, 8)).astype(np.float32))
    assert net.layers[0].padding == "same" and not net.layers[0].params["b"].any()


def test_uint8_input_with_cast_and_mul(tmp_path):
    nodes = [
        helper.make_node("Cast", ["x"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["f", "s"], ["y"]),
    ]
    path = save(tmp_path, nodes, [const("s", np.array(1 / 255, np.float32))], [5], [5], elem=TensorProto.UINT8)
    net = agrees_with_ort(path, RNG.integers(0, 256, (3, 5)).astype(np.uint8))
    assert len(net.layers) == 1 and isinstance(net.layers[0], lw.Rescale)


def relu(tmp_path, **kwargs):
    return save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [], [3], [3], **kwargs)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (
            lambda: (
                [helper.make_node("Gemm", ["x", "W"], ["y"], transA=1)],
                [const("W", np.ones((3, 3), np.float32))],
                [3],
                [3],
            ),
            "transA=1",
        ),  # fmt: skip
        (
            lambda: (
                [helper.make_node("Gemm", ["x", "W"], ["y"])],
                [const("W", np.ones((4, 3), np.float32))],
                [3],
                [3],
            ),
            "W has shape (4, 3)",
        ),
        (
            lambda: (
                [helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 0, 0, 0])],
                [const("W", np.ones((1, 1, 1, 1), np.float32))],
                [1, 4, 4],
                [1, 5, 4],
            ),
            "asymmetric padding",
        ),
        (
            lambda: (
                [helper.make_node("Conv", ["x", "W"], ["y"], group=1, dilations=[2, 2])],
                [const("W", np.ones((1, 1, 2, 2), np.float32))],
                [1, 4, 4],
                [1, 2, 2],
            ),
            "dilated",
        ),
        (
            lambda: (
                [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], ceil_mode=1)],
                [],
                [1, 5, 5],
                [1, 3, 3],
            ),
            "ceil_mode=1",
        ),
        (
            lambda: (
                [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], pads=[1, 1, 1, 1])],
                [],
                [1, 4, 4],
                [1, 5, 5],
            ),
            "padded pooling",
        ),
        (lambda: ([helper.make_node("Softmax", ["x"], ["y"], axis=2)], [], [3, 4], [3, 4]), "axis 2"),
        (lambda: ([helper.make_node("Flatten", ["x"], ["y"], axis=2)], [], [3, 4], [3, 4]), "axis=2"),
        (
            lambda: (
                [helper.make_node("Reshape", ["x", "s"], ["y"])],
                [const("s", np.array([-1, 2, 6], np.int64))],
                [12],
                [2, 6],
            ),
            "reshapes to [-1, 2, 6]",
        ),
        (
            lambda: ([helper.make_node("Mul", ["x", "v"], ["y"])], [const("v", np.ones(3, np.float32))], [3], [3]),
            "only a scalar",
        ),
        (
            lambda: ([helper.make_node("Add", ["x", "v"], ["y"])], [const("v", np.ones(3, np.float32))], [3], [3]),
            "only as the bias right after a MatMul",
        ),
        (lambda: ([helper.make_node("Relu", ["x"], ["y"], alpha=1.0)], [], [3], [3]), "attribute 'alpha'"),
        (lambda: ([helper.make_node("Relu", ["x"], ["y"])], [], [3], [4]), "declared ['N', 4]"),
        (
            lambda: ([helper.make_node("Gemm", ["x", "W"], ["y"])], [const("W", np.ones((3, 3)))], [3], [3]),
            "the network computes in",
        ),  # float64 weights, float32 input
        (
            lambda: (
                [helper.make_node("Mul", ["x", "v"], ["y"])],
                [const("v", np.array(np.inf, np.float32))],
                [3],
                [3],
            ),
            "NaN or inf",
        ),
        (
            lambda: (
                [helper.make_node("Dropout", ["x", "r", "t"], ["y"])],
                [const("r", np.array(0.5, np.float32)), const("t", np.array(True))],
                [3],
                [3],
            ),
            "training_mode",
        ),
    ],
)
def test_refused_graphs_name_the_node(tmp_path, make, needle):
    nodes, inits, in_shape, out_shape = make()
    nodes[0].name = "the_node"
    path = save(tmp_path, nodes, inits, in_shape, out_shape)
    with pytest.raises(ModelFileError) as info:
        from_onnx(path)
    assert needle in str(info.value) and str(path) in str(info.value)
    if "declared" not in needle:
        assert "the_node" in str(info.value)


def test_input_shape_must_be_static_after_the_batch(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "C"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    with pytest.raises(ModelFileError, match="fixed positive size"):
        from_onnx(tmp_path / "m.onnx")


def test_integer_input_without_cast_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="Cast the input to float first"):
        from_onnx(relu(tmp_path, elem=TensorProto.UINT8))


def test_agrees_with_the_reference_parser_on_valid_files(tmp_path):
    """Our reader and onnx.load see the same graph in the files of the other tests."""
    from layerwise.interop.onnx_proto import read_model
    from layerwise.interop.onnx_tensors import tensor_array

    path = relu(tmp_path)
    net = lw.Sequential([lw.Conv2D(2, 3, padding=1), lw.BatchNorm(), lw.Flatten(), lw.Dense(3)], (1, 5, 5), seed=0)
    from layerwise.interop import to_onnx

    to_onnx(net, tmp_path / "n.onnx", metadata={"k": "v"})
    for p in (path, tmp_path / "n.onnx"):
        ours, data = read_model(p)
        ref = onnx.load(str(p))
        assert [n.op_type for n in ours.graph.nodes] == [n.op_type for n in ref.graph.node]
        assert [list(n.inputs) for n in ours.graph.nodes] == [list(n.input) for n in ref.graph.node]
        assert ours.metadata == {e.key: e.value for e in ref.metadata_props}
        for init in ref.graph.initializer:
            assert np.array_equal(
                tensor_array(ours.graph.initializers[init.name], data, "f", "t"), numpy_helper.to_array(init)
            )

"""``layerwise export`` and ``layerwise import``: the command line of ``layerwise.interop``.

``layerwise.cli`` adds these two commands through ``add_parsers``; its
``summary``, ``evaluate`` and ``predict`` read ``.onnx`` files through
``load_onnx_model``.  Errors are ``LayerwiseError``s, which the main command line
reports in one line with exit code 2 (a missing optional package included).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

FORMATS = {".onnx": "onnx", ".safetensors": "safetensors", ".st": "safetensors"}

EXPORT_DESCRIPTION = """\
Write MODEL (a layerwise .npz, a run folder holding model.npz, or an .onnx file) as OUT:

  onnx         an ONNX model for ONNX Runtime, browsers (onnxruntime-web), phones...: the
               network in inference mode, input 'input' (uint8 pixels when the network starts
               by rescaling them) with a dynamic batch dimension, output 'output' (logits),
               architecture, data set and accuracy in the file's metadata.  Needs the onnx
               package: pip install 'layerwise[onnx]'.
  safetensors  the weights (parameters and BatchNorm statistics) by name, no pickle; with
               --torch-names under the names of the equivalent torch.nn.Sequential, so that
               module.load_state_dict(safetensors.torch.load_file(OUT)) loads them.

The format follows OUT's extension (.onnx, .safetensors) unless --format says otherwise.

Use the ONNX file elsewhere, e.g. in Python with ONNX Runtime:
  import onnxruntime as ort
  session = ort.InferenceSession("model.onnx")
  logits = session.run(None, {"input": images})[0]   # images: uint8 (n, 784) or (n, 1, 28, 28)"""

IMPORT_DESCRIPTION = """\
Read an ONNX model (written by 'layerwise export', or by torch.onnx.export for a
torch.nn.Sequential of Linear/Conv2d/pooling/BatchNorm/activation modules) and save it as a
layerwise .npz model, which 'layerwise summary/evaluate/predict' and layerwise.load read.
Graphs that are not one sequential chain of supported operators are refused, naming the node.
(summary, evaluate and predict also take the .onnx file directly.)"""


def add_parsers(sub: Any, common: argparse.ArgumentParser, formatter: type[argparse.HelpFormatter]) -> None:
    """Add ``export`` and ``import`` to the subparsers ``sub`` of the main parser."""
    p = sub.add_parser(
        "export",
        parents=[common],
        formatter_class=formatter,
        help="write a model as ONNX (for ONNX Runtime and others) or its weights as safetensors",
        description=EXPORT_DESCRIPTION,
        epilog=(
            "examples:\n"
            "  layerwise export runs/hw2/c.npz mlp.onnx\n"
            "  layerwise export runs/lenet5/model.npz lenet5.safetensors --torch-names"
        ),
    )
    p.add_argument("model", metavar="MODEL", help="model .npz file, run folder, or .onnx file")
    p.add_argument("out", metavar="OUT", help="the file to write (.onnx or .safetensors)")
    p.add_argument("--format", choices=("onnx", "safetensors"), help="default: from OUT's extension")
    p.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset (default 17)")
    p.add_argument(
        "--input-dtype",
        choices=("uint8", "float32", "float64"),
        help="ONNX input type (default: uint8 when the network rescales raw pixels, else its float type)",
    )
    p.add_argument("--torch-names", action="store_true", help="safetensors: PyTorch state_dict names")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "import",
        parents=[common],
        formatter_class=formatter,
        help="turn an ONNX model (from layerwise or torch.onnx.export) into a layerwise .npz model",
        description=IMPORT_DESCRIPTION,
        epilog="example:\n  layerwise import lenet5.onnx lenet5.npz",
    )
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX file")
    p.add_argument("out", metavar="OUT.npz", help="the layerwise model file to write")
    p.set_defaults(func=cmd_import)


def _shape(shape: Any) -> str:
    return "(batch, " + ", ".join(map(str, shape)) + ")"


def cmd_export(args: argparse.Namespace) -> int:
    from ..cli.common import UserError
    from ..cli.common import load_model as _load_model

    fmt = args.format or FORMATS.get(Path(args.out).suffix.lower())
    if fmt is None:
        raise UserError(f"OUT {args.out!r}: cannot tell the format from its extension; use --format onnx|safetensors")
    if fmt == "safetensors" and (args.opset is not None or args.input_dtype is not None):
        raise UserError("--opset and --input-dtype apply to ONNX files only")
    if fmt == "onnx" and args.torch_names:
        raise UserError("--torch-names applies to safetensors files only")
    model = _load_model(args.model)
    net = model.net
    if fmt == "onnx":
        from .onnx_export import DEFAULT_OPSET, to_onnx

        opset = DEFAULT_OPSET if args.opset is None else args.opset
        proto = to_onnx(model, args.out, opset=opset, input_dtype=args.input_dtype)
        elem = {1: "float32", 2: "uint8", 11: "float64"}
        in_type = elem.get(proto.graph.input[0].type.tensor_type.elem_type, "?")
        print(
            f"Wrote {args.out}: ONNX opset {opset}, input 'input' {in_type} {_shape(net.input_shape)} -> "
            f"output 'output' {net.dtype.name} {_shape(net.output_shape)}, {net.n_params:,} parameters"
        )
    else:
        from .safetensors import save_safetensors

        save_safetensors(model, args.out, torch_names=args.torch_names)
        count = len(net.named_parameters()) + len(net.named_buffers())
        names = "PyTorch state_dict names" if args.torch_names else "layerwise names such as 0.W"
        print(f"Wrote {args.out}: {count} tensors ({names}), {net.n_params:,} parameters")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .onnx_import import load_onnx_model

    model = load_onnx_model(args.model)
    model.save(args.out)
    print(model.summary())
    print(f"Wrote {args.out}")
    return 0

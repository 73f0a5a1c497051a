"""Read matrices back out of rendered worksheets, and an independent PyTorch reference run.

Nothing here imports the sheet's own number formatting: a printed entry is parsed
as text and compared with a reference value to the precision it was printed at.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812 (the usual name)

from layerwise.explain import Matrix, SymbolicMatrix, Worksheet

FIXED = re.compile(r"-?\d+(?:\.\d+)?")
SCIENTIFIC = re.compile(r"(-?\d+(?:\.\d+)?) \\times 10\^\{(-?\d+)\}")
BMATRIX = re.compile(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", re.S)


def math_blocks(text: str, fmt: str) -> list[str]:
    """The display-math blocks: ``$$ … $$`` in Markdown, ``\\[ … \\]`` in LaTeX."""
    pattern = r"\$\$(.*?)\$\$" if fmt == "markdown" else r"\\\[ (.*?) \\\]"
    return re.findall(pattern, text, re.S)


def parse_entry(entry: str) -> tuple[float, str] | None:
    """(value, printed form) of a numeric entry, None for a formula such as ``\\log(0.5)``."""
    entry = entry.strip()
    if FIXED.fullmatch(entry):
        return float(entry), entry
    match = SCIENTIFIC.fullmatch(entry)
    if match:
        return float(match.group(1)) * 10.0 ** int(match.group(2)), entry
    return None


def parse_bmatrix(body: str) -> list[list[tuple[float, str]]] | None:
    """Rows of parsed entries, or None when any entry is a formula."""
    rows = []
    for row in body.split(r"\\"):
        entries = [parse_entry(e) for e in row.split("&")]
        if any(e is None for e in entries):
            return None
        rows.append(entries)
    if len({len(r) for r in rows}) != 1:
        raise AssertionError(f"ragged printed matrix: {body!r}")
    return rows


def all_bmatrices(text: str, fmt: str) -> list[list[list[tuple[float, str]]] | None]:
    return [parse_bmatrix(body) for block in math_blocks(text, fmt) for body in BMATRIX.findall(block)]


def within_printed(printed: str, value: float, expected: float, digits: int) -> bool:
    """Does ``expected`` round to what was printed?  ``value`` is the printed number read back."""
    slack = 1e-9
    if "times" in printed:  # digits significant digits
        exponent = int(SCIENTIFIC.fullmatch(printed).group(2))
        return abs(value - expected) <= 0.5 * 10.0 ** (exponent - (digits - 1)) * (1 + 1e-9) + 1e-300
    if value == 0:  # 0 is printed for |x| below 1e-12 (round-off) or below half the last decimal
        return abs(expected) <= max(0.5 * 10.0**-digits, 1e-12) + slack
    return abs(value - expected) <= 0.5 * 10.0**-digits + slack


def sheet_matrix_items(sheet: Worksheet) -> list[Matrix | SymbolicMatrix]:
    return [i for eq in sheet.equations() for i in eq.items() if isinstance(i, (Matrix, SymbolicMatrix))]


def check_rendered(sheet: Worksheet, text: str, fmt: str, expected: dict[str, np.ndarray], digits: int) -> int:
    """Every printed matrix of ``text`` against ``expected[key]``; returns how many numeric ones were checked."""
    printed = all_bmatrices(text, fmt)
    items = sheet_matrix_items(sheet)
    assert len(printed) == len(items), f"{len(printed)} matrices printed, the sheet has {len(items)}"
    checked = 0
    for item, rows in zip(items, printed, strict=True):
        if isinstance(item, SymbolicMatrix):
            assert rows is None, f"a matrix of formulas printed as numbers: {rows}"
            continue
        assert rows is not None, f"{item.key}: printed with formulas"
        values = np.array([[v for v, _ in row] for row in rows])
        if item.key == "ones":
            assert (values == 1).all()
            continue
        want = expected[item.key]
        assert values.shape == want.shape, f"{item.key}: printed {values.shape}, reference {want.shape}"
        for (r, c), w in np.ndenumerate(want):
            value, form = rows[r][c]
            assert within_printed(form, value, float(w), digits), (
                f"{item.key}[{r},{c}]: printed {form}, reference {w!r}"
            )
        checked += 1
    return checked


def scalar_after_last_equals(block: str) -> float:
    tail = block.replace(r"\end{aligned}", "").rsplit("=", 1)[1].strip()
    parsed = parse_entry(tail)
    assert parsed is not None, tail
    return parsed[0]


def lhs(block: str) -> str:
    block = block.replace(r"\begin{aligned}", "").strip()
    return re.split(r" &?= ", block, maxsplit=1)[0].strip()


def display(array: np.ndarray, layout: str) -> np.ndarray:
    """A library-layout array as the sheet prints it (the sheet's convention, restated independently)."""
    a = np.asarray(array, dtype=np.float64)
    if a.ndim == 1:
        return a[:, None] if layout == "seed" else a[None, :]
    return a.T if layout == "seed" else a


# ----------------------------------------------------------------------------- the reference
@dataclass
class Problem:
    arch: list[tuple[int, str]]
    x: np.ndarray  # (n, n_in), rows are samples
    y: np.ndarray  # (n, n_out) one-hot for cross-entropy
    W: list[np.ndarray]  # (n_in, n_out) per layer
    b: list[np.ndarray]
    loss: str
    optimizer: str  # "sgd" or "adam"
    lr: float
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    steps: int = 1
    batch_size: int = 1


ACTIVATIONS = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


def torch_reference(pr: Problem, layout: str) -> dict[str, np.ndarray]:
    """Every quantity the sheet prints, keyed as the sheet keys its matrices, from torch autograd and torch.optim."""
    t64 = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    Ws = [t64(w).requires_grad_() for w in pr.W]
    bs = [t64(b).requires_grad_() for b in pr.b]
    params = [p for pair in zip(Ws, bs, strict=True) for p in pair]
    if pr.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=pr.lr, betas=pr.betas, eps=pr.eps)
    else:
        opt = torch.optim.SGD(params, lr=pr.lr, momentum=pr.momentum)
    raw: dict[str, np.ndarray] = {"X:all": pr.x, "Y:all": pr.y}
    n = len(pr.x)
    n_batches = math.ceil(n / pr.batch_size)
    for t in range(pr.steps):
        lo = (t % n_batches) * pr.batch_size
        xb, yb = pr.x[lo : lo + pr.batch_size], pr.y[lo : lo + pr.batch_size]
        raw[f"X:0:{t}"], raw[f"Y:0:{t}"] = xb, yb
        a = t64(xb)
        zs, acts = [], []
        for l, (_, act) in enumerate(pr.arch, start=1):
            raw[f"W:{l}:{t}"], raw[f"b:{l}:{t}"] = Ws[l - 1].detach().numpy().copy(), bs[l - 1].detach().numpy().copy()
            z = a @ Ws[l - 1] + bs[l - 1]
            z.retain_grad()
            a = z if act == "linear" else ACTIVATIONS[act](z)
            if act != "linear":
                a.retain_grad()
            zs.append(z)
            acts.append(a)
        out = a
        if pr.loss == "crossEntropyLogit":
            J = F.cross_entropy(out, t64(yb).argmax(dim=1))
            raw[f"p:0:{t}"] = torch.softmax(out, dim=1).detach().numpy()
        elif pr.loss == "logistic":
            J = F.binary_cross_entropy_with_logits(out, t64(yb))
            raw[f"p:0:{t}"] = torch.sigmoid(out).detach().numpy()
        else:
            J = F.mse_loss(out, t64(yb))
            raw[f"diff:0:{t}"] = (out - t64(yb)).detach().numpy()
        opt.zero_grad()
        J.backward()
        raw[f"J:0:{t}"] = np.array(J.item())
        for l, ((_, act), z, a) in enumerate(zip(pr.arch, zs, acts, strict=True), start=1):
            raw[f"z:{l}:{t}"], raw[f"dz:{l}:{t}"] = z.detach().numpy(), z.grad.numpy().copy()
            if act != "linear":
                av = a.detach().numpy()
                raw[f"a:{l}:{t}"], raw[f"da:{l}:{t}"] = av, a.grad.numpy().copy()
                raw[f"dact:{l}:{t}"] = {
                    "relu": (z.detach().numpy() > 0).astype(float),
                    "sigmoid": av * (1 - av),
                    "tanh": 1 - av * av,
                }[act]
            raw[f"dW:{l}:{t}"], raw[f"db:{l}:{t}"] = Ws[l - 1].grad.numpy().copy(), bs[l - 1].grad.numpy().copy()
        opt.step()
        for l in range(1, len(pr.arch) + 1):
            for name, p in (("W", Ws[l - 1]), ("b", bs[l - 1])):
                raw[f"{name}:{l}:{t + 1}"] = p.detach().numpy().copy()
                state = opt.state[p]
                if pr.optimizer == "adam":
                    k = t + 1
                    if t == 0:
                        raw[f"m{name}:{l}:0"] = raw[f"v{name}:{l}:0"] = np.zeros(p.shape)
                    m, v = state["exp_avg"].numpy().copy(), state["exp_avg_sq"].numpy().copy()
                    raw[f"m{name}:{l}:{k}"], raw[f"v{name}:{l}:{k}"] = m, v
                    raw[f"mhat{name}:{l}:{k}"] = m / (1 - pr.betas[0] ** k)
                    raw[f"vhat{name}:{l}:{k}"] = v / (1 - pr.betas[1] ** k)
                elif pr.momentum:
                    raw[f"v{name}:{l}:{t + 1}"] = state["momentum_buffer"].numpy().copy()
    return {k: (v if k.startswith("J:") else display(v, layout)) for k, v in raw.items()}

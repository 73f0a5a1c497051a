"""Problems 1 and 2: the softmax Jacobian and cross-entropy sheets, read back and checked against torch autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from layerwise.errors import InputError, ShapeError
from layerwise.explain import cross_entropy, jacobian

from .helpers import check_rendered, lhs, math_blocks, scalar_after_last_equals


def torch_softmax_jacobian(z: np.ndarray) -> np.ndarray:
    """J[i, j] = ∂p_j/∂z_i (the seed's convention; torch's jacobian is indexed [output, input])."""
    t = torch.tensor(z, dtype=torch.float64)
    return torch.autograd.functional.jacobian(lambda v: torch.softmax(v, 0), t).numpy().T


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-5, 5, allow_nan=False).map(lambda v: round(v, 2)), min_size=1, max_size=5),
    st.integers(2, 6),
)
def test_jacobian_sheet_matches_torch(z: list[float], digits: int) -> None:
    z = np.array(z)
    sheet = jacobian(z, digits=digits)
    p = torch.softmax(torch.tensor(z), 0).numpy()
    expected = {"z": z[:, None], "p": p[:, None], "jacobian": torch_softmax_jacobian(z)}
    for fmt in ("markdown", "latex"):
        assert check_rendered(sheet, sheet.render(fmt), fmt, expected, digits) == 3
    assert sheet.verified is True


def test_jacobian_sheet_spells_out_problem1() -> None:
    text = jacobian([0, 0]).to_markdown()
    assert r"p_j(\delta_{ij} - p_i)" in text
    assert r"0.5(1 - 0.5) & -0.5 \cdot 0.5" in text
    assert r"\begin{bmatrix} 0.25 & -0.25 \\ -0.25 & 0.25 \end{bmatrix}" in text
    assert "Verified: the Softmax layer's backward pass" in text


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-3, 3, allow_nan=False).map(lambda v: round(v, 2)), min_size=2, max_size=4),
    st.sampled_from([0.0, 50.0, 1000.0, -800.0]),
    st.data(),
)
def test_cross_entropy_sheet_matches_torch_even_for_huge_logits(z: list[float], offset: float, data) -> None:
    z = np.array(z) + offset  # e^1000 overflows: only the log-sum-exp shift keeps it finite
    n = z.size
    label = data.draw(st.integers(0, n - 1))
    y = np.eye(n)[label]
    sheet = cross_entropy(z, y, digits=4)
    zt = torch.tensor(z, requires_grad=True)
    J = torch.nn.functional.cross_entropy(zt[None], torch.tensor([label]))
    J.backward()
    p = torch.softmax(zt.detach(), 0).numpy()
    log_p = torch.log_softmax(zt.detach(), 0).numpy()
    expected = {
        "z": z[:, None],
        "y": y[:, None],
        "shifted": (z - z.max())[:, None],
        "p": p[:, None],
        "log_p": log_p[:, None],
        "dz": zt.grad.numpy()[:, None],
    }
    for fmt in ("markdown", "latex"):
        text = sheet.render(fmt)
        check_rendered(sheet, text, fmt, expected, 4)
        assert "inf" not in text and "nan" not in text.lower()
        eq = {lhs(b): b for b in math_blocks(text, fmt)}
        assert abs(scalar_after_last_equals(eq["J"]) - J.item()) <= 0.5e-4 + 1e-9
        assert scalar_after_last_equals(eq["c"]) == z.max()
    assert sheet.verified is True


def test_cross_entropy_takes_a_class_label() -> None:
    by_label = cross_entropy([1, 2, 3], [2]).to_markdown()
    assert by_label == cross_entropy([1, 2, 3], [0, 0, 1]).to_markdown()


@pytest.mark.parametrize(
    ("z", "y", "error", "fragment"),
    [
        ([1, 2], [1, 0, 0], ShapeError, "y: expected 2 entries"),
        ([1, 2], [0.5, 0.6], InputError, "summing to 1"),
        ([1, 2], [2], InputError, "class label 0 to 1"),
        ([[1, 2], [3, 4]], [1, 0], ShapeError, "z: expected a vector"),
        ([1, float("nan")], [1, 0], InputError, "z: expected finite"),
    ],
)
def test_cross_entropy_rejects_bad_input(z, y, error, fragment) -> None:
    with pytest.raises(error, match=fragment):
        cross_entropy(z, y)

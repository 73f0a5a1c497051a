"""``layerwise explain``: worked solutions, step by step, in the homework's own notation.

>>> from layerwise.explain import gradient_descent
>>> sheet = gradient_descent()          # the seed's Problem 3: two iterations, X = Y = I₂
>>> print(sheet.to_markdown())          # $$ … $$ blocks with bmatrix matrices

- ``gradient_descent(arch, x, y, ...)``: forward pass, loss, backward pass and update of
  every iteration for a small network (Problem 3), recorded from a real ``Model.fit``;
- ``jacobian(z)``: the softmax Jacobian p_j(δ_ij − p_i) (Problem 1);
- ``cross_entropy(z, y)``: J and dJ/dz = p − y with the log-sum-exp shift (Problem 2).

Each returns a ``Worksheet`` with ``to_markdown()``, ``to_latex()`` and ``to_text()``.
"""

from .gradient import gradient_descent
from .parse import parse_matrix, read_csv
from .problems import cross_entropy, jacobian
from .worksheet import Equation, Heading, Matrix, Paragraph, Scalar, SymbolicMatrix, Tex, Worksheet, format_number

__all__ = [
    "Equation",
    "Heading",
    "Matrix",
    "Paragraph",
    "Scalar",
    "SymbolicMatrix",
    "Tex",
    "Worksheet",
    "cross_entropy",
    "format_number",
    "gradient_descent",
    "jacobian",
    "parse_matrix",
    "read_csv",
]

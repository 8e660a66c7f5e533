"""Reference learners for in-context linear regression, computed exactly (no training).

Given context ``x [B, k, d]``, ``y [B, k]`` and a query ``x_q [B, d]``, each learner predicts
``y_q`` from the context alone:

- ``gd(eta, steps)``: gradient descent from w = 0 on L(w) = 1/(2k) sum_i (w.x_i - y_i)^2 with
  learning rate eta (von Oswald et al. 2022: one step is w = eta/k sum_i y_i x_i);
- ``ridge(lam)``: w = (X^T X + lam I)^-1 X^T y;
- ``least squares``: the minimum-norm solution (pseudo-inverse; interpolates when k < d);
- ``knn(n)``: mean label of the n nearest context inputs (Euclidean);
- ``averaging``: w = 1/k sum_i y_i x_i (Garg et al. 2022; one GD step with eta = 1);
- ``zero``: predicts 0 (the best guess without context).

Learning rates and ridge strengths are chosen on separate validation tasks (:func:`best_eta`,
:func:`best_lambda`), never on the tasks that are then scored.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def gd_weights(x: Tensor, y: Tensor, eta: float, steps: int = 1) -> Tensor:
    """w after ``steps`` GD steps from 0 [B, d] (k = 0: zeros)."""
    B, k, d = x.shape
    w = x.new_zeros(B, d)
    if k == 0:
        return w
    for _ in range(steps):
        resid = torch.einsum("bkd,bd->bk", x, w) - y
        w = w - eta / k * torch.einsum("bk,bkd->bd", resid, x)
    return w


def ridge_weights(x: Tensor, y: Tensor, lam: float) -> Tensor:
    """Ridge regression weights [B, d]."""
    d = x.shape[-1]
    gram = x.transpose(1, 2) @ x + lam * torch.eye(d, dtype=x.dtype)
    return torch.linalg.solve(gram, (x.transpose(1, 2) @ y.unsqueeze(-1))).squeeze(-1)


def ols_weights(x: Tensor, y: Tensor) -> Tensor:
    """Minimum-norm least-squares weights [B, d] (pseudo-inverse)."""
    if x.shape[1] == 0:
        return x.new_zeros(x.shape[0], x.shape[2])
    return (torch.linalg.pinv(x) @ y.unsqueeze(-1)).squeeze(-1)


def knn_predict(x: Tensor, y: Tensor, x_q: Tensor, n: int = 3) -> Tensor:
    """Mean label of the ``n`` nearest context inputs [B]."""
    k = x.shape[1]
    if k == 0:
        return x_q.new_zeros(x_q.shape[0])
    dist = (x - x_q.unsqueeze(1)).pow(2).sum(-1)
    idx = dist.topk(min(n, k), largest=False).indices
    return torch.gather(y, 1, idx).mean(1)


def predict(w: Tensor, x_q: Tensor) -> Tensor:
    return (w * x_q).sum(-1)


def loss(pred: Tensor, y_q: Tensor) -> float:
    """0.5 * mean squared error (von Oswald's loss)."""
    return float(0.5 * (pred - y_q).pow(2).mean())


def best_eta(x: Tensor, y: Tensor, x_q: Tensor, y_q: Tensor, steps: int = 1) -> float:
    """The GD learning rate with the lowest loss on these (validation) tasks. One step: exact
    (the prediction is linear in eta, so eta* = E[a y_q] / E[a^2] with a the prediction at
    eta = 1); more steps: a log grid refined by golden-section search."""
    if x.shape[1] == 0:
        return 0.0
    if steps == 1:
        a = predict(gd_weights(x, y, 1.0), x_q)
        return float((a * y_q).sum() / (a * a).sum().clamp(min=1e-30))
    f = lambda e: loss(predict(gd_weights(x, y, e, steps), x_q), y_q)  # noqa: E731
    return _golden(f, _grid_best(f, [10 ** (i / 4) for i in range(-12, 9)]))


def best_lambda(x: Tensor, y: Tensor, x_q: Tensor, y_q: Tensor) -> float:
    """The ridge strength with the lowest loss on these (validation) tasks."""
    if x.shape[1] == 0:
        return 1.0
    f = lambda lam: loss(predict(ridge_weights(x, y, lam), x_q), y_q)  # noqa: E731
    return _golden(f, _grid_best(f, [10 ** (i / 4) for i in range(-24, 13)]))


def _grid_best(f, grid: list[float]) -> tuple[float, float]:
    values = [f(v) for v in grid]
    i = min(range(len(grid)), key=values.__getitem__)
    return grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]


def _golden(f, bracket: tuple[float, float], iters: int = 40) -> float:
    """Minimise f on [lo, hi] in log space."""
    lo, hi = math.log(bracket[0]), math.log(bracket[1])
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(math.exp(a)), f(math.exp(b))
    for _ in range(iters):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(math.exp(b))
    return math.exp((lo + hi) / 2)

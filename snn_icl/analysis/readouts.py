"""Ridge read-outs of a target from a network's internal state, the penalty chosen on held-out
rows: how much of a quantity a state holds for a linear (or, with :func:`bilinear`, a
query-dependent) read-out.

Closed-form in torch rather than scikit-learn's ``RidgeCV``: the project's tensors stay in torch
and the penalty is scaled as in the probes (``lam`` times the features' mean variance, so one
grid suits states of any units). Features are centred, not scaled one by one: a unit that barely
varies (a neuron that fired once) then gets a small weight instead of one blown up by its tiny
variance. The intercept is not penalised.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

LAMBDAS = tuple(10.0 ** e for e in range(-5, 1))
"""The penalty grid (times the features' mean variance)."""


class Readout(NamedTuple):
    mean: Tensor
    """Feature means of the fitting rows [F]."""
    weights: Tensor
    """[F + 1, ...]: one row per feature, then the intercept."""
    lam: float
    """The penalty it was fitted with."""


def fit(features: Tensor, target: Tensor, lam: float) -> Readout:
    """Ridge read-out of ``target`` [n, ...] from ``features`` [n, F]."""
    mean = features.mean(0)
    a = features - mean
    scale = a.pow(2).mean(0).mean().clamp(min=1e-12)
    a = torch.cat([a, torch.ones(len(a), 1, dtype=a.dtype)], 1)
    penalty = lam * len(a) * scale * torch.eye(a.shape[1], dtype=a.dtype)
    penalty[-1, -1] = 0.0
    return Readout(mean, torch.linalg.solve(a.T @ a + penalty, a.T @ target), lam)


def apply(readout: Readout, features: Tensor) -> Tensor:
    """The read-out's prediction [n, ...] for ``features`` [n, F]."""
    return (features - readout.mean) @ readout.weights[:-1] + readout.weights[-1]


def fit_chosen(features: Tensor, target: Tensor, lambdas: tuple[float, ...] = LAMBDAS,
               held_out: float = 0.25) -> Readout:
    """Ridge read-out with the penalty that predicts the last ``held_out`` share of the rows best
    (mean squared error) when fitted on the rest, then refitted on all rows."""
    n_fit = int(len(features) * (1 - held_out))
    if n_fit < 2 or n_fit == len(features):
        raise ValueError(f"{len(features)} rows are too few to choose a ridge penalty on held-out rows")
    f_fit, f_val = features[:n_fit], features[n_fit:]
    t_fit, t_val = target[:n_fit], target[n_fit:]
    errors = [float((apply(fit(f_fit, t_fit, lam), f_val) - t_val).pow(2).mean()) for lam in lambdas]
    best = min(range(len(lambdas)), key=errors.__getitem__)
    return fit(features, target, lambdas[best])


def bilinear(state: Tensor, query: Tensor) -> Tensor:
    """Features of a read-out that is linear in ``state`` [n, S] for each ``query`` [n, Q]:
    every product s_i q_j, then s and q themselves: [n, S Q + S + Q]. A ridge read-out of these
    is any bilinear form s^T M q plus linear terms (one GD step on the context, eta x_q^T X^T Y,
    is the case s = X^T Y, M = eta I)."""
    outer = (state.unsqueeze(-1) * query.unsqueeze(1)).flatten(1)
    return torch.cat([outer, state, query], 1)

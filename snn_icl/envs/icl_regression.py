"""In-context linear regression (von Oswald et al. 2022; Garg et al. 2022): the task family.

One task is a weight vector ``w ~ N(0, w_scale^2 I_d)``; a sequence holds k context examples
``(x_i, y_i)`` with ``x_i ~ U(-x_range, x_range)^d`` and ``y_i = w . x_i + noise_std * N(0, 1)``,
then a query ``x_q`` whose ``y_q`` is to be predicted. As in von Oswald et al. every example is
one token ``[x_i; y_i]`` (d + 1 numbers) and the query token is ``[x_q; 0]``:

    tokens [k + 1, B, d + 1]   time-major: tokens[i] = [x_i; y_i], tokens[k] = [x_q; 0]

(with ``context_passes = p`` the k example tokens come p times over before the query).

The loss of a prediction ``yhat [B]`` is ``0.5 * mean((yhat - y_q)^2)`` (von Oswald's).
Out-of-distribution variants scale x or w at evaluation (``x_scale``, ``w_scale`` of
:func:`sample`). Everything here is pure tensor numerics; the sequence length k can vary from
batch to batch between ``n_examples_min`` and ``n_examples`` (Garg et al. train every prefix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from snn_icl.checks import check_value as _check


@dataclass(frozen=True)
class RegressionConfig:
    """The ``[env]`` table of ``family = "icl_regression"``."""

    family: Literal["icl_regression"] = "icl_regression"
    d: int = 10
    """Input dimension."""
    n_examples: int = 10
    """Context examples N before the query (the most a sequence holds)."""
    n_examples_min: int | None = None
    """Fewest context examples of a training batch: each batch draws k uniformly from
    [n_examples_min, n_examples] (None: always n_examples, as von Oswald et al.)."""
    x_range: float = 1.0
    """x ~ U(-x_range, x_range)^d (von Oswald et al.: 1)."""
    w_scale: float = 1.0
    """w ~ N(0, w_scale^2 I_d)."""
    noise_std: float = 0.0
    """Standard deviation of the label noise (0: noiseless, as von Oswald et al.)."""
    curriculum_d_start: int | None = None
    """Training curriculum on the dimension (Garg et al. 2022): the first training batches use
    only this many coordinates of x and w (the rest are 0), growing linearly to d over
    ``curriculum_iterations`` (None: no curriculum). Evaluation always uses all d."""
    curriculum_iterations: int = 0
    """Training iterations over which the active dimension grows to d."""
    curriculum_gate: float | None = None
    """A curriculum gated on the loss instead of the clock (None: off): training starts with
    ``curriculum_d_start`` coordinates and adds one when the training loss, as a moving average
    of its share of predicting 0 on the active coordinates, has closed at least this share of
    the gap between predicting 0 and least squares (:func:`gate_step`). In (0, 1]."""
    curriculum_window: int = 100
    """Time constant (iterations) of that moving average, and the fewest iterations a gated
    stage lasts."""
    context_passes: int = 1
    """Times the k context tokens are shown, one pass after another, before the query (1: once,
    as von Oswald et al.). A second pass brings no new example: it lets a recurrent network
    that has stored the context meet each example again and correct its store by the
    example's residual, as a second layer of linear self-attention takes a second step of
    gradient descent. The references (GD, least squares) stay those of the k examples."""

    def __post_init__(self) -> None:
        _check(self.curriculum_d_start is None or 1 <= self.curriculum_d_start <= self.d,
               "curriculum_d_start", f"must be in [1, d = {self.d}]", self.curriculum_d_start)
        _check(self.curriculum_iterations >= 0, "curriculum_iterations", "must be >= 0",
               self.curriculum_iterations)
        _check(self.curriculum_gate is None or 0 < self.curriculum_gate <= 1, "curriculum_gate",
               "must be in (0, 1]", self.curriculum_gate)
        _check(self.curriculum_gate is None or self.curriculum_d_start is not None,
               "curriculum_gate", "needs curriculum_d_start (the coordinates to start with)",
               self.curriculum_gate)
        _check(self.curriculum_gate is None or self.curriculum_iterations == 0,
               "curriculum_iterations", "must be 0 when curriculum_gate sets the pace",
               self.curriculum_iterations)
        _check(self.curriculum_window >= 1, "curriculum_window", "must be >= 1",
               self.curriculum_window)
        _check(self.d >= 1, "d", "must be >= 1", self.d)
        _check(self.n_examples >= 1, "n_examples", "must be >= 1", self.n_examples)
        _check(self.n_examples_min is None or 0 <= self.n_examples_min <= self.n_examples,
               "n_examples_min", f"must be in [0, n_examples = {self.n_examples}]",
               self.n_examples_min)
        for key in ("x_range", "w_scale"):
            _check(getattr(self, key) > 0, key, "must be > 0", getattr(self, key))
        _check(self.noise_std >= 0, "noise_std", "must be >= 0", self.noise_std)
        _check(self.context_passes >= 1, "context_passes", "must be >= 1", self.context_passes)

    @property
    def obs_dim(self) -> int:
        """Numbers per token, d + 1."""
        return self.d + 1

    @property
    def episode_steps(self) -> int:
        """Tokens of the longest sequence, passes x N + 1."""
        return self.context_passes * self.n_examples + 1

    @property
    def out_dim(self) -> int:
        """Numbers a model predicts at the query: 1."""
        return 1

    def min_examples(self) -> int:
        return self.n_examples if self.n_examples_min is None else self.n_examples_min


class RegressionBatch(NamedTuple):
    """B tasks with k context examples each."""

    x: Tensor
    """Context inputs [B, k, d]."""
    y: Tensor
    """Context labels [B, k]."""
    x_q: Tensor
    """Query input [B, d]."""
    y_q: Tensor
    """Query label [B] (noisy like the context)."""
    w: Tensor
    """Task weights [B, d]."""
    passes: int = 1
    """Times :func:`tokens` shows the context before the query (``context_passes``)."""


def sample(cfg: RegressionConfig, batch: int, generator: torch.Generator, *,
           k: int | None = None, x_scale: float = 1.0, w_scale: float = 1.0,
           active: int | None = None) -> RegressionBatch:
    """Draw ``batch`` fresh tasks with ``k`` context examples (default ``cfg.n_examples``).

    ``x_scale`` and ``w_scale`` multiply the ranges of x and w (out-of-distribution tests);
    ``active`` < d zeroes the coordinates of x and w past it (the curriculum)."""
    k = cfg.n_examples if k is None else k
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k!r}")
    w = torch.randn(batch, cfg.d, generator=generator) * (cfg.w_scale * w_scale)
    xs = (torch.rand(batch, k + 1, cfg.d, generator=generator) * 2 - 1) * (cfg.x_range * x_scale)
    if active is not None and active < cfg.d:
        w[:, active:] = 0
        xs[:, :, active:] = 0
    ys = torch.einsum("bkd,bd->bk", xs, w)
    ys = ys + cfg.noise_std * torch.randn(ys.shape, generator=generator)
    return RegressionBatch(xs[:, :k], ys[:, :k], xs[:, k], ys[:, k], w, cfg.context_passes)


def training_k(cfg: RegressionConfig, generator: torch.Generator) -> int:
    """The context size of one training batch (uniform on [n_examples_min, n_examples])."""
    low = cfg.min_examples()
    if low == cfg.n_examples:
        return low
    return int(torch.randint(low, cfg.n_examples + 1, (1,), generator=generator))


def active_dimension(cfg: RegressionConfig, iteration: int) -> int:
    """Coordinates in use at training iteration ``iteration`` (0-based) under the curriculum."""
    if cfg.curriculum_d_start is None or iteration >= cfg.curriculum_iterations:
        return cfg.d
    grown = (cfg.d - cfg.curriculum_d_start) * iteration / max(cfg.curriculum_iterations, 1)
    return min(cfg.d, cfg.curriculum_d_start + int(grown))


class GateState(NamedTuple):
    """Where a loss-gated curriculum stands (``curriculum_gate``)."""

    active: int
    """Coordinates of x and w in use."""
    share: float | None
    """Moving average of the training loss as a share of predicting 0 on the active
    coordinates (None: the stage has just begun)."""
    stage_iterations: int
    """Iterations spent at ``active`` so far."""


def least_squares_fraction(active: int, k: int) -> float:
    """Expected loss of min-norm least squares from k noiseless examples, as a share of
    predicting 0, with ``active`` coordinates in use: ``max(0, active - k) / active``. Exact
    without noise, where it is the posterior mean of w ~ N(0, I) and no learner does better."""
    return max(0, active - k) / active


def least_squares_share(cfg: RegressionConfig, active: int) -> float:
    """:func:`least_squares_fraction` averaged over the training context sizes k."""
    ks = range(cfg.min_examples(), cfg.n_examples + 1)
    return sum(least_squares_fraction(active, k) for k in ks) / len(ks)


def gate_start(cfg: RegressionConfig) -> GateState | None:
    """The state a loss-gated curriculum starts from; None when ``curriculum_gate`` is off."""
    if cfg.curriculum_gate is None or cfg.curriculum_d_start is None:
        return None
    return GateState(cfg.curriculum_d_start, None, 0)


def gate_step(cfg: RegressionConfig, state: GateState, loss: float) -> GateState:
    """The curriculum after one training batch of loss ``loss`` (at ``state.active``).

    Adds a coordinate when the stage has lasted ``curriculum_window`` iterations and the moving
    average share s of predicting 0 has closed ``curriculum_gate`` of the gap to least squares,
    ``(1 - s) / (1 - least_squares_share) >= curriculum_gate``; the average restarts with the
    new stage. At ``active == d`` it only keeps the average."""
    share = loss / zero_loss(cfg, state.active)
    ema = share if state.share is None else state.share + (share - state.share) / cfg.curriculum_window
    n = state.stage_iterations + 1
    closed = (1 - ema) / (1 - least_squares_share(cfg, state.active))
    if state.active < cfg.d and n >= cfg.curriculum_window and closed >= (cfg.curriculum_gate or 1):
        return GateState(state.active + 1, None, 0)
    return GateState(state.active, ema, n)


def tokens(b: RegressionBatch) -> Tensor:
    """The sequence as tokens [passes * k + 1, B, d + 1]: ``[x_i; y_i]`` for i = 1..k, ``passes``
    times over, then the query ``[x_q; 0]``."""
    ctx = torch.cat([b.x, b.y.unsqueeze(-1)], dim=-1).repeat(1, b.passes, 1)  # [B, passes*k, d+1]
    query = torch.cat([b.x_q, torch.zeros_like(b.y_q).unsqueeze(-1)], dim=-1)  # [B, d+1]
    return torch.cat([ctx, query.unsqueeze(1)], dim=1).transpose(0, 1)


def least_squares_weights(b: RegressionBatch) -> Tensor:
    """The minimum-norm least-squares weights of each task's context [B, d] (0 without
    examples). Without label noise, and with k >= d, the task's w; with k < d and no noise, the
    posterior mean of w ~ N(0, w_scale^2 I): the best any learner can infer from the context,
    and what the auxiliary store loss (``[train] store_loss``) decodes from a network's state."""
    if b.x.shape[1] == 0:
        return torch.zeros_like(b.w)
    return (torch.linalg.pinv(b.x) @ b.y.unsqueeze(-1)).squeeze(-1)


def loss(pred: Tensor, b: RegressionBatch) -> Tensor:
    """von Oswald's loss ``0.5 * mean((pred - y_q)^2)`` of predictions ``pred [B]``."""
    return 0.5 * (pred - b.y_q).pow(2).mean()


def zero_loss(cfg: RegressionConfig, active: int | None = None) -> float:
    """Expected loss of predicting 0 (the k = 0 optimum) with ``active`` coordinates in use
    (default d): 0.5 * (active * w_scale^2 * x_range^2 / 3 + noise_std^2)."""
    n = cfg.d if active is None else active
    return 0.5 * (n * cfg.w_scale ** 2 * cfg.x_range ** 2 / 3 + cfg.noise_std ** 2)


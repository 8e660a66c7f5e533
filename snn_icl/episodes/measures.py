"""Behavioural measures from recorded episodes (rollout tensors, time-major)."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor


def per_trial(values: Tensor, trial: Tensor, trial_end: Tensor) -> Tensor:
    """Gather a per-step quantity at trial ends into a [B, n_trials] table (NaN: not reached).

    Args:
        values: [T, B] quantity read at the step a trial ends (e.g. ``latency``).
        trial: [T+1, B] trial index (index 0 = start); the trial that ends at step t is trial[t].
        trial_end: [T, B] bool.
    """
    t_idx, b_idx = torch.nonzero(trial_end, as_tuple=True)
    k_idx = trial[:-1][t_idx, b_idx].long()
    n_trials = int(k_idx.max()) + 1 if len(k_idx) else 0
    table = torch.full((trial_end.shape[1], n_trials), float("nan"), dtype=torch.float64)
    table[b_idx, k_idx] = values[t_idx, b_idx].double()
    return table


def median(v: Tensor) -> Tensor:
    """Median of a 1-D sample (the mean of the middle two for an even count, unlike torch.median)."""
    return torch.quantile(v, 0.5)


def per_column(table: Tensor, fn: Callable[[Tensor], Tensor]) -> list[float | None]:
    """``fn`` over the non-NaN entries of each column of a [B, n_trials] table (None: all NaN)."""
    out = []
    for col in table.T:
        col = col[~torch.isnan(col)]
        out.append(float(fn(col)) if len(col) else None)
    return out


def behaviour_summary(sim: dict[str, Any], max_trials: int = 8) -> dict[str, Any]:
    """Goals per episode, and per trial index: median escape latency and success rate.

    Latency counts swim steps from release to the platform (time-outs count as the time-out).
    """
    latency = per_trial(sim["latency"], sim["trial"], sim["trial_end"])[:, :max_trials]
    escaped = per_trial(sim["escaped"], sim["trial"], sim["trial_end"])[:, :max_trials]
    return {
        "goals_per_episode": float(sim["reward"].sum(0).double().mean()),
        "latency_by_trial": per_column(latency, median),
        "success_by_trial": per_column(escaped, torch.mean),
        "episodes_completing_trial": [int(c) for c in (~torch.isnan(escaped)).sum(0)],
    }

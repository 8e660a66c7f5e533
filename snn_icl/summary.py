"""Behavioural measures from recorded episodes (rollout tensors, time-major)."""

from __future__ import annotations

from typing import Any

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


def _nanmedian_cols(table: Tensor) -> list[float | None]:
    out = []
    for col in table.T:
        col = col[~torch.isnan(col)]
        out.append(float(torch.quantile(col, 0.5)) if len(col) else None)
    return out


def behaviour_summary(sim: dict[str, Any], max_trials: int = 8) -> dict[str, Any]:
    """Goals per episode, and per trial index: median escape latency and success rate.

    Latency counts swim steps from release to the platform (time-outs count as the time-out).
    """
    latency = per_trial(sim["latency"], sim["trial"], sim["trial_end"])[:, :max_trials]
    escaped = per_trial(sim["escaped"], sim["trial"], sim["trial_end"])[:, :max_trials]
    completed = ~torch.isnan(escaped)
    success = [float(escaped[completed[:, k], k].mean()) if completed[:, k].any() else None
               for k in range(escaped.shape[1])]
    return {
        "goals_per_episode": float(sim["reward"].sum(0).double().mean()),
        "latency_by_trial": _nanmedian_cols(latency),
        "success_by_trial": success,
        "episodes_completing_trial": [int(c) for c in completed.sum(0)],
    }

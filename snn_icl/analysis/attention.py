"""Memory retrieval by attention: how much of the transformer's attention from later trials lands
on the steps it spent on the platform in earlier trials.

For a query token at step t of trial k > 1 (0-based trial index >= 1), the *platform keys* are the
visible steps s <= t that were spent on the platform (``on_platform``: contact in observation s)
during an earlier trial (trial[s] < trial[t]). The retrieval share is the attention weight on them;
under uniform attention over the visible keys it would be (platform keys) / (visible keys). In the
reading of Whittington et al. (2022), a query that matches the keys of the goal location and reads
their values is a memory lookup of "what was sensed where".
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def platform_key_mask(trial: Tensor, on_platform: Tensor) -> Tensor:
    """[B, T, T] bool: key s is a platform step of an earlier trial than query t, and s <= t.

    ``trial``, ``on_platform``: [T, B] at each token's step (rollout arrays without the last row).
    """
    T = trial.shape[0]
    tr, onp = trial.T, on_platform.T.bool()  # [B, T]
    earlier = tr[:, None, :] < tr[:, :, None]  # [B, Tq, Tk]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    return earlier & onp[:, None, :] & causal[None]


def retrieval_share(attention: Tensor, key_mask: Tensor, visible: Tensor) -> tuple[Tensor, Tensor]:
    """Attention share on the masked keys, observed and expected under uniform attention.

    Args:
        attention: [B, nh, Tq, Tk] softmax weights.
        key_mask: [B, Tq, Tk] bool, the keys of interest.
        visible: [B, Tq, Tk] (or broadcastable) bool, the keys each query could attend to.

    Returns (observed [B, nh, Tq], expected [B, Tq]).
    """
    m = (key_mask & visible).to(attention.dtype)
    observed = (attention * m[:, None]).sum(-1)
    expected = m.sum(-1) / visible.to(attention.dtype).sum(-1).clamp(min=1)
    return observed, expected


def steps_into_trial(trial: Tensor) -> Tensor:
    """Env steps since the current trial started [T, B] (0 at its first observation)."""
    T = trial.shape[0]
    t = torch.arange(T)[:, None].expand_as(trial)
    start = torch.ones_like(trial, dtype=torch.bool)
    start[1:] = trial[1:] != trial[:-1]
    return t - torch.cummax(torch.where(start, t, torch.zeros_like(t)), dim=0).values


def episode_shares(attention: list[Tensor], trial: Tensor, on_platform: Tensor,
                   window: int) -> dict[str, Tensor]:
    """Retrieval share of every token of a batch of whole episodes.

    Args:
        attention: per layer [B, nh, T, T] (from :func:`replay`, episodes from step 0).
        trial, on_platform: [T, B] at each token's step.
        window: the context window (keys more than window - 1 steps back are invisible).

    Returns ``observed`` [n_layer, B, nh, T], ``expected`` [B, T] (uniform attention) and
    ``queries`` [B, T] bool: tokens of trials k > 1 with at least one platform key.
    """
    from snn_icl.models.transformer import visible_keys

    T, B = trial.shape
    steps = torch.arange(T)
    visible = visible_keys(steps, steps, torch.zeros(B, dtype=torch.long), window)[:, 0]
    mask = platform_key_mask(trial, on_platform)
    observed, expected = [], None
    for att in attention:
        o, expected = retrieval_share(att.double(), mask, visible)
        observed.append(o)
    queries = (trial.T >= 1) & (mask & visible).any(-1)
    return {"observed": torch.stack(observed), "expected": expected, "queries": queries}


def retrieval_summary(shares: dict[str, Tensor], trial: Tensor, max_lag: int = 20) -> dict[str, Any]:
    """Per layer: mean retrieval share over the query tokens, the uniform expectation, their
    ratio, the share per head and by env steps into the trial (0..max_lag, the last bin pooling
    later steps).

    Args:
        shares: :func:`episode_shares` output (episodes may be concatenated along B).
        trial: [T, B] trial index of each token.
    """
    queries = shares["queries"]
    out: dict[str, Any] = {"queries": int(queries.sum()), "layers": []}
    if not bool(queries.any()):
        return out
    exp_q = shares["expected"][queries]  # [Q]
    lag_q = steps_into_trial(trial).T[queries].clamp(max=max_lag)

    def by_lag(x: Tensor) -> list[float | None]:
        return [float(x[..., lag_q == d].mean()) if bool((lag_q == d).any()) else None
                for d in range(max_lag + 1)]

    for observed in shares["observed"]:  # [B, nh, T] per layer
        obs_q = observed.permute(1, 0, 2)[:, queries]  # [nh, Q]
        out["layers"].append({
            "share": float(obs_q.mean()), "uniform": float(exp_q.mean()),
            "ratio": float(obs_q.mean() / exp_q.mean()),
            "share_by_head": [float(x) for x in obs_q.mean(-1)],
            "share_by_steps_into_trial": by_lag(obs_q), "uniform_by_steps_into_trial": by_lag(exp_q),
        })
    return out

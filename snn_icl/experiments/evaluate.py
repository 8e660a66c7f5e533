"""Frozen-weight evaluation: one-shot place learning measured the way water-maze studies do.

Held-out episodes (platforms and release points from the evaluation seed, disjoint from every
training seed) run with no optimizer and no gradient; the weights are hashed before and after and
any change is an error. The measures are :mod:`snn_icl.episodes.measures` (defined there once, with
their units and the censoring rule): per trial index (1-based) median escape latency with
bootstrap 95 % bounds, success rate, path length and efficiency, the straight-line optimum; per
episode goals reached; on a probe trial with the platform removed, search preference (target
quadrant, crossings, proximity, time near the platform). The same block is computed for two controls: the network
state reset at every trial start (no memory), and a random swimmer.

The one-shot signature is ``latency trial 1 / median latency over trials 2-4``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from snn_icl.config import seed_kind
from snn_icl.episodes.measures import behaviour, probe_measures
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.episodes.rollout import rollout_batches
from snn_icl.models import frozen, weights_sha256

def run_condition(agent: nn.Module | None, task: Any, episodes: int, seed: int, *,
                  batch: int = 64, probe: bool = False, progress: bool = False, desc: str = "",
                  **kwargs: Any) -> EpisodeRecord:
    """All held-out episodes of one condition (same seeds for every condition and agent)."""
    if probe:
        kwargs["probe_trial"] = task.eval.probe_trial
    return rollout_batches(agent, task.env, episodes, seed, batch=batch, progress=progress,
                           desc=desc, deterministic=task.eval.deterministic, **kwargs)


def evaluate(agent: nn.Module, task: Any, episodes: int, seed: int, *, n_trials: int = 6,
             batch: int = 64, progress: bool = True) -> dict[str, Any]:
    """The full evaluation of a frozen agent with both controls (see the module docstring)."""
    frozen(agent)
    before = weights_sha256(agent)
    conditions = {"agent": {}, "control_no_memory": {"reset_memory_each_trial": True},
                  "control_random": {"policy": "random"}}
    result: dict[str, Any] = {"episodes": episodes, "seed": seed, "seed_kind": seed_kind(seed),
                              "n_trials": n_trials}
    boot = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, kw in tqdm(conditions.items(), desc="evaluate", disable=not progress):
            sim = run_condition(agent, task, episodes, seed, batch=batch, progress=progress,
                                desc=name, **kw)
            block = behaviour(sim, task.env, n_trials, boot)
            probe = run_condition(agent, task, episodes, seed, batch=batch, probe=True,
                                  progress=progress, desc=f"{name} probe", **kw)
            block.update(probe_measures(probe, task.env, task.eval.probe_trial))
            if name == "agent":
                result.update(block)
            else:
                result[name] = block
    after = weights_sha256(agent)
    if after != before:
        raise RuntimeError(f"weights changed during evaluation (sha256 {before} -> {after})")
    result["weights_sha256"] = {"before": before, "after": after}
    return result


def one_shot_targets(result: dict[str, Any]) -> dict[str, tuple[float | None, str, bool]]:
    """The project's one-shot targets on an :func:`evaluate` result: name -> (value, target, met).

    Trials 2-4 are held to twice the straight swim (``optimal_latency_trials2_4``, env steps);
    the probe to half of the probe trial in the target quadrant (chance 0.25).
    """
    optimum = result["optimal_latency_trials2_4"]
    ratio, lat = result["one_shot_ratio"], result["latency_trials2_4"]
    control = result["control_no_memory"]["one_shot_ratio"]
    probe = result["probe_target_quadrant_fraction"]

    def met(value: float | None, ok: Callable[[float], bool]) -> bool:
        return value is not None and not math.isnan(value) and ok(value)

    return {
        "ratio trial 1 / trials 2-4": (ratio, ">= 3", met(ratio, lambda v: v >= 3)),
        "latency trials 2-4": (lat, "<= 2 x straight swim" if optimum is None else f"<= {2 * optimum:g}",
                               optimum is not None and met(lat, lambda v: v <= 2 * optimum)),
        "no-memory ratio": (control, "<= 1.5", met(control, lambda v: v <= 1.5)),
        "probe target quadrant": (probe, ">= 0.5", met(probe, lambda v: v >= 0.5)),
    }

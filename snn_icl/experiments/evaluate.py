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

Protocols (:class:`~snn_icl.config.ProtocolConfig`, docs/protocols.md): "dmp" is the evaluation
above (with ``iti_dark_steps``, dark after every trial and an episode lengthened by one delay
per reported trial after the first); "reference" is dmp with the platforms from a fixed set of
places (or novel places away from it); "reversal" runs episodes whose platform moves at the start
of one trial and "probe" episodes with the probe trial only; "cued" runs the episodes with the
platform visible and again hidden (same platforms and releases); for those the behaviour blocks
are measured on the protocol's episodes. ``result["protocol"]`` holds the protocol's settings and,
except for dmp, its measures per condition.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from snn_icl.config import ProtocolConfig, seed_kind
from snn_icl.episodes.measures import behaviour, probe_measures, reversal_measures
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.episodes.rollout import rollout_batches
from snn_icl.models import frozen, past_trained_length, weights_sha256


def run_condition(agent: nn.Module | None, task: Any, episodes: int, seed: int, *,
                  batch: int = 64, probe: bool = False, progress: bool = False, desc: str = "",
                  env: Any = None, **kwargs: Any) -> EpisodeRecord:
    """All held-out episodes of one condition (same seeds for every condition and agent).

    ``probe``: the probe trial of the task's [eval] table, unless ``kwargs`` name one.
    ``env``: the env config (default: the task's)."""
    if probe:
        kwargs.setdefault("probe_trial", task.eval.probe_trial)
    return rollout_batches(agent, task.env if env is None else env, episodes, seed, batch=batch,
                           progress=progress, desc=desc, deterministic=task.eval.deterministic,
                           **kwargs)


REFERENCE_KEYS = ("latency_trial1", "success_trial1", "latency_trials2_4", "one_shot_ratio",
                  "probe_target_quadrant_fraction")
"""What ``result["protocol"][condition]`` holds for the reference protocol: trial-1 latency
(median, swim steps) and success on the protocol's places (the in-weights measure on trained
places), the one-shot ratio (the in-context measure, on novel places with ``novel = true``)."""


CUED_KEYS = ("latency_by_trial", "success_by_trial", "path_efficiency_by_trial",
             "latency_trials2_4", "one_shot_ratio")
"""What ``result["protocol"][condition]`` holds for the cued protocol, under "cued" (platform
visible) and "hidden" (the same episodes without the cue): trial 1 with the platform visible is
the sensorimotor control, the hidden trials 2-4 the memory."""


def evaluate(agent: nn.Module, task: Any, episodes: int, seed: int, *, n_trials: int = 6,
             batch: int = 64, progress: bool = True,
             protocol: ProtocolConfig | None = None, controls: bool = True) -> dict[str, Any]:
    """The full evaluation of a frozen agent with both controls (see the module docstring);
    ``protocol`` defaults to the task's [protocol] table. ``controls=False`` runs the agent
    alone (no "control_no_memory" and "control_random" blocks): a third of the work, for
    measures read along training."""
    if protocol is None:
        protocol = getattr(task, "protocol", None) or ProtocolConfig()
    frozen(agent)
    before = weights_sha256(agent)
    conditions = {"agent": {}, "control_no_memory": {"reset_memory_each_trial": True},
                  "control_random": {"policy": "random"}}
    if not controls:
        conditions = {"agent": {}}
    result: dict[str, Any] = {"episodes": episodes, "seed": seed, "seed_kind": seed_kind(seed),
                              "n_trials": n_trials}
    probe_trial = protocol.probe(task)
    probe_kw = {"probe_trial": probe_trial, "probe_steps": protocol.probe_steps}
    block_of_protocol = protocol.settings(task.env, probe_trial=probe_trial)
    # dark inter-trial intervals: one delay more per reported trial after the first
    env = protocol.env(task.env, n_trials - 1)
    if env != task.env:
        block_of_protocol["episode_steps"] = env.episode_steps
    boot = torch.Generator().manual_seed(seed)
    with past_trained_length(agent, env.episode_steps > task.env.episode_steps), torch.no_grad():
        for name, kw in tqdm(conditions.items(), desc="evaluate", disable=not progress):
            block = _condition(agent, task, env, protocol, episodes, seed, n_trials, batch,
                               progress, name, kw, probe_kw, boot, block_of_protocol)
            if name == "agent":
                result.update(block)
            else:
                result[name] = block
    result["protocol"] = block_of_protocol
    after = weights_sha256(agent)
    if after != before:
        raise RuntimeError(f"weights changed during evaluation (sha256 {before} -> {after})")
    result["weights_sha256"] = {"before": before, "after": after}
    return result


def _condition(agent: nn.Module, task: Any, env: Any, protocol: ProtocolConfig, episodes: int,
               seed: int, n_trials: int, batch: int, progress: bool, name: str,
               kw: dict[str, Any], probe_kw: dict[str, Any], boot: torch.Generator,
               block_of_protocol: dict[str, Any]) -> dict[str, Any]:
    """The behaviour block of one condition; protocol measures go into ``block_of_protocol``."""
    probe_trial = probe_kw["probe_trial"]
    setting = protocol.reset_kwargs(task)
    if protocol.name in ("dmp", "reference"):  # the protocol's episodes, then its probe run
        sim = run_condition(agent, task, episodes, seed, batch=batch, progress=progress,
                            desc=name, env=env, **kw, **setting)
        block = behaviour(sim, env, n_trials, boot)
        probe = run_condition(agent, task, episodes, seed, batch=batch, probe=True,
                              progress=progress, desc=f"{name} probe", env=env, **kw, **setting,
                              **probe_kw)
        block.update(probe_measures(probe, env, probe_trial))
        if protocol.name == "reference":
            block_of_protocol[name] = {
                "latency_trial1": block["latency_by_trial"][0],
                "success_trial1": block["success_by_trial"][0],
                **{key: block[key] for key in REFERENCE_KEYS[2:]}}
        return block
    sim = run_condition(agent, task, episodes, seed, batch=batch, progress=progress,
                        desc=f"{name} {protocol.name}", env=env, **kw, **setting)
    block = behaviour(sim, env, n_trials, boot)
    if protocol.name == "cued":
        hidden = behaviour(run_condition(agent, task, episodes, seed, batch=batch,
                                         progress=progress, desc=f"{name} hidden", env=env, **kw),
                           env, n_trials)
        block_of_protocol[name] = {"cued": {k: block[k] for k in CUED_KEYS},
                                   "hidden": {k: hidden[k] for k in CUED_KEYS}}
        return block
    measures = (reversal_measures(sim, env, protocol.reversal_trial)
                if protocol.name == "reversal" else probe_measures(sim, env, probe_trial))
    block_of_protocol[name] = measures
    if protocol.name == "probe":
        block.update(measures)
    return block


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

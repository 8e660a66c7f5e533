"""Where the platform is during a silent delay: rates, decoding along the delay, causal tests.

Episodes with frozen weights run trial 1 as usual, then ``delay`` env steps in the dark (no place
input, actions ignored) before trial 2. Activity-silent memory (Salaj et al. 2021; Mongillo et
al. 2008 for synapses) means three things, each measured here:

1. the network is nearly silent in the delay: the mean firing rate over the dark steps against
   the rate while swimming in trial 1 (and the rate along the delay, in bins);
2. the platform can still be read out of the slow variable at the end of the delay: a
   cross-validated ridge decoder (:func:`snn_icl.analysis.decoding.decode`, folds over episodes)
   of the platform centre from the adaptation ``a`` of the adaptive neurons, from ``v`` and from
   the spike counts, in bins along the delay (and the membrane below threshold along it:
   :func:`delay_membrane`);
3. causally: at the end of the delay (the start of trial 2, nowhere else) zero ``a`` only, or
   ``v``, ``z``, refractory and the readout trace ``zeta`` only, or give each episode the ``a`` of
   its partner episode; an activity-silent memory dies with ``a`` and survives the reset of
   ``v``/``z``, and the swap sends trial 2 towards the partner's platform.

With a recall cue (``[env] recall_cue_steps``: the delay's last steps show a diffuse flash) the
rate "during the delay" is over its dark steps before the cue, and the causal manipulations act
at the start of the cue instead: the cue is what reads the memory out, so after it a memory held
in ``a`` already lives in ``v``/``z`` too.

Plus :func:`state_bytes`: what each agent must carry across a delay of ``d`` env steps, measured
by running its own state forward (constant for the LSNN and the LSTM; the transformer's key/value
cache grows with ``d`` until its context window).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from snn_icl.analysis.ablations import (batch_partners, behaviour_numbers, partners, reset_hook,
                                        swap_hook)
from snn_icl.analysis.decoding import decode
from snn_icl.analysis.states import Capture, Recorder, run_batches

DELAY_AFTER = 0
"""0-based trial after whose rest the dark delay comes (so trial index 1 follows it)."""

RESET_V_Z = ("v", "z", "r", "zeta")
"""The fast LSNN state: membrane, spikes, refractory counters and the readout's filtered spikes."""


def delay_task(task: Any, delay: int) -> Any:
    """The task with its episodes lengthened by ``delay`` env steps (the swims keep their time)."""
    env = dataclasses.replace(task.env, episode_steps=task.env.episode_steps + int(delay))
    return dataclasses.replace(task, env=env)


def cue_steps(task: Any, delay: int) -> int:
    """Steps of the recall cue at the end of a ``delay``-step delay: the task's
    ``recall_cue_steps``, or 0 when the delay is no longer than the cue (nothing silent before
    it)."""
    cue = task.env.recall_cue_steps
    return cue if delay > cue else 0


def _check_spiking(agent: Any) -> None:
    if not getattr(agent, "spiking", False) or not hasattr(agent, "n_regular"):
        raise ValueError(f"the silent-memory analysis needs an LSNN agent, not {agent.kind!r}")


def record_delay(agent: nn.Module, task: Any, delay: int, episodes: int, seed: int, *,
                 batch: int = 64) -> tuple[Any, dict[str, Tensor]]:
    """Intact episodes with a dark delay of ``delay`` env steps after trial 1, recorded: the
    record (spikes ``z`` [T*k, B, n], thresholds ``A``, ``dark`` [T, B]) and the state ``a``, ``v``
    per env step [T, B, n] (after acting on each observation)."""
    _check_spiking(agent)
    if delay < 1:
        raise ValueError(f"delay must be >= 1 env step, got {delay!r}")
    recorders: list[Recorder] = []

    def hook_for(i: int, size: int) -> Any:
        recorders.append(Recorder(agent, ("a", "v")))
        return recorders[-1]

    sim = run_batches(agent, delay_task(task, delay), episodes, seed, batch=batch,
                      hook_for=hook_for, record=True, dark_after_trial=DELAY_AFTER,
                      dark_steps=delay)
    recorded = {name: torch.cat([r.stacked()[name] for r in recorders], dim=1).cpu()
                for name in ("a", "v")}
    return sim, recorded


def delay_steps(sim: Any) -> tuple[Tensor, Tensor]:
    """Per env step [T, B]: the step's index within the dark delay (-1 outside it), and the mask
    of trial-1 swimming (trial 1, off the platform, not dark): the "before" of the rates."""
    dark = sim.dark
    index = torch.cumsum(dark.long(), 0) - 1
    index = torch.where(dark, index, torch.full_like(index, -1))
    swim = (sim.trial[:-1] == 0) & ~sim.on_platform[:-1] & ~dark
    return index, swim


def delay_bins(index: Tensor, n_bins: int) -> tuple[Tensor, list[Tensor]]:
    """``n_bins`` equal bins along the delay from :func:`delay_steps`' ``index`` [T, B]: the edges
    (env steps) and one mask [T, B] per bin."""
    edges = torch.linspace(0, int(index.max()) + 1, n_bins + 1)
    return edges, [(index >= lo) & (index < hi) for lo, hi in zip(edges[:-1], edges[1:])]


def spikes_per_step(sim: Any, k: int) -> Tensor:
    """Spike counts per env step and neuron [T, B, n] from the 1-ms spikes."""
    T, B = sim.dark.shape
    return sim.z.view(T, k, B, -1).sum(1).float()


def delay_rates(sim: Any, k: int, n_regular: int, n_bins: int = 10, *,
                cue_steps: int = 0) -> dict[str, Any]:
    """Mean firing rates (Hz, over neurons and episodes): while swimming in trial 1, over the
    delay's dark steps (its last ``cue_steps``, the recall cue, left out), and in ``n_bins`` equal
    bins along the whole delay (cue included); for all neurons and per group."""
    counts = spikes_per_step(sim, k)  # [T, B, n]
    index, swim = delay_steps(sim)
    delay = int(index.max()) + 1
    silent = (index >= 0) & (index < delay - cue_steps)
    groups = {"all": slice(None), "regular": slice(0, n_regular), "adaptive": slice(n_regular, None)}

    def rate(where: Tensor, group: slice) -> float:
        c = counts[..., group]
        n_steps = where.sum()
        return float(1e3 * (c * where[..., None]).sum() / (n_steps * k * c.shape[-1]).clamp(min=1))

    edges, bins = delay_bins(index, n_bins)
    out: dict[str, Any] = {"delay": delay, "bin_edges_steps": edges.tolist()}
    for name, g in groups.items():
        out[name] = {
            "swim_hz": rate(swim, g),
            "delay_hz": rate(silent, g),
            "delay_bins_hz": [rate(b, g) for b in bins],
        }
        out[name]["delay_over_swim"] = (out[name]["delay_hz"] / out[name]["swim_hz"]
                                        if out[name]["swim_hz"] > 0 else None)
    return out


def delay_membrane(sim: Any, recorded: dict[str, Tensor], v_th: float, n_bins: int = 10, *,
                   cue_steps: int = 0) -> dict[str, Any]:
    """The membrane potential below threshold along the delay, in units of ``v_th``: while
    swimming in trial 1 and in ``n_bins`` equal bins along the delay (cue included), over neurons
    and episodes: the mean ``v``, the fraction of (neuron, episode) pairs below rest (``v < 0``:
    what the reset by the adaptive threshold leaves after a spike), and the episode-specific part,
    the standard deviation of each neuron's ``v`` across episodes, averaged over neurons. A place
    held in ``v`` during a spike-silent delay needs that last number to stay above zero; it decays
    with ``tau_m`` once the spikes stop. ``end``: the same over the last tenth of the dark steps
    before the recall cue (at least one step; ``end_steps``: [first, stop) within the delay),
    the state the cue (or trial 2) meets."""
    v = recorded["v"] / v_th  # [T, B, n]
    index, swim = delay_steps(sim)
    delay = int(index.max()) + 1

    def stats(where: Tensor) -> dict[str, float]:
        inside = v[where]  # [steps in the window over all episodes, n]
        if len(inside) == 0:
            return {"mean": float("nan"), "below_rest": float("nan"),
                    "across_episodes_sd": float("nan")}
        n_steps = where.sum(0)  # [B] steps of each episode in the window
        seen = n_steps > 0
        per_episode = (v * where[..., None]).sum(0)[seen] / n_steps[seen, None]  # [B', n]
        return {"mean": float(inside.mean()),
                "below_rest": float((inside < 0).float().mean()),
                "across_episodes_sd": float(per_episode.std(0, unbiased=True).mean())
                if len(per_episode) > 1 else float("nan")}

    edges, bins = delay_bins(index, n_bins)
    dark_end = delay - cue_steps
    last = max(1, dark_end // 10)
    return {"bin_edges_steps": edges.tolist(), "swim": stats(swim),
            "end_steps": [dark_end - last, dark_end],
            "end": stats((index >= dark_end - last) & (index < dark_end)),
            "delay_bins": [stats(b) for b in bins]}


def delay_decoding(sim: Any, recorded: dict[str, Tensor], k: int, n_regular: int, *,
                   n_bins: int = 5, seed: int = 0) -> dict[str, Any]:
    """Cross-validated decoding error of the platform centre (pool radii) in ``n_bins`` bins
    along the delay, from the adaptation of the adaptive neurons, from v and from spike counts;
    with the chance levels (training mean, shuffled labels)."""
    index, _ = delay_steps(sim)
    delay = int(index.max()) + 1
    labels = torch.where(index >= 0, (index * n_bins) // delay, torch.full_like(index, -1))
    features = {"a (adaptive)": recorded["a"][..., n_regular:], "v": recorded["v"],
                "spikes": spikes_per_step(sim, k)}
    out: dict[str, Any] = {"bin_centres_steps": [(i + 0.5) * delay / n_bins for i in range(n_bins)]}
    for name, x in features.items():
        res = decode(x, sim.platform, labels, n_bins,
                     generator=torch.Generator().manual_seed(seed))
        out[name] = {"error": res.error.tolist(), "chance_mean": res.chance_mean.tolist(),
                     "chance_shuffle": res.chance_shuffle.mean(0).tolist(),
                     "episodes": res.n_episodes.tolist()}
    return out


CAUSAL = ("intact", "reset_a_end", "reset_v_z_end", "swap_a_end", "swap_v_z_end")
"""The causal conditions, all applied once, at the end of the delay (the start of trial 2).
Zeroing ``v``/``z`` takes a silent network's membranes to a state it never sees (every neuron at
rest at once); the partner's ``v``/``z`` are a state it does see, with only the episode-specific
part exchanged: a memory in ``a`` alone survives that swap."""

CAUSAL_DESCRIPTIONS = {
    "intact": "weights and state untouched",
    "reset_a_end": "adaptation a zeroed at the end of the delay",
    "reset_v_z_end": "v, z, refractory and readout trace zeroed at the end of the delay (a kept)",
    "swap_a_end": "a of the partner episode at the end of the delay",
    "swap_v_z_end": "v, z, refractory and readout trace of the partner episode at the end of "
                    "the delay (a kept)",
}


def delay_causal(agent: nn.Module, task: Any, delay: int, episodes: int, seed: int, *,
                 batch: int = 64) -> dict[str, Any]:
    """Trial-2 behaviour (:func:`~snn_icl.analysis.ablations.behaviour_numbers`: latency,
    success, heading towards the own or the partner's platform) after each :data:`CAUSAL`
    manipulation at the end of a ``delay``-step dark delay; the same episodes in every condition."""
    _check_spiking(agent)
    t = delay_task(task, delay)
    sizes, partner = batch_partners(episodes, batch)
    donors = [Capture(agent, ("a",) + RESET_V_Z, 1) for _ in sizes]
    hooks = causal_hooks(agent, donors)
    cue = cue_steps(task, delay)
    out = {}
    for name in CAUSAL:  # intact first: it captures the swap donors
        hook_for = hooks[name] if not cue else _at_cue(hooks[name], cue)
        sim = run_batches(agent, t, episodes, seed, batch=batch, hook_for=hook_for,
                          dark_after_trial=DELAY_AFTER, dark_steps=delay)
        numbers = behaviour_numbers(sim, t.env, partner)
        out[name] = {"description": CAUSAL_DESCRIPTIONS[name], **numbers,
                     "success_trial1": numbers["success_trials1_4"][0],
                     "success_trial2": numbers["success_trials1_4"][1]}
    return out


def causal_hooks(agent: nn.Module, donors: list[Capture]) -> dict[str, Any]:
    """:data:`CAUSAL` name -> ``hook_for(i, size)`` for batch ``i`` of ``size`` episodes; the
    intact run's hook is ``donors[i]``, which captures what the swaps give the partners."""
    return {
        "intact": lambda i, size: donors[i],
        "reset_a_end": lambda i, size: reset_hook(agent, ("a",), trial=1),
        "reset_v_z_end": lambda i, size: reset_hook(agent, RESET_V_Z, trial=1),
        "swap_a_end": lambda i, size: swap_hook(agent, ("a",), donors[i], partners(size)),
        "swap_v_z_end": lambda i, size: swap_hook(agent, RESET_V_Z, donors[i], partners(size)),
    }


def _at_cue(hook_for: Any, cue_steps: int) -> Any:
    """``hook_for`` with its hooks acting at the start of the recall cue instead of the start of
    trial 2: they see the step before the first cue observation as that trial's start (the delay
    runs while the trial index is still that of trial 1)."""

    def make(i: int, size: int) -> Any:
        hook = hook_for(i, size)

        def at_cue(state: Any, info: dict[str, Any]) -> Any:
            starts = info["dark_left"] == cue_steps
            return hook(state, {**info, "new_trial": starts,
                                "trial": torch.where(starts, DELAY_AFTER + 1, info["trial"])})

        return at_cue

    return make


def _tensor_bytes(state: Any) -> int:
    if isinstance(state, Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, (tuple, list)):
        return sum(_tensor_bytes(s) for s in state)
    return 0


@torch.no_grad()
def state_bytes(agent: nn.Module, obs_dim: int, steps: list[int]) -> list[int]:
    """Bytes of recurrent state one episode carries after each of ``steps`` env steps of dark
    input (all-zero observations), measured on the agent's own state: the memory a delay of that
    many steps costs (weights excluded)."""
    state = agent.initial_state(1)
    obs = torch.zeros(1, obs_dim)
    noise = torch.Generator().manual_seed(0)
    carried, done = {}, 0
    for target in sorted(set(steps)):
        for _ in range(target - done):
            state = agent.act(obs, state, generator=noise).state
        done = target
        carried[target] = _tensor_bytes(state)
    return [carried[s] for s in steps]

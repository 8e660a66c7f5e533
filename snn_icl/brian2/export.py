"""The trained LSNN agent in Brian2: export, closed loop with the torch water maze, behaviour and
biology knobs.

The Brian2 network itself lives in :mod:`snn_icl.brian2.standalone` (standalone: numpy + brian2 only;
the equations and their mapping onto Brian2 objects are documented there). This module connects
it to snn_icl:

* :func:`spec_from_agent` turns an :class:`~snn_icl.models.lsnn_agent.LSNNAgent` into arrays;
* :func:`brian2_rollout` runs whole episodes of the torch :class:`~snn_icl.envs.water_maze.WaterMaze`
  with the Brian2 network in closed loop (a network operation every ``ms_per_step`` ms reads the
  readout, applies the agent's own heads, steps the env and writes the next input), returning the
  same tensors as :func:`snn_icl.episodes.rollout.rollout`;
* :func:`evaluate_backend`, :func:`compare_simulators` and :func:`sweep_knobs` measure the
  one-shot effect (latency of trial 1 / median latency of trials 2-4, as in
  :mod:`snn_icl.experiments.evaluate`) in torch and Brian2 on the same episodes;
* :func:`export` writes a folder a Brian2 user runs without snn_icl (script, weights, README).

Everything on the Brian2 side is float64. Times in ms, env times in env steps.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from snn_icl.brian2.standalone import BiologyOptions, BrianLSNN, LSNNSpec
from snn_icl.envs.water_maze import WaterMaze
from snn_icl.models.agent import read_heads, sample_action
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.episodes.rollout import StepRecorder, env_seed, rollout, rollout_batches

__all__ = [
    "spec_from_agent",
    "TorchEnvController",
    "brian2_rollout",
    "rollout_batches_backend",
    "simulate_brian2",
    "evaluate_backend",
    "compare_simulators",
    "compare_markdown",
    "DEFAULT_SWEEP",
    "sweep_knobs",
    "sweep_markdown",
    "plot_sweep",
    "export",
]

BACKENDS = ("torch", "brian2")
SCRIPT_NAME = "lsnn_brian2.py"
REFERENCE_MS = 100
"""Length of the reference input shipped with an export (ms): the first env steps of an episode."""


def spec_from_agent(agent: Any) -> LSNNSpec:
    """The weights and constants of an LSNN agent as an :class:`LSNNSpec` (float64 copies).

    Raises ValueError for anything but a bellec-dynamics LSNN agent with 1-ms steps.
    """
    from snn_icl.models.lsnn_agent import LSNNAgent

    if not isinstance(agent, LSNNAgent):
        raise ValueError(f"Brian2 export needs an LSNN agent, got {type(agent).__name__}")
    net, p = agent.net, agent.net.params
    if net.backend != "bellec":
        raise ValueError(f"Brian2 export implements the bellec dynamics, got backend {net.backend!r}")
    if p.dt_ms != 1.0:
        raise ValueError(f"Brian2 export needs dt = 1 ms, got {p.dt_ms!r}")
    f64 = lambda t: t.detach().cpu().double().numpy().copy()  # noqa: E731
    return LSNNSpec(
        w_in=f64(net.w_in), w_rec=f64(net.w_rec_masked()), n_regular=net.n_regular,
        tau_m=p.tau_m_ms, tau_a=p.tau_a_ms, v_th=p.v_th, beta=p.beta, n_ref=p.n_ref,
        tau_out=-1.0 / math.log(agent.kappa), ms_per_step=agent.ms_per_step,
        input_mode=agent.input_mode, input_scale=float(agent.input_scale),
        max_rate_hz=agent.spike_prob * 1e3, w_mean=f64(agent.mean_head.weight),
        b_mean=f64(agent.mean_head.bias), w_value=f64(agent.value_head.weight)[0],
        b_value=float(agent.value_head.bias.item()), log_std=f64(agent.log_std))


# ----------------------------------------------------------------------------- closed loop


class TorchEnvController:
    """Closed loop of a :class:`BrianLSNN` with the torch water maze and the agent's heads.

    Each env step: the readout zeta [B, n] from Brian2 goes through the agent's own linear heads
    (:func:`~snn_icl.models.agent.read_heads`), an action is drawn exactly as in
    :func:`snn_icl.episodes.rollout.rollout` (same generator order: input spikes, then action noise), the
    env steps, and the next observation is encoded by the agent (``agent.encode``). Records the
    same per-step tensors as ``rollout``.
    """

    def __init__(self, agent: Any, env: WaterMaze, *, generator: torch.Generator | None,
                 deterministic: bool, reset_kwargs: dict[str, Any]) -> None:
        self.agent, self.env, self.generator = agent, env, generator
        self.deterministic, self.reset_kwargs = deterministic, reset_kwargs
        self.like = agent.net.w_in
        self.steps: StepRecorder | None = None

    def _encode(self, obs: Tensor) -> np.ndarray:
        self.steps.put("obs", obs)
        self.steps.put("dark", self.env.state.dark_left > 0)
        return self.agent.encode(obs, self.generator).double().numpy()

    def start(self) -> np.ndarray:
        obs = self.env.reset(**self.reset_kwargs)
        self.steps = StepRecorder(self.env)
        return self._encode(obs)

    def step(self, zeta: np.ndarray) -> np.ndarray | None:
        policy = read_heads(self.agent, torch.from_numpy(zeta).to(self.like))
        action = sample_action(policy, self.generator, self.deterministic)
        self.steps.policy(policy, action)
        self.steps.put("action", action)
        obs, reward, done, info = self.env.step(action)
        self.steps.env_step(reward, info)
        if bool(done.all()):
            return None
        return self._encode(obs)

    def result(self) -> EpisodeRecord:
        return self.steps.record(drop=("obs",))


@torch.no_grad()
def brian2_rollout(agent: Any, env: WaterMaze, *, net: BrianLSNN | None = None,
                   options: BiologyOptions | None = None, target: str = "numpy",
                   generator: torch.Generator | None = None, deterministic: bool = False,
                   record: bool = False, seed: int = 0, **reset_kwargs: Any) -> EpisodeRecord:
    """One batch of whole episodes (``env.num_envs``) with the agent's network in Brian2.

    Like :func:`snn_icl.episodes.rollout.rollout` (same keys; ``net_input`` is not kept): with
    ``record`` also ``z`` [T*k, B, n] (bool; counts > 1 per ms in continuous time become True) and
    ``A`` [T*k, B, n] (threshold after each 1-ms update; only for the discrete map).

    Args:
        net: a :class:`BrianLSNN` of this agent with ``batch == env.num_envs`` to reuse
            (default: built here from ``options`` and ``target``).
        seed: Brian2's random seed for this run (membrane noise).
    """
    if net is None:
        net = BrianLSNN(spec_from_agent(agent), env.num_envs, options, target=target,
                        record_state=("A",) if record and _discrete(options) else False)
    if net.batch != env.num_envs:
        raise ValueError(f"the Brian2 network has {net.batch} copies but the env {env.num_envs} episodes")
    ctrl = TorchEnvController(agent, env, generator=generator, deterministic=deterministic,
                              reset_kwargs=reset_kwargs)
    z = net.run_closed_loop(ctrl, env.config.episode_steps, seed=seed)
    out = ctrl.result()
    if record:
        A = net.recorded().get("A")
        out = replace(out, z=torch.from_numpy(z > 0),
                      A=None if A is None else torch.from_numpy(A).to(agent.net.w_in.dtype))
    return out


def _discrete(options: BiologyOptions | None) -> bool:
    return options is None or options.integration == "discrete"


def rollout_batches_backend(agent: Any, env_cfg: Any, episodes: int, seed: int, *,
                            backend: str = "brian2", batch: int = 64,
                            options: BiologyOptions | None = None, target: str = "auto",
                            dtype: torch.dtype = torch.float64, deterministic: bool = True,
                            record: bool = False, **reset_kwargs: Any) -> dict[str, Tensor]:
    """``episodes`` episodes in batches of at most ``batch``, for either simulator, with the env
    seeds and action-noise generator of :func:`snn_icl.episodes.rollout.rollout_batches` (with the default
    batch of 64 these are the episodes of :func:`snn_icl.experiments.evaluate.evaluate`).

    ``record``: also spikes ``z`` and thresholds ``A`` (Brian2: discrete map only). ``dtype`` is
    the env's (and, for torch, the agent's) dtype; Brian2 is always float64. The agent is
    converted in place to ``dtype``. ``reset_kwargs`` go to the env's reset (a protocol).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    agent.to(dtype)
    if backend == "torch":
        return rollout_batches(agent, env_cfg, episodes, seed, batch=batch, dtype=dtype,
                               deterministic=deterministic, record=record, **reset_kwargs)
    spec = spec_from_agent(agent)
    nets: dict[int, BrianLSNN] = {}

    def per_batch(i: int, size: int) -> dict[str, Any]:
        if size not in nets:  # one network per batch size, restored to t = 0 for each batch
            nets[size] = BrianLSNN(spec, size, options, target=target,
                                   record_state=("A",) if record and _discrete(options) else False)
        return {"net": nets[size], "seed": seed * 1000 + i}

    return rollout_batches(agent, env_cfg, episodes, seed, batch=batch, dtype=dtype,
                           runner=brian2_rollout, batch_kwargs=per_batch,
                           deterministic=deterministic, record=record, **reset_kwargs)


def simulate_brian2(task: Any, agent: Any, episodes: int, seed: int, *, target: str = "auto",
                    deterministic: bool = False, batch: int = 16, env: Any = None,
                    **reset_kwargs: Any) -> dict[str, Tensor]:
    """:func:`snn_icl.experiments.simulate.simulate` with the network in Brian2: the same episodes (env seeds,
    action-noise generator, env dtype = the agent's), spikes ``z`` and thresholds ``A`` recorded.
    ``env`` (default the task's) and ``reset_kwargs``: a protocol's episodes."""
    from snn_icl.models import frozen

    spec_from_agent(agent)  # a clear error for anything but an LSNN agent
    frozen(agent)
    return rollout_batches_backend(agent, task.env if env is None else env, episodes, seed,
                                   backend="brian2", batch=batch, target=target,
                                   dtype=agent.net.w_in.dtype, deterministic=deterministic,
                                   record=True, **reset_kwargs)


# ----------------------------------------------------------------------------- behaviour


def evaluate_backend(agent: Any, task: Any, episodes: int, seed: int, *, backend: str = "brian2",
                     options: BiologyOptions | None = None, target: str = "auto",
                     n_trials: int = 6, batch: int = 64,
                     sim: dict[str, Tensor] | None = None) -> dict[str, Any]:
    """Per-trial behaviour (:func:`snn_icl.episodes.measures.behaviour`: latency by trial with bootstrap
    bounds, success, path length, one-shot ratio) of held-out episodes with a deterministic
    policy, in torch or Brian2. ``sim``: reuse episodes already run."""
    from snn_icl.episodes.measures import behaviour
    from snn_icl.models import frozen

    frozen(agent)
    if sim is None:
        sim = rollout_batches_backend(agent, task.env, episodes, seed, backend=backend, batch=batch,
                                      options=options, target=target,
                                      deterministic=task.eval.deterministic)
    return behaviour(sim, task.env, n_trials, torch.Generator().manual_seed(seed))


def compare_simulators(agent: Any, task: Any, episodes: int, seed: int, *, target: str = "auto",
                       batch: int = 64) -> dict[str, Any]:
    """Both simulators on the same ``episodes`` held-out episodes (float64, deterministic policy):
    the behaviour of each, and how far their trajectories agree."""
    sims = {name: rollout_batches_backend(agent, task.env, episodes, seed, backend=name, batch=batch,
                                          target=target, deterministic=task.eval.deterministic,
                                          record=True)
            for name in BACKENDS}
    result = {name: evaluate_backend(agent, task, episodes, seed, sim=sim) for name, sim in sims.items()}
    a, b = sims["torch"], sims["brian2"]
    same_spikes = (a.z == b.z).all(dim=(0, 2))
    result["agreement"] = {
        "episodes": episodes,
        "episodes_identical_spikes": int(same_spikes.sum()),
        "spike_mismatches": int((a.z != b.z).sum()),
        "spikes": int(a.z.sum()),
        "max_threshold_difference": float((a.A - b.A).abs().max()),
        "max_position_difference": float((a.position - b.position).abs().max()),
        "identical_latencies": bool(torch.equal(a.latency, b.latency)),
    }
    return result


def compare_markdown(result: dict[str, Any], n_trials: int = 6) -> str:
    """The blocks of :func:`compare_simulators` (and any other ``name: behaviour`` entries) side
    by side: median latency per trial (env steps), trials 2-4, one-shot ratio, goals."""
    names = [k for k in result if k != "agreement"]
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]

    def cell(v: Any) -> str:
        return "–" if v is None else (f"{v:.2f}" if isinstance(v, float) and v != int(v) else f"{v:g}")

    for k in range(n_trials):
        lines.append(f"| latency trial {k + 1} | " + " | ".join(
            f"{cell(result[n]['latency_by_trial'][k])} [{cell(result[n]['latency_ci'][k][0])}, "
            f"{cell(result[n]['latency_ci'][k][1])}]" for n in names) + " |")
    for key, label in (("latency_trials2_4", "latency trials 2-4"), ("one_shot_ratio", "one-shot ratio"),
                       ("goals_per_episode", "goals / episode")):
        lines.append(f"| {label} | " + " | ".join(cell(result[n][key]) for n in names) + " |")
    success = (cell(result[n]["success_by_trial"][0]) for n in names)
    lines.append("| success trial 1 | " + " | ".join(success) + " |")
    return "\n".join(lines) + "\n"


DEFAULT_SWEEP: dict[str, list[Any]] = {
    "delay_ms": [0.0, 1.0, 2.0, 5.0, 10.0, 20.0],
    "noise_sigma": [0.0, 0.01, 0.03, 0.05, 0.1, 0.3],
    "silenced_fraction": [0.0, 0.05, 0.1, 0.2, 0.4],
    "integration": [("discrete", 1.0), ("exact", 1.0), ("euler", 1.0), ("exact", 0.1), ("euler", 0.1)],
}
"""Knob values of :func:`sweep_knobs`; the first of each is the exact discrete map. Noise is
the std per ms in voltage units (v_th = 0.01; the trained network's v has std ~0.4); integration
is (method, dt in ms)."""


def _options(knob: str, value: Any, seed: int) -> BiologyOptions:
    if knob == "integration":
        return BiologyOptions(integration=value[0], dt_ms=value[1], seed=seed)
    return replace(BiologyOptions(seed=seed), **{knob: value})


def _label(knob: str, value: Any) -> str:
    return f"{value[0]}, dt {value[1]:g} ms" if knob == "integration" else f"{value:g}"


def sweep_knobs(agent: Any, task: Any, episodes: int, seed: int, *,
                sweep: dict[str, list[Any]] | None = None, target: str = "auto",
                batch: int = 64, progress: bool = False) -> list[dict[str, Any]]:
    """Run each knob value (one at a time, the others off) on the same held-out episodes.

    Returns one row per (knob, value): trial-1 latency, median latency of trials 2-4, one-shot
    ratio, success of trial 1 and goals per episode (env steps; deterministic policy).
    """
    rows = []
    sweep = DEFAULT_SWEEP if sweep is None else sweep
    for knob, values in sweep.items():
        for value in values:
            block = evaluate_backend(agent, task, episodes, seed, options=_options(knob, value, seed),
                                     target=target, batch=batch)
            rows.append({"knob": knob, "value": _label(knob, value),
                         "latency_trial1": block["latency_by_trial"][0],
                         "latency_trials2_4": block["latency_trials2_4"],
                         "one_shot_ratio": block["one_shot_ratio"],
                         "success_trial1": block["success_by_trial"][0],
                         "goals_per_episode": block["goals_per_episode"]})
            if progress:
                print(f"{knob}={rows[-1]['value']}: ratio {rows[-1]['one_shot_ratio']}", flush=True)
    return rows


def sweep_markdown(rows: list[dict[str, Any]]) -> str:
    """The sweep as a Markdown table (latencies in env steps)."""
    def cell(v: Any) -> str:
        return "–" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))

    head = ("| knob | value | latency trial 1 | latency trials 2-4 | one-shot ratio | "
            "success trial 1 | goals / episode |\n|---|---|---|---|---|---|---|\n")
    keys = ("knob", "value", "latency_trial1", "latency_trials2_4", "one_shot_ratio",
            "success_trial1", "goals_per_episode")
    return head + "".join("| " + " | ".join(cell(r[k]) for k in keys) + " |\n" for r in rows)


def plot_sweep(rows: list[dict[str, Any]]):
    """One column per knob: the one-shot ratio (top) and the median latencies of trial 1 and of
    trials 2-4 (bottom, env steps) at each value; rows share their y axis."""
    import matplotlib.pyplot as plt

    knobs = list(dict.fromkeys(r["knob"] for r in rows))
    fig, axes = plt.subplots(2, len(knobs), figsize=(3.3 * len(knobs), 5.2), sharey="row",
                             squeeze=False)
    nan = lambda v: np.nan if v is None else v  # noqa: E731
    for col, knob in enumerate(knobs):
        sel = [r for r in rows if r["knob"] == knob]
        x = np.arange(len(sel))
        top, bottom = axes[0][col], axes[1][col]
        top.plot(x, [nan(r["one_shot_ratio"]) for r in sel], "o-", color="C0")
        top.axhline(1.0, color="0.6", lw=0.8, ls=":")
        top.set_title(knob, fontsize=10)
        bottom.plot(x, [nan(r["latency_trial1"]) for r in sel], "s-", color="C1", label="trial 1")
        bottom.plot(x, [nan(r["latency_trials2_4"]) for r in sel], "^-", color="C2", label="trials 2-4")
        for ax in (top, bottom):
            ax.set_xticks(x, [r["value"] for r in sel], rotation=30, ha="right", fontsize=7)
            ax.grid(alpha=0.3)
        top.tick_params(labelbottom=False)
    axes[0][0].set_ylabel("one-shot ratio\n(trial 1 / trials 2-4)")
    axes[1][0].set_ylabel("median latency (env steps)")
    axes[1][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- export

_README = """\
Frozen LSNN exported from snn-icl ({source}) for Brian2

Files
  {script}     the network in Brian2, the water maze in numpy, a command line; needs only
                     numpy and brian2 (pip install brian2). Read its docstring for the equations.
  weights.npz        w_in [n_in, n], w_rec [n, n] (row = presynaptic, zero diagonal), readout
                     heads w_mean [2, n], b_mean [2], w_value [n], log_std [2] (float64, no pickle)
  params.json        neuron constants (ms, voltage units), readout, input encoding, water maze
  reference_input.npy     {ref_ms} ms of input x [T, 1, n_in] (the first env steps of an episode)
  reference_spikes.npy    the spikes z [T, 1, n] (uint8) that snn-icl's torch LSNN gives on it

Run
  python {script} --episodes 8                  # water maze, closed loop, latency per trial
  python {script} --episodes 32 --target cython # compiled (cached in ~/.cython/brian_extensions)
  python {script} --input reference_input.npy --out z.npz
      then: numpy.array_equal(numpy.load("z.npz")["z"], numpy.load("reference_spikes.npy"))
  python {script} --episodes 8 --reversal-trial 4   # the platform moves to the opposite place at trial 5
  python {script} --episodes 8 --probe-trial 3       # trial 4 without the platform
  python {script} --episodes 8 --dark-after-trial 0 --dark-steps 25   # a silent delay after trial 1
  python {script} --help      # biology knobs: --delay-ms, --noise-sigma, --silenced-fraction,
                                #   --integration {{discrete,exact,euler}}, --dt-ms; protocols:
                                #   --probe-trial, --probe-steps, --dark-after-trial, --dark-steps,
                                #   --iti-dark-steps, --reversal-trial, --reversal, --displacement

Network: n = {n} neurons ({n_regular} regular, then {n_adaptive} adaptive), {n_in} inputs,
{ms} ms per env step, dt = 1 ms. In Python: from lsnn_brian2 import LSNNSpec, BrianLSNN;
net = BrianLSNN(LSNNSpec.load("."), batch=1); net.group / net.synapses are the Brian2 objects.
"""


def export(source: str | Path, out: str | Path) -> Path:
    """Write a standalone Brian2 version of a checkpoint into the folder ``out``.

    ``source``: a checkpoint file, run directory or "pretrained". Writes ``lsnn_brian2.py`` (a
    copy of :mod:`snn_icl.brian2.standalone`), ``weights.npz``, ``params.json`` (with the water maze's
    parameters), ``README.txt`` and a reference input with the torch network's spikes.
    """
    from dataclasses import asdict

    from snn_icl.storage.checkpoint import load_agent, resolve

    path = resolve(source)
    agent, task, _ = load_agent(path)
    spec = spec_from_agent(agent)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec.save(out, env=asdict(task.env))
    shutil.copyfile(Path(__file__).with_name("standalone.py"), out / SCRIPT_NAME)
    x, z = _reference(agent, task)
    np.save(out / "reference_input.npy", x)
    np.save(out / "reference_spikes.npy", z)
    (out / "README.txt").write_text(_README.format(
        source=path.name, script=SCRIPT_NAME, ref_ms=len(x), n=spec.n, n_regular=spec.n_regular,
        n_adaptive=spec.n - spec.n_regular, n_in=spec.n_in, ms=spec.ms_per_step))
    return out


@torch.no_grad()
def _reference(agent: Any, task: Any) -> tuple[np.ndarray, np.ndarray]:
    """Input [T, 1, n_in] of the first env steps of one episode (float64) and the torch spikes."""
    agent = agent.double()
    steps = max(1, REFERENCE_MS // agent.ms_per_step)
    cfg = replace(task.env, episode_steps=steps)
    env = WaterMaze(cfg, 1, seed=env_seed(0, 0, training=False), dtype=torch.float64)
    sim = rollout(agent, env, generator=torch.Generator().manual_seed(0), deterministic=True)
    x = sim.net_input.transpose(1, 2).reshape(-1, 1, agent.obs_dim)
    z, _ = agent.net(x)
    return x.numpy(), z.numpy().astype(np.uint8)

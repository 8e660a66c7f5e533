"""The notebook API: load an agent, run held-out episodes with frozen weights, read and draw them.

    import snn_icl
    agent = snn_icl.load("pretrained")                  # or "pretrained:lstm", a run, a task file
    eps = snn_icl.run(agent, episodes=8, seed=1, record=True)
    eps.summary()                                       # latency by trial, success, probe, ...
    eps.plot_paths(0); eps.plot_raster(0)               # one episode's swim paths, its spikes
    eps.to_dataframe()                                  # one row per trial (needs pandas)
    snn_icl.run(agent, episodes=8, seed=1, no_memory=True)   # the no-memory control

Everything here calls the package's own layers (storage, episodes, measures, viz); it adds no
science of its own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from snn_icl.config import TaskConfig, load_task, make_agent
from snn_icl.envs.family import family_of, require_water_maze
from snn_icl.episodes import measures
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.episodes.rollout import rollout_batches
from snn_icl.models import frozen
from snn_icl.storage.checkpoint import load_agent, resolve
from snn_icl.viz import plots

__all__ = ["Episodes", "load", "run"]


def load(source: str | Path = "pretrained") -> nn.Module:
    """An agent with frozen weights and its task (``agent.task``, a :class:`TaskConfig`).

    ``source``: "pretrained" (the shipped LSNN), "pretrained:lstm" / "pretrained:transformer", a
    checkpoint file or a training run directory, or a task file ``*.toml`` (an untrained agent,
    weights from the task's seed).
    """
    if str(source).endswith(".toml"):
        task = load_task(source)
        agent = make_agent(task)
    else:
        agent, task, _ = load_agent(resolve(source))
    agent.task = task
    return frozen(agent)


@dataclasses.dataclass
class Episodes(EpisodeRecord):
    """An :class:`EpisodeRecord` that knows its task, with the verbs a notebook reaches for."""

    task: TaskConfig | None = None
    raster: dict[str, Any] | None = None
    """What :meth:`plot_raster` needs besides the spikes (spiking agents)."""
    probe_trial: int | None = None
    """0-based index of the probe trial, when the episodes had one."""

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in super().tensors().items() if isinstance(v, torch.Tensor)}

    def summary(self, n_trials: int = 6) -> dict[str, Any]:
        """:func:`snn_icl.episodes.measures.behaviour` (and the probe measures on a probe run)."""
        out = measures.behaviour(self, self.task.env, n_trials)
        if self.probe_trial is not None:
            out.update(measures.probe_measures(self, self.task.env, self.probe_trial))
        return out

    def trials(self, n_trials: int = 6) -> list[dict[str, Any]]:
        """One dict per started trial: episode, trial (1-based) and every per-trial measure."""
        table = measures.trial_table(self, self.task.env, n_trials)
        rows = []
        for b in range(self.episodes):
            for k in range(n_trials):
                if torch.isnan(table["latency"][b, k]):
                    continue
                row = {"episode": b, "trial": k + 1}
                for name, t in table.items():
                    v = t[b, k].item()
                    row[name] = bool(v) if name == "censored" else v
                rows.append(row)
        return rows

    def to_dataframe(self, n_trials: int = 6) -> Any:
        """:meth:`trials` as a pandas DataFrame (one row per trial)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_dataframe needs pandas: pip install pandas "
                              "(or use .trials(), a list of dicts)") from None
        return pd.DataFrame(self.trials(n_trials))

    def plot_paths(self, episode: int = 0, *, max_trials: int | None = None,
                   title: str | None = None) -> Figure:
        """Swim paths of one episode, one colour per trial (o = release, x = timed out)."""
        return plots.episode_paths(self, episode, self.task.env, max_trials=max_trials,
                                   title=title or f"episode {episode}: swim paths")

    def plot_raster(self, episode: int = 0, *, title: str | None = None) -> Figure:
        """Spikes and adaptive thresholds of one episode (spiking agents run with record=True)."""
        if self.raster is None:
            raise ValueError("no spikes to draw: run a spiking agent with record=True")
        return plots.episode_raster(self, episode, **self.raster,
                                    title=title or f"episode {episode}: spikes and thresholds")


def run(agent: nn.Module, episodes: int = 8, seed: int = 1, *, record: bool = False,
        no_memory: bool = False, probe: bool = False, deterministic: bool | None = None,
        task: TaskConfig | None = None, batch: int = 64, progress: bool = False) -> Episodes:
    """``episodes`` held-out episodes (evaluation seeds, never a training batch's) with frozen
    weights.

    Args:
        agent: from :func:`load` (or any agent, with ``task`` given).
        seed: evaluation seed: the same seed gives the same platforms and release points for
            every agent and condition.
        record: keep the spikes and thresholds of spiking agents.
        no_memory: reset the agent state at every trial start (the no-memory control).
        probe: remove the platform on the task's probe trial (``task.eval.probe_trial``).
        deterministic: act with the policy mean (default: the task's ``eval.deterministic``).
    """
    task = task if task is not None else getattr(agent, "task", None)
    if task is None:
        raise ValueError("run needs the agent's task: load the agent with snn_icl.load, or pass task=")
    require_water_maze(family_of(task.env), task.name, "snn_icl.run")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes!r}")
    frozen(agent)
    det = task.eval.deterministic if deterministic is None else deterministic
    kwargs: dict[str, Any] = {"probe_trial": task.eval.probe_trial} if probe else {}
    rec = rollout_batches(agent, task.env, episodes, seed, batch=batch, progress=progress,
                          desc="run", record=record, deterministic=det,
                          reset_memory_each_trial=no_memory, **kwargs)
    raster = task.agent.raster_kwargs() if rec.z is not None and hasattr(task.agent, "raster_kwargs") else None
    return Episodes(**rec.tensors(), task=task, raster=raster,
                    probe_trial=task.eval.probe_trial if probe else None)


def demo(out: str | Path, *, episodes: int = 64, seed: int = 1, untrained_task: str | Path | None = None,
         progress: bool = True) -> str:
    """The headline in one call (``make demo``): the shipped LSNN on held-out episodes with frozen
    weights against the no-memory control and an untrained network of the same task.

    Writes into ``out``: ``trained_paths.png`` (trials 1-4 of episode 0), ``trained_raster.png``,
    ``untrained_paths.png``, ``latency_by_trial.png`` (medians with 95 % bootstrap bands) and
    ``latency_table.md``; returns the table (median escape latency by trial, swim steps).
    """
    from snn_icl.experiments.evaluate import evaluate
    from snn_icl.storage import files

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    agent = load("pretrained")
    task = agent.task
    result = evaluate(agent, task, episodes, seed, n_trials=4, progress=progress)
    eps = run(agent, episodes=min(episodes, 16), seed=seed, record=True)
    shown, how = _typical(eps)
    untrained = load(untrained_task) if untrained_task else _untrained(task)
    naive = run(untrained, episodes=episodes, seed=seed)
    plots.save(eps.plot_paths(shown, max_trials=4, title=f"trained LSNN, frozen weights: a new "
                              f"platform (episode {shown}: {how})"), out / "trained_paths.png")
    plots.save(eps.plot_raster(shown, title=f"trained LSNN, episode {shown}: spikes and adaptive "
                               "thresholds"), out / "trained_raster.png")
    plots.save(naive.plot_paths(0, max_trials=4, title="untrained LSNN (same task): episode 0"),
               out / "untrained_paths.png")
    plots.save(plots.plot_latency_by_trial(result, max_trials=4), out / "latency_by_trial.png")
    rows = {"trained LSNN": result["latency_by_trial"],
            "no-memory control": result["control_no_memory"]["latency_by_trial"],
            "untrained LSNN": naive.summary(4)["latency_by_trial"],
            "straight swim": result["optimal_latency_by_trial"]}
    cell = lambda v: "-" if v is None else f"{v:g}"  # noqa: E731
    table = "\n".join(
        [f"Median escape latency (swim steps), {episodes} held-out episodes, seed {seed}",
         "", "| | trial 1 | trial 2 | trial 3 | trial 4 |", "|---|---|---|---|---|"]
        + [f"| {name} | " + " | ".join(cell(v) for v in values[:4]) + " |"
           for name, values in rows.items()]) + "\n"
    files.write_text(out / "latency_table.md", table)
    return table


def _typical(eps: Episodes) -> tuple[int, str]:
    """The episode to draw, and how it was chosen: the first whose trial 1 is a search (longer
    than 3 straight swims) and whose trials 2-4 each take at most twice the straight swim."""
    t = measures.trial_table(eps, eps.task.env, 4)
    lat, opt = t["latency"], t["optimal_latency"]
    ok = (lat[:, 0] > 3 * opt[:, 0]) & (lat[:, 1:4] <= 2 * opt[:, 1:4]).all(1)
    if bool(ok.any()):
        return int(ok.nonzero()[0, 0]), "the first with a search on trial 1 and near-straight trials 2-4"
    return 0, "episode 0: none had a search on trial 1 and near-straight trials 2-4"


def _untrained(task: TaskConfig) -> nn.Module:
    """The task's agent with weights from the task seed (never trained)."""
    agent = make_agent(task)
    agent.task = task
    return frozen(agent)

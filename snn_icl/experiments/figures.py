"""The figure sets that ``snn-icl plot`` draws for a directory.

A simulation directory (``snn-icl simulate``) gets the swim paths of one episode and its raster
with adaptive thresholds. A training run directory additionally gets, from a held-out episode of
the trained agent, the paths of trials 1-4 (a search, then direct swims if it learned) and the
raster across trial boundaries; the learning curve from ``metrics.csv``; the probe-trial
occupancy map; and, when ``eval.json`` is there (``snn-icl evaluate RUN --out RUN/eval.json``),
latency by trial against the optimum and the controls.
"""

from __future__ import annotations

import csv
from pathlib import Path
from snn_icl.config import CONFIG_FILE, TaskConfig, load_task
from snn_icl.episodes.record import EpisodeRecord
from snn_icl.storage import files
from snn_icl.storage.checkpoint import CHECKPOINT_FILE, load_agent
from snn_icl.viz import plots

SIMULATION_FILE = "simulation.safetensors"
SIMULATION_META = "simulation.json"
EVAL_FILE = "eval.json"


def recipe_marks(task: TaskConfig) -> dict[str, float]:
    """Training episode -> where the recipe changes: each Atlantis stage, the lr anneal."""
    t = task.train
    marks = {}
    for at in t.atlantis_from_iteration:
        stage = t.atlantis_at(at)
        if stage is not None and at > 0:
            marks[f"Atlantis {stage[0]:.0%}"] = at * t.batch_episodes
    if t.lr_anneal_iterations:
        marks["lr anneal"] = (t.iterations - t.lr_anneal_iterations) * t.batch_episodes
    return marks


def episode_figures(sim: EpisodeRecord, task: TaskConfig, episode: int, out: Path,
                    fmt: str, *, max_trials: int | None = None, label: str = "") -> list[Path]:
    """Swim paths and (if recorded) raster + thresholds of one episode of ``sim``."""
    name = f"{task.name}{label}: episode {episode}"
    fig = plots.episode_paths(sim, episode, task.env, max_trials=max_trials,
                              title=f"{name}, swim paths (o = release, x = timed out)")
    paths = [out / f"trajectories.{fmt}"]
    plots.save(fig, paths[-1])
    if sim.z is not None and sim.A is not None and hasattr(task.agent, "raster_kwargs"):
        fig = plots.episode_raster(sim, episode, title=f"{name}, spikes and adaptive thresholds",
                                   **task.agent.raster_kwargs())
        paths.append(out / f"raster.{fmt}")
        plots.save(fig, paths[-1])
    return paths


def simulation_figures(run: Path, episode: int, fmt: str, max_trials: int | None) -> list[Path]:
    task = load_task(run / CONFIG_FILE)
    sim = EpisodeRecord.from_tensors(files.load_tensors(run / SIMULATION_FILE))
    return episode_figures(sim, task, episode, run, fmt, max_trials=max_trials)


def training_figures(run: Path, episode: int, fmt: str, max_trials: int | None,
                     probe_episodes: int = 64) -> list[Path]:
    """Figures of a trained run (see the module docstring)."""
    from snn_icl.experiments.evaluate import run_condition
    from snn_icl.experiments.simulate import simulate
    from snn_icl.models import frozen

    agent, task, counters = load_agent(run / CHECKPOINT_FILE)
    frozen(agent)
    label = f" after {counters.get('episodes', '?')} training episodes"
    sim = simulate(task, agent, episode + 1, task.eval.seed, deterministic=task.eval.deterministic,
                   progress=False)
    paths = episode_figures(sim, task, episode, run, fmt, label=label,
                            max_trials=4 if max_trials is None else max_trials)
    metrics = run / "metrics.csv"
    if metrics.is_file():
        with metrics.open() as f:
            rows = list(csv.DictReader(f))
        if rows:
            paths.append(run / f"learning_curve.{fmt}")
            plots.save(plots.plot_learning_curve(rows, title=f"{task.name}: meta-training",
                                                 marks=recipe_marks(task)), paths[-1])
    probe = run_condition(agent, task, probe_episodes, task.eval.seed, probe=True)
    in_probe = (probe.trial[1:] == task.eval.probe_trial) & ~probe.on_platform[1:]
    paths.append(run / f"probe_occupancy.{fmt}")
    plots.save(plots.plot_probe_occupancy(
        probe.position[1:], probe.platform, in_probe, pool_radius=task.env.pool_radius,
        platform_radius=task.env.platform_radius,
        title=f"probe trial {task.eval.probe_trial + 1}, {probe_episodes} episodes\n"
              "(platform rotated East, dashed; target quadrant outlined)"), paths[-1])
    if (run / EVAL_FILE).is_file():
        result = files.read_json(run / EVAL_FILE)
        paths.append(run / f"latency_by_trial.{fmt}")
        plots.save(plots.plot_latency_by_trial(result, max_trials=6), paths[-1])
    return paths


def figures_for(run: Path, episode: int = 0, fmt: str = "png",
                max_trials: int | None = None) -> list[Path]:
    """Draw what fits the directory ``run``; returns the files written."""
    if fmt not in ("png", "pdf"):
        raise ValueError(f"--format must be png or pdf, got {fmt!r}")
    if (run / CHECKPOINT_FILE).is_file():
        return training_figures(run, episode, fmt, max_trials)
    if (run / SIMULATION_FILE).is_file():
        return simulation_figures(run, episode, fmt, max_trials)
    raise FileNotFoundError(f"{run} holds neither {SIMULATION_FILE} nor {CHECKPOINT_FILE}; "
                            "run `snn-icl simulate` or `snn-icl train` first")

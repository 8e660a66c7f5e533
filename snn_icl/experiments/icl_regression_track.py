"""In-context regression runs' training track against gradient descent on the same tasks.

A regression run logs ``held_out_loss`` every ``train.track_every`` iterations: the loss at
k = N on :data:`snn_icl.envs.family.TRACK_TASKS` fixed held-out tasks of the track seed
(:data:`snn_icl.train.supervised.TRACK_SEED`, a validation seed). Here those same tasks are
drawn again and the exact reference learners scored on them, so that each run's curve reads as
a ratio to one step of gradient descent along training: when (in training tasks) a run reaches
one GD step, and how the budget to get there grows with d. The learning rates of the references
are the best on these tasks themselves (one number each, on 1,024 tasks: a reference line, not a
held-out score).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from snn_icl.config import load_task
from snn_icl.envs import icl_regression as reg
from snn_icl.envs.family import regression_track_tasks
from snn_icl.experiments.icl_regression import references
from snn_icl.train.supervised import TRACK_SEED


def read_track(path: str | Path) -> dict[str, list[float]]:
    """The tracked rows of a regression run's metrics.csv: ``iteration``, ``tasks`` (training
    tasks seen, the ``episodes`` column), ``held_out_loss``, and ``d`` (the last
    ``active_dimension``: the task's d once any curriculum has ended). Raises ValueError naming
    the file if it is not a regression run's metrics or has no tracked row."""
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    need = ("held_out_loss", "iteration", "episodes", "active_dimension")
    if not rows or any(k not in rows[0] for k in need):
        raise ValueError(f"{path}: not the metrics.csv of an in-context regression run "
                         f"(needs columns {', '.join(need)})")
    tracked = [r for r in rows if r["held_out_loss"]]
    if not tracked:
        raise ValueError(f"{path}: no tracked rows (train.track_every was 0)")
    loss = [float(r["held_out_loss"]) for r in tracked]
    if not all(math.isfinite(v) for v in loss):
        raise ValueError(f"{path}: a tracked held_out_loss is not finite")
    return {"iteration": [int(float(r["iteration"])) for r in tracked],
            "tasks": [int(float(r["episodes"])) for r in tracked],
            "held_out_loss": loss,
            "d": int(float(rows[-1]["active_dimension"]))}


def track_config(metrics: Path, d: int) -> reg.RegressionConfig:
    """The env of the run whose metrics.csv this is: its ``config.toml`` beside it when there is
    one, else the defaults of the family (N = 10, x ~ U(-1, 1)^d, w ~ N(0, I), no noise) at the
    CSV's d (shipped ``*_metrics.csv`` files stand alone)."""
    config = metrics.parent / "config.toml"
    if metrics.name == "metrics.csv" and config.is_file():
        env = load_task(config).env
        if not isinstance(env, reg.RegressionConfig):
            raise ValueError(f"{config}: not an in-context regression task")
        return env
    return reg.RegressionConfig(d=d)


def track_references(cfg: reg.RegressionConfig, seed: int = TRACK_SEED) -> dict[str, Any]:
    """Every reference learner of :func:`snn_icl.experiments.icl_regression.references` on the
    track's tasks (``zero``, ``gd1``-``gd3``, ``ridge``, ``least_squares``, ...: each a dict
    with its ``loss``), with its learning rate or strength chosen on those same tasks."""
    b = regression_track_tasks(cfg, seed)
    return references(b, b)


def track_summary(curve: dict[str, Any], refs: dict[str, Any]) -> dict[str, Any]:
    """One run's track against its references: the last tracked loss and its ratio to one GD
    step, the lowest ratio, and the first tracked iteration (and training tasks) at or below
    one GD step (None if never)."""
    gd1, gd2 = refs["gd1"]["loss"], refs["gd2"]["loss"]
    ratio = [v / gd1 for v in curve["held_out_loss"]]
    hit = next((i for i, r in enumerate(ratio) if r <= 1.0), None)
    return {"d": curve["d"], "iterations": curve["iteration"][-1], "tasks": curve["tasks"][-1],
            "final_loss": curve["held_out_loss"][-1], "final_vs_gd1": ratio[-1],
            "best_vs_gd1": min(ratio), "final_vs_gd2": curve["held_out_loss"][-1] / gd2,
            "gd1_reached_iteration": None if hit is None else curve["iteration"][hit],
            "gd1_reached_tasks": None if hit is None else curve["tasks"][hit],
            "references": refs}


def track_table(summaries: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per run, sorted by d then name."""
    lines = ["| run | d | iterations | held-out loss at the end | one GD step | / one GD step "
             "(end; lowest) | / two GD steps | first tracked iteration at or below one GD step |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in sorted(summaries.items(), key=lambda kv: (kv[1]["d"], kv[0])):
        reached = "never" if s["gd1_reached_iteration"] is None else f"{s['gd1_reached_iteration']:,}"
        lines.append(f"| {name} | {s['d']} | {s['iterations']:,} | {s['final_loss']:.4f} | "
                     f"{s['references']['gd1']['loss']:.4f} | {s['final_vs_gd1']:.3f}; "
                     f"{s['best_vs_gd1']:.3f} | {s['final_vs_gd2']:.3f} | {reached} |")
    return "\n".join(lines) + ("\n\nheld-out loss: the training track (1,024 tasks of the track "
                               "seed, k = N); GD's learning rates the best on those tasks.\n")

"""The course of training: behaviour measures of a run's snapshots on held-out episodes.

A run trained with ``[train] snapshot_every`` keeps its weights every that many iterations. Each
snapshot (and the final checkpoint) is evaluated frozen (:func:`snn_icl.experiments.evaluate.evaluate`,
without the controls) under one or more *views*: a protocol with its settings, e.g. the
reference protocol on its trained places and on novel places (docs/protocols.md). The answer is
each measure against training iterations, per run, and pooled across the training seeds of a
condition (mean and 95 % t-interval), so that questions about *when* something is learnt or
lost (in-weights memory of fixed places against one-shot learning of new ones, Singh et al.
2023) are read on the same episodes at every point of training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from snn_icl.config import ProtocolConfig, protocol_override, seed_kind
from snn_icl.experiments.evaluate import evaluate
from snn_icl.experiments.report import mean_ci
from snn_icl.experiments.time_to_targets import snapshots
from snn_icl.storage.checkpoint import load_agent
from snn_icl.train.run_dir import fine_tuning_start


def _first(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda r: r[key][0]


MEASURES: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "trial 1 latency": _first("latency_by_trial"),
    "trial 1 success": _first("success_by_trial"),
    "trials 2-4 latency": lambda r: r["latency_trials2_4"],
    "one-shot ratio": lambda r: r["one_shot_ratio"],
    "probe target quadrant": lambda r: r["probe_target_quadrant_fraction"],
}
"""What is read off each evaluation: trial-1 median latency (swim steps; the in-weights measure on
trained places), trial-1 success, median latency over trials 2-4, the one-shot ratio trial 1 /
trials 2-4 (the in-context measure) and the probe trial's fraction in the target quadrant."""


def parse_view(text: str) -> tuple[str, list[str]]:
    """``NAME`` or ``NAME:KEY=V,KEY=V`` -> (name, ["KEY=V", ...]): a view's protocol settings
    (over the task's [protocol] table and the command's --protocol-set). A comma inside
    brackets belongs to the value (``displacement=[0.2,0]``)."""
    import re

    name, _, rest = text.partition(":")
    if not name.strip():
        raise ValueError(f"--view {text!r}: expected NAME or NAME:KEY=VALUE,...")
    settings = [s for s in re.split(r",(?![^\[]*\])", rest) if s.strip()]
    return name.strip(), settings


def course_of_run(run: Path, views: dict[str, list[str]], episodes: int, seed: int, *,
                  protocol: str | None = None, every: int = 1,
                  progress: bool = True) -> dict[str, Any]:
    """Every ``every``-th snapshot of ``run`` (always the last one) evaluated under each view;
    a fine-tuning run (``[train] init_from``) starts with the network it started from, at
    iteration 0.

    ``views``: name -> protocol settings (:func:`parse_view`), applied with ``protocol`` over
    the run's own [protocol] table. Returns {"run", "episodes", "seed", "seed_kind", "views"
    (name -> the protocol used), "rows": one per snapshot in training order with "iteration",
    "episodes", "env_steps", "wall_time_min" and "measures" (view -> measure -> value)}."""
    paths = snapshots(run)
    paths = [p for i, p in enumerate(paths) if i % every == 0 or i == len(paths) - 1]
    _, task0, _ = load_agent(paths[-1])
    chosen = {name: protocol_override(task0, protocol, settings) for name, settings in views.items()}

    def measured(agent: Any, task: Any) -> dict[str, dict[str, float | None]]:
        out = {}
        for name, proto in chosen.items():
            result = evaluate(agent, task, episodes, seed, progress=False, protocol=proto,
                              controls=False)
            out[name] = {m: fn(result) for m, fn in MEASURES.items()}
        return out

    rows = []
    if task0.train.init_from:  # a fine-tuning run starts from a trained network: iteration 0
        rows.append({"snapshot": f"init_from {task0.train.init_from}", "iteration": 0,
                     "episodes": 0, "env_steps": 0, "wall_time_min": 0.0,
                     "measures": measured(fine_tuning_start(task0), task0)})
    for path in tqdm(paths, desc=f"snapshots of {run.name}", disable=not progress):
        agent, task, counters = load_agent(path)
        rows.append({"snapshot": path.name, "iteration": int(counters["iteration"]),
                     "episodes": int(counters["episodes"]),
                     "env_steps": int(counters["episodes"]) * task.env.episode_steps,
                     "wall_time_min": round(float(counters["wall_time_s"]) / 60, 2),
                     "measures": measured(agent, task)})
    return {"run": str(run), "episodes": episodes, "seed": seed, "seed_kind": seed_kind(seed),
            "views": {n: _protocol_dict(p) for n, p in chosen.items()}, "rows": rows}


def _course_one(run: str, views: dict[str, list[str]], episodes: int, seed: int,
                protocol: str | None, every: int) -> dict[str, Any]:
    """:func:`course_of_run` in a worker of :func:`courses` (no progress bar)."""
    return course_of_run(Path(run), views, episodes, seed, protocol=protocol, every=every,
                         progress=False)


def courses(groups: dict[str, list[Path]], views: dict[str, list[str]], episodes: int, seed: int,
            *, protocol: str | None = None, every: int = 1, workers: int = 1,
            progress: bool = True) -> dict[str, list[dict[str, Any]]]:
    """:func:`course_of_run` of every run of every condition (label -> training seeds' runs),
    ``workers`` runs at once; the input of :func:`pool`."""
    from snn_icl.experiments.workers import in_processes

    flat = [(label, run) for label, runs in groups.items() for run in runs]
    results = in_processes(_course_one, [(str(run), views, episodes, seed, protocol, every)
                                         for _, run in flat],
                           workers=workers, preload="snn_icl.experiments.training_course",
                           desc="runs", progress=progress)
    out: dict[str, list[dict[str, Any]]] = {label: [] for label in groups}
    for (label, _), result in zip(flat, results):
        out[label].append(result)
    return out


def _protocol_dict(proto: ProtocolConfig) -> dict[str, Any]:
    import dataclasses

    return {k: v for k, v in dataclasses.asdict(proto).items() if v is not None}


def pool(courses: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Condition -> its runs' :func:`course_of_run` results (training seeds), pooled at the
    iterations every run of the condition was evaluated at: per view and measure, the per-seed
    values, their mean and 95 % t-interval half-width.

    Raises ValueError when the runs of a condition share no iteration or differ in views."""
    out: dict[str, Any] = {}
    for label, runs in courses.items():
        views = list(runs[0]["views"])
        if any(list(r["views"]) != views for r in runs):
            raise ValueError(f"{label}: the runs were evaluated under different views")
        by_iteration = [{row["iteration"]: row for row in r["rows"]} for r in runs]
        common = sorted(set.intersection(*(set(b) for b in by_iteration)))
        if not common:
            raise ValueError(f"{label}: its runs share no evaluated iteration")
        table: dict[str, dict[str, Any]] = {}
        for view in views:
            table[view] = {}
            for m in MEASURES:
                values = [[b[it]["measures"][view][m] for b in by_iteration] for it in common]
                stats = [mean_ci(v) for v in values]
                table[view][m] = {"values": values, "mean": [s["mean"] for s in stats],
                                  "ci95": [s["ci95"] for s in stats]}
        out[label] = {"runs": [r["run"] for r in runs], "iterations": common,
                      "env_steps": [by_iteration[0][it]["env_steps"] for it in common],
                      "views": runs[0]["views"], "measures": table}
    first = next(iter(courses.values()))[0]
    return {"episodes": first["episodes"], "seed": first["seed"], "seed_kind": first["seed_kind"],
            "conditions": out}


def _cell(mean: float | None, ci: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3g}" + ("" if ci is None else f" ± {ci:.2g}")


def markdown(pooled: dict[str, Any]) -> str:
    """One table per view: measures (mean ± 95 % CI across training seeds) by condition and
    iteration."""
    lines = []
    conditions = pooled["conditions"]
    views = list(next(iter(conditions.values()))["views"])
    for view in views:
        lines += [f"### {view}", "", "| condition | n | iteration | " + " | ".join(MEASURES) + " |",
                  "|---|---|---|" + "---|" * len(MEASURES)]
        for label, c in conditions.items():
            for i, it in enumerate(c["iterations"]):
                cells = [_cell(c["measures"][view][m]["mean"][i], c["measures"][view][m]["ci95"][i])
                         for m in MEASURES]
                lines.append(f"| {label} | {len(c['runs'])} | {it} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(f"Evaluation seed {pooled['seed']} ({pooled['seed_kind']}), {pooled['episodes']} "
                 "episodes per snapshot and view; mean ± 95 % t-interval across training seeds.")
    return "\n".join(lines) + "\n"

"""Side-by-side evaluation of several trained agents on the SAME held-out episodes.

Every agent is evaluated with :func:`snn_icl.experiments.evaluate.evaluate` with one seed, so all of them
meet the same platforms and release points; the table adds what each cost to train.
"""

from __future__ import annotations

import csv
from typing import Any

import torch
from tqdm.auto import tqdm

from snn_icl.storage.checkpoint import display_names, load_agent, metrics_path, resolve
from snn_icl.envs.water_maze import WaterMazeConfig
from snn_icl.experiments.evaluate import evaluate

COLUMNS = [
    ("model", "model"),
    ("kind", "agent"),
    ("parameters", "parameters"),
    ("training_episodes", "training episodes"),
    ("training_env_steps", "training env steps"),
    ("training_minutes", "training wall time (min)"),
    ("criterion_env_steps", "env steps to one-shot criterion"),
    ("latency_trial1", "latency trial 1"),
    ("latency_trials2_4", "latency trials 2-4"),
    ("optimal_latency", "straight swim"),
    ("one_shot_ratio", "ratio trial 1 / 2-4"),
    ("no_memory_ratio", "ratio, state reset each trial"),
    ("probe_target_quadrant_fraction", "probe: time in target quadrant"),
    ("goals_per_episode", "goals per episode"),
]


CRITERION_WINDOW = 50
"""Training iterations averaged for the one-shot criterion (training batches are noisy)."""


def steps_to_criterion(rows: list[dict[str, str]], env: WaterMazeConfig, optimum: float | None,
                       window: int = CRITERION_WINDOW) -> int | None:
    """Training env steps until the one-shot criterion first held on the training batches.

    Criterion (the one-shot issue's targets): over ``window`` consecutive iterations, the mean of
    the batch medians gives trial 1 / trials 2-4 >= 3 and trials 2-4 <= 2 x ``optimum`` (the
    straight swim, env steps). Returns the env steps collected by the end of that window (None:
    never, or no metrics).
    """
    if optimum is None or len(rows) < window:
        return None

    def moving_mean(key: str) -> torch.Tensor:
        # a batch with no finished trial of that index has no median: count it as a time-out
        v = torch.tensor([float(r[key]) for r in rows], dtype=torch.float64)
        return v.nan_to_num(float(env.trial_timeout)).unfold(0, window, 1).mean(1)

    first, later = moving_mean("latency_trial1"), moving_mean("latency_trials2_4")
    ok = (first >= 3 * later) & (later <= 2 * optimum)
    if not bool(ok.any()):
        return None
    end = int(ok.nonzero()[0, 0]) + window - 1  # the row that completes the first good window
    return int(float(rows[end]["episodes"])) * env.episode_steps


def training_rows(checkpoint: Any, iteration: int | None) -> list[dict[str, str]]:
    """The checkpoint's metrics.csv rows up to its iteration ([] when none is kept)."""
    path = metrics_path(checkpoint)
    if not path.is_file():
        return []
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if iteration is None or int(float(r["iteration"])) <= iteration]


def compare(sources: list[str], episodes: int, seed: int, *,
            progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Evaluate each checkpoint (file, run directory or "pretrained[:kind]").

    Returns (table rows keyed as in :data:`COLUMNS`, full evaluation results by model name).
    """
    rows, results = [], {}
    names = display_names(sources)
    for source, name in tqdm(list(zip(sources, names)), desc="models", disable=not progress):
        path = resolve(source)
        agent, task, counters = load_agent(path)
        r = evaluate(agent, task, episodes, seed, progress=False)
        results[name] = r
        optimum = r["optimal_latency_trials2_4"]
        n_episodes = counters.get("episodes")
        history = training_rows(path, counters.get("iteration"))
        rows.append({
            "model": name,
            "kind": task.agent.kind,
            "parameters": sum(p.numel() for p in agent.parameters()),
            "training_episodes": n_episodes,
            "training_env_steps": None if n_episodes is None else n_episodes * task.env.episode_steps,
            "training_minutes": None if "wall_time_s" not in counters
            else round(counters["wall_time_s"] / 60, 1),
            "latency_trial1": r["latency_by_trial"][0],
            "latency_trials2_4": r["latency_trials2_4"],
            "criterion_env_steps": steps_to_criterion(history, task.env, optimum),
            "optimal_latency": optimum,
            "one_shot_ratio": r["one_shot_ratio"],
            "no_memory_ratio": r["control_no_memory"]["one_shot_ratio"],
            "probe_target_quadrant_fraction": r["probe_target_quadrant_fraction"],
            "goals_per_episode": r["goals_per_episode"],
        })
    return rows, results


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(label for _, label in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(row[key]) for key, _ in COLUMNS) + " |" for row in rows]
    return "\n".join([head, rule, *body]) + "\n"


def csv_table(rows: list[dict[str, Any]]) -> str:
    import io as _io

    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[key for key, _ in COLUMNS])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()

"""Side-by-side evaluation of several trained agents on the SAME held-out episodes.

Every agent is evaluated with :func:`snn_icl.evaluate.evaluate` with one seed, so all of them
meet the same platforms and release points; the table adds what each cost to train.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from snn_icl.checkpoint import load_agent, resolve
from snn_icl.evaluate import evaluate

COLUMNS = [
    ("model", "model"),
    ("kind", "agent"),
    ("parameters", "parameters"),
    ("training_episodes", "training episodes"),
    ("training_env_steps", "training env steps"),
    ("training_minutes", "training wall time (min)"),
    ("latency_trial1", "latency trial 1"),
    ("latency_trials2_4", "latency trials 2-4"),
    ("optimal_latency", "straight swim"),
    ("one_shot_ratio", "ratio trial 1 / 2-4"),
    ("no_memory_ratio", "ratio, state reset each trial"),
    ("probe_target_quadrant_fraction", "probe: time in target quadrant"),
    ("goals_per_episode", "goals per episode"),
]


def compare(sources: list[str], episodes: int, seed: int, *,
            progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Evaluate each checkpoint (file, run directory or "pretrained[:kind]").

    Returns (table rows keyed as in :data:`COLUMNS`, full evaluation results by model name).
    """
    rows, results = [], {}
    for source in tqdm(sources, desc="models", disable=not progress):
        path = resolve(source)
        agent, task, counters = load_agent(path)
        r = evaluate(agent, task, episodes, seed, progress=False)
        if source.startswith("pretrained"):
            name = "pretrained:lsnn" if source == "pretrained" else source
        else:
            name = path.parent.name  # the run directory
        results[name] = r
        opt = [x for x in r["optimal_latency_by_trial"][1:4] if x is not None]
        n_episodes = counters.get("episodes")
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
            "optimal_latency": sorted(opt)[len(opt) // 2] if opt else None,
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
    import csv
    import io as _io

    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[key for key, _ in COLUMNS])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()

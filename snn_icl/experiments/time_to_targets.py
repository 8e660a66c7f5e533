"""Time to the one-shot targets: a run's snapshots evaluated on held-out episodes.

A run trained with ``[train] snapshot_every`` keeps its weights every that many iterations
(``RUN/snapshots/iteration_NNNNNN.safetensors``). Each snapshot, and the run's final checkpoint,
is evaluated frozen (:func:`snn_icl.experiments.evaluate.evaluate`) on every evaluation seed, and
the project's targets (:func:`~snn_icl.experiments.evaluate.one_shot_targets`) are read off: a
target counts as met at a snapshot when it is met on every seed. The answer is the training time
(iterations, env steps, the run's own wall time in minutes) at which each target, and all of them
together, is first met, and the point from which it stays met to the end of the run. The
training batches' criterion (:func:`~snn_icl.experiments.compare.steps_to_criterion`) has no probe
and runs with action noise; this is the held-out version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from snn_icl.config import seed_kind
from snn_icl.experiments.evaluate import evaluate, one_shot_targets
from snn_icl.storage.checkpoint import CHECKPOINT_FILE, load_agent, read_metadata
from snn_icl.train.run_dir import snapshot_paths

ALL = "all targets"
"""The row key of the targets taken together."""


def snapshots(run: Path) -> list[Path]:
    """The run's snapshots in training order, then its final checkpoint when it is newer.

    Raises ValueError when ``run`` holds neither."""
    found = snapshot_paths(run)
    final = run / CHECKPOINT_FILE

    def iteration(path: Path) -> int:  # the header only: the weights are loaded once, later
        return int(read_metadata(path)["counters"]["iteration"])

    if final.is_file() and (not found or iteration(final) > iteration(found[-1])):
        found.append(final)
    if not found:
        raise ValueError(f"{run} holds no snapshots/iteration_*.safetensors and no {CHECKPOINT_FILE} "
                         "(train with [train] snapshot_every > 0)")
    return found


def evaluate_snapshot(path: Path, episodes: int, seeds: list[int]) -> dict[str, Any]:
    """One snapshot on every seed: its counters and, per target, the values per seed and
    whether every seed met it."""
    agent, task, counters = load_agent(path)
    targets: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        result = evaluate(agent, task, episodes, seed, progress=False)
        for name, (value, bound, met) in one_shot_targets(result).items():
            entry = targets.setdefault(name, {"target": bound, "values": [], "met": True})
            entry["values"].append(value)
            entry["met"] = entry["met"] and met
    return {"snapshot": path.name, "iteration": int(counters["iteration"]),
            "episodes": int(counters["episodes"]),
            "env_steps": int(counters["episodes"]) * task.env.episode_steps,
            "wall_time_min": round(float(counters["wall_time_s"]) / 60, 2),
            "targets": targets, "all_met": all(t["met"] for t in targets.values())}


def first_times(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per target (and :data:`ALL`): the first row that met it (``first``) and the first row
    from which every later row met it too (``kept``); None where never."""
    names = list(rows[0]["targets"]) + [ALL] if rows else []

    def met(row: dict[str, Any], name: str) -> bool:
        return row["all_met"] if name == ALL else row["targets"][name]["met"]

    def point(row: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if row is None else {k: row[k] for k in ("iteration", "env_steps",
                                                             "wall_time_min")}

    out = {}
    for name in names:
        flags = [met(r, name) for r in rows]
        first = next((r for r, f in zip(rows, flags) if f), None)
        kept = None
        for i in range(len(rows) - 1, -1, -1):
            if not flags[i]:
                break
            kept = rows[i]
        out[name] = {"first": point(first), "kept": point(kept)}
    return out


def time_to_targets(run: Path, episodes: int, seeds: list[int], *,
                    progress: bool = True) -> dict[str, Any]:
    """Evaluate every snapshot of ``run`` on ``seeds`` (``episodes`` each).

    Returns {"run", "episodes", "seeds", "seed_kinds", "rows" (one per snapshot, training order),
    "times" (:func:`first_times`)}."""
    paths = snapshots(run)
    rows = [evaluate_snapshot(p, episodes, seeds)
            for p in tqdm(paths, desc="snapshots", disable=not progress)]
    return {"run": str(run), "episodes": episodes, "seeds": seeds,
            "seed_kinds": sorted({seed_kind(s) for s in seeds}), "rows": rows,
            "times": first_times(rows)}


def load_result(path: Path, episodes: int, seeds: list[int]) -> dict[str, Any]:
    """A result :func:`time_to_targets` wrote before (``LABEL.json`` of ``snn-icl
    time-to-targets``), to draw beside new ones without evaluating again. Raises ValueError if
    it is not such a result or was measured on other seeds or with another episode count (one
    figure compares like with like)."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable time-to-targets result ({err})") from None
    if not isinstance(result, dict) or not {"rows", "times", "seeds", "episodes"} <= set(result):
        raise ValueError(f"{path}: not a time-to-targets result (no rows, times, seeds, episodes)")
    if result["seeds"] != seeds or result["episodes"] != episodes:
        raise ValueError(f"{path}: measured on seeds {result['seeds']} with {result['episodes']} "
                         f"episodes, not seeds {seeds} with {episodes}")
    return result


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def markdown(result: dict[str, Any]) -> str:
    """The per-snapshot table and the time to each target."""
    rows = result["rows"]
    names = list(rows[0]["targets"])
    head = ["iteration", "env steps (M)", "wall time (min)"] + [
        f"{n} ({rows[0]['targets'][n]['target']})" for n in names] + ["all met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["iteration"]), f"{r['env_steps'] / 1e6:.2f}", f"{r['wall_time_min']:.1f}"]
        for n in names:
            t = r["targets"][n]
            cells.append(" / ".join(_fmt(v) for v in t["values"]) + ("" if t["met"] else " (missed)"))
        cells.append("yes" if r["all_met"] else "no")
        lines.append("| " + " | ".join(cells) + " |")
    seeds = ", ".join(str(s) for s in result["seeds"])
    lines += ["", f"Evaluation seeds {seeds} ({' and '.join(result['seed_kinds'])}), "
              f"{result['episodes']} episodes each; values per seed; a target is met when every "
              "seed meets it. Wall time is the run's own (its `wall_time_s` counter).", "",
              "| target | first met: iteration | env steps (M) | wall time (min) "
              "| met from then on: iteration | wall time (min) |", "|---|---|---|---|---|---|"]
    for name, t in result["times"].items():
        f, k = t["first"], t["kept"]
        first = (f"{f['iteration']} | {f['env_steps'] / 1e6:.2f} | {f['wall_time_min']}" if f
                 else "never | - | -")
        kept = f"{k['iteration']} | {k['wall_time_min']}" if k else "never | -"
        lines.append(f"| {name} | {first} | {kept} |")
    return "\n".join(lines) + "\n"

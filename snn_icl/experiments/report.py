"""The report of a sweep: every finished run evaluated on the same held-out episodes, summarised
per condition (task x setting) across training seeds, and the learning curves.

Per condition: the number of seeds, and for each one-shot measure (see
:mod:`snn_icl.episodes.measures`) and the training env steps the mean across seeds with a 95 %
confidence interval from the t distribution (``mean +- t_{0.975, n-1} * sd / sqrt(n)``; none for
one seed). A measure a run has no value for (e.g. a ratio when no trial ended) leaves that run
out of that measure's mean, and the table says how many entered it.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from snn_icl.config import seed_kind
from snn_icl.envs.family import supervised
from snn_icl.experiments.in_context_families import FAMILIES, family_of
from snn_icl.experiments.compare import steps_to_criterion, training_rows
from snn_icl.experiments.evaluate import evaluate
from snn_icl.experiments.sweep import SWEEP_FILE
from snn_icl.storage import files
from snn_icl.storage.checkpoint import load_agent, resolve
from snn_icl.storage.outputs import kind_of

MEASURES = [
    ("latency_trial1", "latency trial 1"),
    ("latency_trials2_4", "latency trials 2-4"),
    ("one_shot_ratio", "ratio trial 1 / 2-4"),
    ("no_memory_ratio", "ratio, state reset each trial"),
    ("probe_target_quadrant_fraction", "probe: time in target quadrant"),
    ("goals_per_episode", "goals per episode"),
    ("training_env_steps", "training env steps"),
    ("criterion_env_steps", "env steps to one-shot criterion"),
]
CURVES = ("goals_per_episode", "latency_trials2_4")
PANELS = (("goals_per_episode", "goals per episode"),
          ("latency_trials2_4", "median latency trials 2-4 (env steps)"))

DELAY_PANELS = (("latency_trial2", "median latency trial 2, after the delay"),
                ("rate_dark_hz", "mean rate in the dark delay (Hz)"))

def scheme(task: Any) -> dict[str, Any]:
    """What the report measures for the task's family: table columns, curve panels, x axis."""
    if supervised(task.env) is None:
        # training with silent delays: trial 2 follows the delay; the rate in the dark
        delays = DELAY_PANELS if any(task.train.dark_max_steps) else ()
        return {"family": "water_maze", "measures": MEASURES, "panels": PANELS + delays,
                "x_label": "training env steps"}
    fam = family_of(task)
    return {"family": task.env.family, "measures": fam.measures, "panels": fam.panels,
            "x_label": fam.x_label}


def _present(values: list[float | None]) -> list[float]:
    """The values that are not None or NaN, as floats."""
    return [float(x) for x in values if x is not None and not math.isnan(float(x))]


def mean_ci(values: list[float | None]) -> dict[str, Any]:
    """Mean and 95 % t-interval half-width of the values that are not None or NaN."""
    from scipy.stats import t

    v = _present(values)
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": None, "ci95": None}
    mean = sum(v) / n
    if n < 2:
        return {"n": n, "mean": mean, "ci95": None}
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    return {"n": n, "mean": mean, "ci95": float(t.ppf(0.975, n - 1) * sd / math.sqrt(n))}


def mean_interval(values: list[float | None]) -> tuple[float | None, list[float | None]]:
    """:func:`mean_ci` as (mean, [lo, hi]): the 95 % t-interval's ends, [None, None] with fewer
    than two values."""
    s = mean_ci(values)
    if s["mean"] is None or s["ci95"] is None:
        return s["mean"], [None, None]
    return s["mean"], [s["mean"] - s["ci95"], s["mean"] + s["ci95"]]


def difference_ci(a: list[float], b: list[float]) -> dict[str, Any]:
    """Mean of ``b`` minus mean of ``a`` with a Welch 95 % t-interval half-width (None with
    fewer than two values on a side)."""
    from scipy.stats import t

    a, b = _present(a), _present(b)
    if not a or not b:
        return {"difference": None, "ci95": None}
    diff = sum(b) / len(b) - sum(a) / len(a)
    if len(a) < 2 or len(b) < 2:
        return {"difference": diff, "ci95": None}
    va = sum((x - sum(a) / len(a)) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - sum(b) / len(b)) ** 2 for x in b) / (len(b) - 1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"difference": diff, "ci95": 0.0}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return {"difference": diff, "ci95": float(t.ppf(0.975, df) * se)}


def _run_measures(result: dict[str, Any], counters: dict[str, Any], task: Any,
                  history: list[dict[str, str]]) -> dict[str, Any]:
    """One water-maze run's row; ``history`` its training metrics rows (for the criterion: a run
    that never met it has None there and is left out of that measure's mean)."""
    episodes = counters.get("episodes")
    return {
        "latency_trial1": result["latency_by_trial"][0],
        "latency_trials2_4": result["latency_trials2_4"],
        "one_shot_ratio": result["one_shot_ratio"],
        "no_memory_ratio": result["control_no_memory"]["one_shot_ratio"],
        "probe_target_quadrant_fraction": result["probe_target_quadrant_fraction"],
        "goals_per_episode": result["goals_per_episode"],
        "training_env_steps": None if episodes is None else int(episodes) * task.env.episode_steps,
        "criterion_env_steps": steps_to_criterion(history, task.env,
                                                  result["optimal_latency_trials2_4"]),
    }


def _curve(run: Path, per_episode: int, keys: tuple[str, ...] = CURVES) -> dict[str, list[float]]:
    """A run's learning curves from metrics.csv; x ("env_steps") is the episodes counter times
    ``per_episode`` (env steps per episode; 1 for supervised families: tasks)."""
    path = run / "metrics.csv"
    if not path.is_file():
        return {}
    with path.open() as f:
        rows = list(csv.DictReader(f))
    out = {"env_steps": [float(r["episodes"]) * per_episode for r in rows]}
    for key in keys:
        out[key] = [float(r[key]) if r.get(key) not in (None, "") else math.nan for r in rows]
    return out


def aggregate_curves(curves: list[dict[str, list[float]]],
                     keys: tuple[str, ...] = CURVES) -> dict[str, Any]:
    """Mean, min and max across seeds at each x ("env_steps": env steps, or tasks for a
    supervised family) (NaN-aware; an x some runs did not reach uses the runs that did)."""
    curves = [c for c in curves if c.get("env_steps")]
    if not curves:
        return {"env_steps": []}
    steps = sorted({s for c in curves for s in c["env_steps"]})
    index = {s: i for i, s in enumerate(steps)}
    out: dict[str, Any] = {"env_steps": steps}
    for key in keys:
        table = np.full((len(curves), len(steps)), np.nan)
        for i, c in enumerate(curves):
            for s, v in zip(c["env_steps"], c[key]):
                table[i, index[s]] = v
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                stats = {"mean": np.nanmean(table, 0), "min": np.nanmin(table, 0),
                         "max": np.nanmax(table, 0)}
        out[key] = {k: [None if math.isnan(x) else float(x) for x in v] for k, v in stats.items()}
    return out


def _resolved_task(sweep_dir: Path, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The condition's resolved task (``OUT/TASK/SETTING/task.toml``) without its seed."""
    import tomllib

    path = sweep_dir / Path(entry["dir"]).parent / "task.toml"
    if not path.is_file():
        return None
    table = tomllib.loads(path.read_text())
    table.pop("seed", None)
    return table


def _entries(sweep_dirs: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every run entry of the sweeps, as (run directory, its sweep.json entry). A condition
    (task/setting) in several sweeps must be the same task in each, and a training seed of it
    listed twice is an error (it would count twice)."""
    entries, seen, first = [], {}, {}
    for sweep_dir in sweep_dirs:
        if not (sweep_dir / SWEEP_FILE).is_file() or kind_of(sweep_dir) not in ("sweep", None):
            raise ValueError(f"{sweep_dir} is not a sweep directory (no {SWEEP_FILE}); give the "
                             "--out of `snn-icl sweep`")
        for entry in files.read_json(sweep_dir / SWEEP_FILE)["runs"]:
            cond = f"{entry['task']}/{entry['setting']}"
            if (cond, entry["seed"]) in seen:
                raise ValueError(f"training seed {entry['seed']} of {cond} is in "
                                 f"{seen[cond, entry['seed']]} and in {sweep_dir}: a condition "
                                 "pooled across sweeps needs each seed once")
            seen[cond, entry["seed"]] = sweep_dir
            task = _resolved_task(sweep_dir, entry)
            where, other = first.setdefault(cond, (sweep_dir, task))
            if where != sweep_dir and other != task:
                raise ValueError(f"{cond} in {where} and in {sweep_dir} are different tasks "
                                 "(their task.toml differ): name them apart or report them apart")
            entries.append((sweep_dir / entry["dir"], entry))
    return entries


def report(sweep_dirs: str | Path | list[str | Path], episodes: int, seed: int, *,
           progress: bool = True) -> dict[str, Any]:
    """Evaluate every run of the sweep(s) whose status is "done" (frozen weights, the same
    ``episodes`` from ``seed`` for every run) and summarise per condition.

    A condition is a task name and setting; runs of the same condition in several sweeps (say,
    seeds 0-2 in one and 3-4 in another) are pooled as its training seeds.

    Returns ``{"sweep", "episodes", "seed", "rows", "runs", "curves", "skipped"}``: ``sweep``
    the directory (a list for several), ``rows`` one per condition (keys: condition, task,
    agent, setting, changes (``table.key`` -> value of the setting), n_seeds, and per measure
    ``MEASURE_mean``, ``MEASURE_ci95``, ``MEASURE_n``), ``runs`` each run's measures,
    ``curves`` the learning curves per condition, ``skipped`` the runs not evaluated and why.
    """
    from tqdm.auto import tqdm

    many = isinstance(sweep_dirs, (list, tuple))
    dirs = [Path(d) for d in sweep_dirs] if many else [Path(sweep_dirs)]
    conditions: dict[str, dict[str, Any]] = {}
    details: dict[str, dict[str, Any]] = {}  # supervised families: per-run curves and probes
    runs, skipped = [], []
    for run, entry in tqdm(_entries(dirs), desc="runs", disable=not progress):
        name = str(run) if len(dirs) > 1 else entry["dir"]
        cond = f"{entry['task']}/{entry['setting']}"
        status = files.read_json(run / "run.json").get("status") if (run / "run.json").is_file() else None
        if status != "done":
            skipped.append(f"{name} (status: {status or 'not started'})")
            continue
        checkpoint = resolve(run)
        agent, task, counters = load_agent(checkpoint)
        sch = scheme(task)
        if sch["family"] == "water_maze":
            result = evaluate(agent, task, episodes, seed, progress=False)
            history = training_rows(checkpoint, counters.get("iteration"))
            measures = _run_measures(result, counters, task, history)
        else:
            fam = family_of(task)
            result = fam.evaluate(agent, task, seed, n_tasks=episodes)
            measures = fam.run_measures(result, counters)
            if fam.loss_by_k:  # loss against k and the probes, pooled per condition
                details.setdefault(cond, {"loss_by_k": [], "probes": [], "references": None})
                details[cond]["loss_by_k"].append(result["loss_by_k"])
                details[cond]["probes"].append(result["probes"])
                details[cond]["references"] = result["references"]
        runs.append({"dir": name, "condition": cond, "seed": entry["seed"], **measures})
        c = conditions.setdefault(cond, {"task": task.name, "agent": task.agent.kind,
                                          "setting": entry["setting"],
                                          "changes": entry.get("changes", {}), "runs": [], "curves": [],
                                          "scheme": sch})
        c["runs"].append(measures)
        keys = tuple(k for k, _ in sch["panels"])
        c["curves"].append(_curve(run, task.env.episode_steps if sch["family"] == "water_maze"
                                  else 1, keys))
    rows, curves = [], {}
    for cond, c in conditions.items():
        sch = c["scheme"]
        row: dict[str, Any] = {"condition": cond, "task": c["task"], "agent": c["agent"],
                               "setting": c["setting"], "changes": c["changes"],
                               "family": sch["family"],
                               "n_seeds": len(c["runs"])}
        for key, _ in sch["measures"]:
            stats = mean_ci([r[key] for r in c["runs"]])
            row[f"{key}_mean"], row[f"{key}_ci95"], row[f"{key}_n"] = (
                stats["mean"], stats["ci95"], stats["n"])
        rows.append(row)
        curves[cond] = {**aggregate_curves(c["curves"], tuple(k for k, _ in sch["panels"])),
                        "panels": [list(p) for p in sch["panels"]], "x_label": sch["x_label"]}
    out = {"sweep": [str(d) for d in dirs] if many else str(dirs[0]), "episodes": episodes, "seed": seed,
           "seed_kind": seed_kind(seed), "rows": rows, "runs": runs, "curves": curves,
           "skipped": skipped}
    if details:
        out["in_context"] = {cond: _in_context_summary(d) for cond, d in details.items()}
        out["loss_differences"] = pairwise_differences(
            {c: conditions[c]["runs"] for c in details}, ("loss",))
    maze = {c: v["runs"] for c, v in conditions.items() if v["scheme"]["family"] == "water_maze"}
    if len(maze) > 1:
        out["differences"] = pairwise_differences(maze, DIFFERENCES)
    return out


DIFFERENCES = ("latency_trials2_4", "one_shot_ratio", "probe_target_quadrant_fraction")
"""The water-maze measures compared between every pair of conditions (Welch 95 % CI)."""


def pairwise_differences(runs: dict[str, list[dict[str, Any]]],
                         measures: tuple[str, ...]) -> list[dict[str, Any]]:
    """For each measure and each pair of conditions A, B (in order): mean of B - mean of A
    across their runs with a Welch 95 % CI (:func:`difference_ci`)."""
    names = list(runs)
    return [{"measure": m, "from": a, "to": b,
             **difference_ci([r[m] for r in runs[a]], [r[m] for r in runs[b]])}
            for m in measures for i, a in enumerate(names) for b in names[i + 1:]]


def differences_markdown(diffs: list[dict[str, Any]]) -> str:
    """The pairwise differences between conditions (:func:`pairwise_differences`), one table."""
    if not diffs:
        return ""
    labels = dict(MEASURES + [m for f in FAMILIES.values() for m in f.measures])
    lines = ["", "| measure | condition B - condition A | difference | 95 % CI (Welch) |",
             "|---|---|---|---|"]
    for d in diffs:
        ci = "n/a" if d["ci95"] is None else (f"{d['difference'] - d['ci95']:+.4f} to "
                                              f"{d['difference'] + d['ci95']:+.4f}")
        diff = "n/a" if d["difference"] is None else f"{d['difference']:+.4f}"
        lines.append(f"| {labels[d['measure']]} | {d['to']} - {d['from']} | {diff} | {ci} |")
    return "\n".join(lines) + "\n"


def _with_values(values: list[float | None]) -> dict[str, Any]:
    """:func:`mean_ci` and the values themselves (a figure draws them as dots: with 3 seeds the
    t-interval can reach past what the measure allows, e.g. an R^2 above 1)."""
    return {**mean_ci(values), "values": [None if v is None or math.isnan(v) else float(v)
                                          for v in values]}


def _in_context_summary(d: dict[str, Any]) -> dict[str, Any]:
    """Loss against k (mean and CI across seeds, with the references of the same tasks) and the
    probes' R^2 (mean, CI and each run's value, in the order of the runs) of one condition."""
    first = d["loss_by_k"][0]
    by_k = {"k": first["k"], "model": [mean_ci([run["model"][i] for run in d["loss_by_k"]])
                                       for i in range(len(first["k"]))]}
    for key in ("gd1", "least_squares", "least_squares_theory"):
        by_k[key] = first[key]  # the same tasks for every run
    probes = {f"{state}/{target}": _with_values([p[state][target] for p in d["probes"]])
              for state in d["probes"][0] for target in d["probes"][0][state]}
    return {"loss_by_k": by_k, "probes": probes, "references": d["references"]}


def _num(x: float | None) -> str:
    if x is None:
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:.0f}"
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.2g}"


def _measures_of(family: str) -> list[tuple[str, str]]:
    return MEASURES if family == "water_maze" else FAMILIES[family].measures


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Per condition: n seeds, then ``mean ± CI`` of each measure (95 % t; n/a for one seed);
    one table per task family."""
    families = list(dict.fromkeys(r.get("family", "water_maze") for r in rows)) or ["water_maze"]
    return "\n".join(_family_table([r for r in rows if r.get("family", "water_maze") == fam],
                                    _measures_of(fam)) for fam in families)


def _family_table(rows: list[dict[str, Any]], measures: list[tuple[str, str]]) -> str:
    head = ["condition", "agent", "n seeds", *(label for _, label in measures)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        cells = [row["condition"], row["agent"], str(row["n_seeds"])]
        for key, _ in measures:
            mean, ci, n = row[f"{key}_mean"], row[f"{key}_ci95"], row[f"{key}_n"]
            cell = _num(mean) if ci is None else f"{_num(mean)} ± {_num(ci)}"
            if mean is not None and n != row["n_seeds"]:
                cell += f" (n={n})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nmean ± 95 % confidence interval across training seeds (t distribution).\n"


def csv_table(rows: list[dict[str, Any]]) -> str:
    families = list(dict.fromkeys(r.get("family", "water_maze") for r in rows)) or ["water_maze"]
    measures = [m for fam in families for m in _measures_of(fam)]
    fields = ["condition", "task", "agent", "setting", "family", "n_seeds",
              *(f"{key}_{s}" for key, _ in measures for s in ("mean", "ci95", "n"))]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()

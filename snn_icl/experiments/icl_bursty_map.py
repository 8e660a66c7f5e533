"""Reddy (2023)'s data-dependence map of bursty classification: the held-out ICL and IWL
accuracies at the end of training against one parameter of the training sequences (classes K,
burstiness B, within-class noise eps, Zipf exponent alpha), mean and 95 % CI across training
seeds, read from the rows of sweep reports (``snn-icl report``, one row per condition)."""

from __future__ import annotations

from typing import Any

AXES = {"n_classes": "classes K", "burstiness": "burstiness B",
        "eps": "within-class noise eps", "alpha": "Zipf exponent alpha"}
"""The map's axes: [env] keys of the bursty family and their labels."""

MAP_MEASURES = ("icl_novel_accuracy", "icl_flip_accuracy", "iwl_accuracy")


def row_settings(row: dict[str, Any]) -> dict[str, str]:
    """A report row's swept settings, short key -> value as text: its ``changes`` (``table.key``
    -> value) where the report records them, else the ``key=value`` pairs of its setting name
    (reports written before the rows carried ``changes``)."""
    changes = row.get("changes")
    if changes is not None:
        return {k.rpartition(".")[2]: str(v) for k, v in changes.items()}
    pairs = [p.split("=", 1) for p in row.get("setting", "").split(",") if "=" in p]
    return {k.rpartition(".")[2]: v for k, v in pairs}


def map_points(rows: list[dict[str, Any]], axis: str) -> dict[str, list[dict[str, Any]]]:
    """Group (agent and the other swept settings) -> points along ``axis`` (an [env] key of
    :data:`AXES`), sorted by its value. A point: ``value``, ``n_seeds`` and, per measure of
    :data:`MAP_MEASURES`, ``MEASURE_mean`` and ``MEASURE_ci95`` (fractions of held-out
    sequences). Rows of other families, or without the axis among their settings, are left
    out; two rows at the same point of one group raise ValueError."""
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}; one of {', '.join(AXES)}")
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        settings = row_settings(row)
        if row.get("family") != "icl_bursty" or axis not in settings:
            continue
        value = float(settings.pop(axis))
        group = " ".join([row["agent"], *(f"{k}={v}" for k, v in sorted(settings.items()))])
        points = groups.setdefault(group, [])
        if any(p["value"] == value for p in points):
            raise ValueError(f"two conditions of {group} at {axis} = {value:g}")
        points.append({"value": value, "n_seeds": row["n_seeds"],
                       **{f"{m}_{s}": row.get(f"{m}_{s}") for m in MAP_MEASURES
                          for s in ("mean", "ci95")}})
    for points in groups.values():
        points.sort(key=lambda p: p["value"])
    return groups


def _cell(p: dict[str, Any], m: str) -> str:
    mean, ci = p[f"{m}_mean"], p[f"{m}_ci95"]
    if mean is None:
        return "-"
    return f"{mean:.3f}" if ci is None else f"{mean:.3f} ± {ci:.3f}"


def map_table(panels: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """Markdown: one line per point of every panel (axis -> :func:`map_points`)."""
    lines = ["| axis | group | value | n seeds | ICL, novel classes | ICL, flipped labels | "
             "IWL |", "|---|---|---|---|---|---|---|"]
    for axis, groups in panels.items():
        for group, points in groups.items():
            lines += [f"| {AXES[axis]} | {group} | {p['value']:g} | {p['n_seeds']} | "
                      + " | ".join(_cell(p, m) for m in MAP_MEASURES) + " |" for p in points]
    return "\n".join(lines) + "\n\nmean ± 95 % confidence interval across training seeds (t).\n"

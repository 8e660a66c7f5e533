"""``snn-icl analyze``: every memory analysis (:mod:`snn_icl.analysis`) on several checkpoints,
the same held-out episodes for each, written as ``analysis.json`` and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from snn_icl.storage import files

from snn_icl.viz import memory as memory_plots
from snn_icl.analysis.run import analyze_agent
from snn_icl.storage.checkpoint import display_names, load_agent, provenance, resolve


def analyze(sources: Sequence[str], out: Path, episodes: int = 64, seed: int = 1, *,
            progress: bool = True) -> dict[str, Any]:
    """Analyse each checkpoint ("pretrained[:kind]", a file or a run directory) on the same
    held-out episodes; write ``OUT/analysis.json`` and the figures. Returns the JSON content."""
    if not sources:
        raise ValueError("give at least one checkpoint to analyse")
    result: dict[str, Any] = {"episodes": episodes, "seed": seed, "agents": {}}
    data: dict[str, Any] = {}
    names = display_names(list(sources))
    for source, name in tqdm(list(zip(sources, names)), desc="agents", disable=not progress):
        path = resolve(source)
        agent, task, counters = load_agent(path)
        numbers, data[name] = analyze_agent(agent, task, episodes, seed, progress=progress)
        result["agents"][name] = {**provenance(path, task, counters), **numbers}
    result["versions"] = files.versions()
    out.mkdir(parents=True, exist_ok=True)
    result["figures"] = [p.name for p in memory_plots.write_all(result, data, out)]
    files.write_json(out / "analysis.json", result)
    return result

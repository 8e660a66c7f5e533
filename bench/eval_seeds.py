"""The one-shot targets of a checkpoint over many evaluation seeds: how robust a result is.

Each seed is a fresh set of held-out platforms and release points (``snn-icl evaluate --seed S``);
this runs ``snn-icl evaluate`` for each, writes its report to OUT/seedS.json, and prints every target per seed
and its range over the seeds, with the seeds that miss it.

    python bench/eval_seeds.py pretrained --seeds 0-20 --episodes 256 --out results/seeds
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from snn_icl.storage import files  # noqa: E402
from snn_icl.storage.checkpoint import load_agent, provenance, resolve  # noqa: E402
from snn_icl.experiments.evaluate import evaluate, one_shot_targets  # noqa: E402


def seed_range(text: str) -> list[int]:
    """'0-20' or '1,2,5' -> seeds."""
    if "-" in text:
        lo, hi = (int(v) for v in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="checkpoint, run directory or pretrained[:kind]")
    parser.add_argument("--seeds", type=seed_range, default=seed_range("0-20"))
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None, help="write OUT/seedS.json (optional)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = resolve(args.source)
    agent, task, counters = load_agent(path)
    print(f"{path}: {counters.get('iteration')} iterations; {args.episodes} episodes per seed")
    table: dict[str, list[tuple[int, float | None, bool]]] = {}
    for seed in tqdm(args.seeds, desc="seeds"):
        result = evaluate(agent, task, args.episodes, seed, progress=False)
        if args.out is not None:
            files.write_json(args.out / f"seed{seed}.json",
                          {**provenance(path, task, counters), **result, "versions": files.versions()})
        targets = one_shot_targets(result)
        tqdm.write(f"seed {seed:3d}: " + "; ".join(
            f"{name} {value:.3g} ({bound}{'' if met else ', MISSED'})"
            for name, (value, bound, met) in targets.items() if value is not None))
        for name, (value, _, met) in targets.items():
            table.setdefault(name, []).append((seed, value, met))
    print(f"\nover seeds {args.seeds[0]}-{args.seeds[-1]}:")
    for name, rows in table.items():
        values = [v for _, v, _ in rows if v is not None]
        missed = [s for s, _, met in rows if not met]
        print(f"  {name}: min {min(values):.3f}, mean {statistics.mean(values):.3f}, "
              f"max {max(values):.3f}; missed on seeds {missed or 'none'}")


if __name__ == "__main__":
    main()

"""The shipped LSNN's one-shot effect in Brian2 next to torch, and along the biology knobs.

1. Both simulators on the same held-out episodes (those of ``snn-icl evaluate --seed S -n N``,
   deterministic policy, float64 in both; torch float32, as evaluated elsewhere, alongside):
   median latency per trial with bootstrap 95 % bounds, trials 2-4, one-shot ratio, and how far
   the two simulators' spikes and swim paths agree.
2. Each biology knob of :class:`snn_icl.brian2.standalone.BiologyOptions` swept alone
   (:data:`snn_icl.brian2.export.DEFAULT_SWEEP`) on the same episodes.

Writes OUT/compare.{json,md}, OUT/sweep.{json,md} and OUT/sweep.png.

    OMP_NUM_THREADS=1 python bench/brian2_behaviour.py --episodes 128 --out brian2_results
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from snn_icl.storage import files  # noqa: E402

from snn_icl.viz import plots  # noqa: E402
from snn_icl.brian2.export import (compare_markdown, compare_simulators, evaluate_backend,  # noqa: E402
                                   plot_sweep, rollout_batches_backend, sweep_knobs, sweep_markdown)
from snn_icl.storage.checkpoint import load_agent, resolve  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="pretrained", help="LSNN checkpoint (default: shipped)")
    parser.add_argument("--episodes", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", default="cython", choices=("cython", "numpy"))
    parser.add_argument("--out", type=Path, default=Path("brian2_results"))
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    agent, task, _ = load_agent(resolve(args.source))

    t0 = time.perf_counter()
    sim32 = rollout_batches_backend(agent, task.env, args.episodes, args.seed, backend="torch",
                                    dtype=torch.float32, deterministic=task.eval.deterministic)
    torch32 = evaluate_backend(agent, task, args.episodes, args.seed, sim=sim32)
    result = compare_simulators(agent, task, args.episodes, args.seed, target=args.target)
    result = {"torch float32": torch32, "torch float64": result["torch"],
              "brian2 float64": result["brian2"], "agreement": result["agreement"]}
    files.write_json(args.out / "compare.json", {"source": args.source, "episodes": args.episodes,
                                              "seed": args.seed, **result, "versions": files.versions()})
    table = compare_markdown(result)
    files.write_text(args.out / "compare.md", table)
    print(table)
    print("agreement (torch float64 vs brian2):", result["agreement"])
    print(f"({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.skip_sweep:
        return

    t0 = time.perf_counter()
    rows = sweep_knobs(agent, task, args.episodes, args.seed, target=args.target, progress=True)
    files.write_json(args.out / "sweep.json", {"source": args.source, "episodes": args.episodes,
                                            "seed": args.seed, "rows": rows})
    files.write_text(args.out / "sweep.md", sweep_markdown(rows))
    plots.save(plot_sweep(rows), args.out / "sweep.png")
    print(sweep_markdown(rows))
    print(f"wrote {args.out}/compare.json, compare.md, sweep.json, sweep.md, sweep.png "
          f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

"""The shipped learning curves of bursty in-context classification (docs/icl_bursty.md): a table
of when novel-class ICL emerges, its peak and final value, and IWL, per run; and the figure of the
three held-out accuracies against training iterations. Reads the metrics.csv files copied into
snn_icl/pretrained/icl_bursty/ (no training needed).

    python bench/icl_bursty_curves.py            # table on stdout, curves.png next to the CSVs
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from snn_icl.experiments.icl_bursty import MEASURES, curve_summary  # noqa: E402

HERE = Path(__file__).resolve().parents[1] / "snn_icl" / "pretrained" / "icl_bursty"
LABELS = {"icl_novel_accuracy": "ICL, novel classes", "icl_flip_accuracy": "ICL, flipped labels",
          "iwl_accuracy": "IWL (query class not in context)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=HERE)
    args = parser.parse_args()
    csvs = sorted(args.dir.glob("*_metrics.csv"))
    print("| run | ICL >= 0.9 at iteration | rise from | novel ICL peak (it) / final | "
          "flip ICL final | IWL peak / final | tracked to |")
    print("|---|---|---|---|---|---|---|")
    for path in csvs:
        s = curve_summary(path)
        n, f, w = (s[k] for k in MEASURES)
        print(f"| {path.stem.removesuffix('_metrics')} | {s['icl_emergence_iteration'] or 'never'} | "
              f"{s['icl_rise_from'] or '-'} | {n['peak']:.3f} ({n['peak_iteration']}) / "
              f"{n['final']:.3f} | {f['final']:.3f} | {w['peak']:.3f} / {w['final']:.3f} | "
              f"{s['iterations']} |")
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
    import csv

    groups: dict[str, int] = {}  # one colour per condition, its seeds share it
    for path in csvs:
        with path.open() as fh:
            rows = [r for r in csv.DictReader(fh) if r.get(MEASURES[0])]
        x = [float(r["iteration"]) for r in rows]
        name = path.stem.removesuffix("_metrics")
        group = re.sub(r"_seed\d+$", "", name)
        first = group not in groups
        colour = plt.get_cmap("tab10")(groups.setdefault(group, len(groups)) % 10)
        for ax, key in zip(axes, MEASURES):
            ax.plot(x, [float(r[key]) for r in rows], lw=1.1, color=colour,
                    label=group if first else None)
    for ax, key in zip(axes, MEASURES):
        ax.set_title(LABELS[key], fontsize=10)
        ax.set_xlabel("training iteration (128 sequences each); seeds share a colour", fontsize=8)
        ax.axhline(1 / 32, color="grey", ls=":", lw=1)
    axes[0].set_ylabel("held-out accuracy (512 seqs)")
    axes[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(args.dir / "curves.png", dpi=110)
    print(f"wrote {args.dir / 'curves.png'}")


if __name__ == "__main__":
    main()

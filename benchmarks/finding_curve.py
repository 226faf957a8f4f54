"""Forget and learn ratios of SA Proj and MLP Gate&Up (relative to the whole LLM) against one knob of
the tiny model, e.g. the number of base skills or the hidden size: the curves of docs/tiny_default.md
("Hypotheses for the finding's size"). Each point is a table of benchmarks/default_finding.py
(`--table-out`: one row per seed and `mean`); the line joins the means (ratios of the mean
Learning / HeldOut_mean over seeds), the dots are the seeds.

    .venv/bin/python benchmarks/finding_curve.py --x-label "base skills" \\
        --point 4=benchmarks/reference/finding/default.csv \\
        --point 12=benchmarks/reference/finding/broad8.csv \\
        --point 20=benchmarks/reference/finding/broad16.csv --out docs/img/forget_vs_base_skills.png

Prints the plotted numbers; nothing is asserted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

RECIPES = {"sa_proj": "SA Proj", "mlp_gate_up": "MLP Gate&Up"}
GOAL_FORGET, GOAL_LEARN = 1 / 3, 0.7  # goals 4 and 3 of benchmarks/default_finding.py


def read_point(spec: str) -> tuple[float, pd.DataFrame]:
    x, sep, path = spec.partition("=")
    try:
        xv = float(x)
    except ValueError:
        xv = None
    if not sep or xv is None:
        sys.exit(f"--point {spec!r}: expected X=PATH with a number X, e.g. 256=wide.csv")
    if not Path(path).is_file():
        sys.exit(f"--point {spec!r}: no such file {path}")
    table = pd.read_csv(path, comment="#", index_col="seed")
    need = [f"{r}_{k}_ratio" for r in RECIPES for k in ("forget", "learn")]
    missing = [c for c in need if c not in table.columns]
    if missing or "mean" not in table.index:
        sys.exit(f"--point {spec!r}: {path} lacks {missing or 'the row mean'} "
                 "(write it with benchmarks/default_finding.py --table-out)")
    return xv, table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--point", action="append", required=True, help="X=PATH, one per point (at least two)")
    ap.add_argument("--x-label", required=True, help='what X is, e.g. "hidden size"')
    ap.add_argument("--out", type=Path, required=True, help="the plot (.png)")
    ap.add_argument("--log-x", action="store_true", help="a log2 x axis (for widths)")
    a = ap.parse_args()
    points = sorted(read_point(s) for s in a.point)
    if len(points) < 2:
        sys.exit("--point: a curve needs at least two points")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharex=True)
    xs = [x for x, _ in points]
    rows = []
    for ax, kind, goal in ((axes[0], "forget", GOAL_FORGET), (axes[1], "learn", GOAL_LEARN)):
        for (r, name), colour in zip(RECIPES.items(), ("tab:blue", "tab:orange")):
            col = f"{r}_{kind}_ratio"
            ax.plot(xs, [t.at["mean", col] for _, t in points], "-o", color=colour, label=f"{name} (mean)")
            for x, t in points:
                seeds = t.drop(index="mean")[col]
                ax.scatter([x] * len(seeds), seeds, s=12, color=colour, alpha=0.4)
        ax.axhline(goal, ls="--", color="grey", lw=1)
        ax.set_xlabel(a.x_label)
        ax.set_ylabel(f"{kind} ratio (vs whole LLM)")
        if a.log_x:
            ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
    axes[0].set_title("|HeldOut_mean| / llm's (goal ≤ 1/3)")
    axes[1].set_title("Learning / llm's (goal ≥ 0.7)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=120)
    for x, t in points:
        seeds = t.drop(index="mean")
        row = {a.x_label: f"{x:g}", "seeds": len(seeds)}
        for r in RECIPES:
            for kind in ("forget", "learn"):
                col = f"{r}_{kind}_ratio"
                row[col] = f"{t.at['mean', col]:.2f} ({', '.join('n/a' if pd.isna(v) else f'{v:.2f}' for v in seeds[col])})"
        rows.append(row)
    pd.set_option("display.width", 200)
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"plot written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

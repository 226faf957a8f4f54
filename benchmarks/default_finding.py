"""Does the embedded default show the study's finding? Runs the default config over several seeds
through the real workflow and prints, per seed and as mean ± std, the numbers the goal is stated in:

  1. base held-out mean >= 90 (exact match, the default's held-out skills)
  2. llm: every Learning_i >= 15 pp and its target score above chance; llm HeldOut_mean <= -15 pp
  3. sa_proj and mlp_gate_up: mean Learning >= 70 % of llm's
  4. ... and |HeldOut_mean| <= 1/3 of llm's
  5. 2-4 for the mean over seeds and in at least 2 seeds on their own

    .venv/bin/python benchmarks/default_finding.py                 # 3 seeds, ~25 min on 2 cores
    .venv/bin/python benchmarks/default_finding.py --seeds 0 1 2 --workdir /tmp/finding --time-make-run
    .venv/bin/python benchmarks/default_finding.py --overlay my_variant.yaml   # a variant of the default
    .venv/bin/python benchmarks/default_finding.py --overlay config/tiny_wide.yaml --table-out wide.csv

`--table-out` writes the printed table (one row per seed and `mean`) as CSV, the input of
benchmarks/finding_curve.py. Rerun with the same `--workdir` to rewrite it from finished runs
(Snakemake then has nothing to do).

`--time-make-run` also times one fresh single-seed run of the default (what `make run` does after
its install), in its own folder, side by side with the same machine load. Nothing is asserted:
the script prints what it measured.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RECIPES = ("sa_proj", "mlp_gate_up")


def snakemake(workdir: Path, *args: str, overlays: list[Path] = ()) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    cmd = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile"), "--directory", str(workdir),
           "--configfile", str(ROOT / "config/config.yaml"), *map(str, overlays), "--cores", "2", *args]
    t0 = time.time()
    p = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"snakemake failed ({p.returncode}):\n{(p.stdout + p.stderr)[-4000:]}")
    return time.time() - t0


def criteria(per_seed: pd.DataFrame, scores: pd.DataFrame, plan: dict) -> pd.DataFrame:
    """One row per seed (and `mean`): the numbers of goals 1-4 and whether each holds."""
    held, targets, seq = plan["held_out"], plan["stage_targets"], plan["sequence"]
    chance = plan["chance"]
    rows = {}
    seeds = sorted(per_seed.index.get_level_values("seed").unique())
    for key in seeds + ["mean"]:
        lf = per_seed.groupby(level="method").mean() if key == "mean" else per_seed.xs(key, level="seed")
        sc = scores if key == "mean" else scores[scores["seed"] == key]
        base = sc[(sc["stage"] == 0) & sc["benchmark"].isin(held)].groupby("benchmark")["score"].mean()
        llm = lf.loc["llm"]
        T = len(seq)
        target_after = [sc[(sc["method"] == "llm") & (sc["stage"] == i) & (sc["benchmark"] == targets[i - 1])]["score"].mean()
                        for i in range(1, T + 1)]
        row = {"base_heldout": base.mean(),
               "llm_min_Learning_i": min(llm[f"Learning_{i}"] for i in range(1, T + 1)),
               "llm_targets_above_chance": all(v > chance.get(t, 0) for v, t in zip(target_after, targets)),
               "llm_Learning": llm["Learning"], "llm_HeldOut_mean": llm["HeldOut_mean"]}
        for r in RECIPES:
            row[f"{r}_Learning"] = lf.loc[r, "Learning"]
            row[f"{r}_HeldOut_mean"] = lf.loc[r, "HeldOut_mean"]
            row[f"{r}_learn_ratio"] = lf.loc[r, "Learning"] / llm["Learning"]
            row[f"{r}_forget_ratio"] = abs(lf.loc[r, "HeldOut_mean"]) / abs(llm["HeldOut_mean"])
        row["1_base"] = row["base_heldout"] >= 90
        row["2_llm"] = row["llm_min_Learning_i"] >= 15 and row["llm_targets_above_chance"] and row["llm_HeldOut_mean"] <= -15
        row["3_learn"] = all(row[f"{r}_learn_ratio"] >= 0.7 for r in RECIPES)
        row["4_forget"] = all(row[f"{r}_forget_ratio"] <= 1 / 3 for r in RECIPES)
        rows[key] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workdir", type=Path, help="default: a new temporary folder")
    ap.add_argument("--time-make-run", action="store_true", help="also time one fresh single-seed default run")
    ap.add_argument("--overlay", type=Path, nargs="*", default=[],
                    help="config files merged over the default (a variant of it, e.g. other step counts)")
    ap.add_argument("--table-out", type=Path, help="also write the table (rows: seeds and mean) to this CSV")
    a = ap.parse_args()
    a.overlay = [p.resolve() for p in a.overlay]  # snakemake runs in the workdir
    for p in a.overlay:
        if not p.is_file():
            sys.exit(f"--overlay {p}: no such file")
    work = a.workdir or Path(tempfile.mkdtemp(prefix="lmmcl_finding_"))
    work.mkdir(parents=True, exist_ok=True)
    exp = "tiny_default_seeds"
    seeds = "[" + ",".join(map(str, a.seeds)) + "]"
    print(f"running the default config over seeds {a.seeds} in {work} ...", flush=True)
    seconds = snakemake(work, "--config", f"seeds={seeds}", f"experiment={exp}", overlays=a.overlay)
    res = work / "results" / exp
    from lmmcl.report.plan import normalize_plan

    plan = normalize_plan(yaml.safe_load((res / "report_plan.json").read_text()))
    per_seed = pd.read_csv(res / "tables/learning_forgetting_seeds.csv", index_col=["method", "seed"])
    scores = pd.read_csv(res / "scores.csv")
    table = criteria(per_seed, scores, plan)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 40)
    print(f"\n{len(a.seeds)} seeds, {seconds / 60:.1f} min; tables in {res / 'tables'}\n")
    print(table.T.to_string(float_format=lambda v: f"{v:+.1f}" if abs(v) >= 2 else f"{v:.2f}"))
    if a.table_out:
        a.table_out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(a.table_out, index_label="seed")
        print(f"table written to {a.table_out}")
    per = table.drop(index="mean")
    for goal in ("2_llm", "3_learn", "4_forget"):
        print(f"goal {goal}: mean {'holds' if table.at['mean', goal] else 'fails'}; "
              f"holds in {int(per[goal].sum())} of {len(per)} seeds")
    print(f"goal 1_base: holds in {int(per['1_base'].sum())} of {len(per)} seeds "
          f"(base held-out mean {table.at['mean', 'base_heldout']:.1f})")
    if a.time_make_run:
        single = work / "single"
        single.mkdir(exist_ok=True)
        s = snakemake(single, overlays=a.overlay)
        print(f"\none fresh single-seed default run (snakemake --cores 2, data to tables): {s / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

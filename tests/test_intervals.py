"""The 95 % intervals of the report (lmmcl.report.intervals): the bootstrap against reference
intervals on fixed data, its coverage on simulated paired data, zero width for identical answers,
the items behind each interval, several seeds, the config key and byte-identical tables."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from lmmcl.layout import Layout
from lmmcl.report import intervals as I
from lmmcl.report import metrics
from lmmcl.report.aggregate import write_report
from lmmcl.report.scores import collect_scores
from lmmcl.report.summary import summary_per_seed

ROOT = Path(__file__).resolve().parents[1]
Z = NormalDist().inv_cdf(0.975)


# --------------------------------------------------------------------------- references
def test_t_quantile_and_wilson_against_references():
    # Student t 0.975 quantiles (any table) and, for real-valued df, mpmath's incomplete beta
    for df, ref in ((1, 12.706204736), (2, 4.302652730), (10, 2.228138852), (30, 2.042272456)):
        assert I.t_quantile(0.975, df) == pytest.approx(ref, abs=1e-8)
    assert I.t_quantile(0.975, math.inf) == pytest.approx(Z, abs=1e-12)
    mp = pytest.importorskip("mpmath")
    for df in (2.5, 7.3):
        cdf = lambda t: 1 - mp.betainc(df / 2, 0.5, 0, df / (df + t * t), regularized=True) / 2  # noqa: E731
        assert float(cdf(I.t_quantile(0.975, df))) == pytest.approx(0.975, abs=1e-10)
    # Wilson (1927) score interval: 90/100 -> [82.56, 94.48] %, and sensible at 0 % and 100 %
    lo, hi = I.wilson_interval([90, 0, 100], [100, 100, 100])
    assert lo == pytest.approx([82.564, 0.0, 96.301], abs=1e-3)
    assert hi == pytest.approx([94.477, 3.699, 100.0], abs=1e-3)


def paired_binary(n, seed, p0=0.6, keep=0.9, fix=0.45):
    """Base and stage 0/1 answers of n items: a right answer stays right with `keep`, a wrong one
    becomes right with `fix`; the true difference is (p0·keep + (1−p0)·fix − p0) × 100 pp."""
    rng = np.random.default_rng(seed)
    base = (rng.random(n) < p0).astype(float)
    u = rng.random(n)
    return base, np.where(base == 1, u < keep, u < fix).astype(float)


def test_bootstrap_agrees_with_the_normal_interval_on_fixed_paired_binary_data():
    """On 400 fixed paired items the percentile interval of the paired difference (and of one
    accuracy) matches the normal interval mean ± 1.96 · sd/√n with the plug-in sd, to 0.5 pp."""
    base, stage = paired_binary(400, seed=7)
    V, point = I.bootstrap_means(np.column_stack([base, stage]), 4000, np.random.default_rng(0))
    assert point == pytest.approx([base.mean() * 100, stage.mean() * 100])
    d = (stage - base) * 100
    ref = d.mean() + np.array([-Z, Z]) * d.std() / math.sqrt(len(d))
    lo, hi = I.percentile_interval(V[:, 1] - V[:, 0])
    assert (lo, hi) == pytest.approx(tuple(ref), abs=0.5)
    assert np.std(V[:, 1] - V[:, 0]) == pytest.approx(d.std() / math.sqrt(len(d)), rel=0.05)
    p = stage.mean()
    wald = 100 * (p + np.array([-Z, Z]) * math.sqrt(p * (1 - p) / len(stage)))
    assert I.percentile_interval(V[:, 1]) == pytest.approx(tuple(wald), abs=0.5)
    # paired beats two independent intervals: the difference's interval is narrower than either
    # accuracy's interval combined in quadrature
    half_indep = Z * math.hypot(np.std(V[:, 0]), np.std(V[:, 1]))
    assert (hi - lo) / 2 < 0.8 * half_indep


def test_paired_interval_covers_the_true_difference_95_percent_of_the_time():
    """1 000 simulated paired data sets of 100 items with a known difference (+12 pp): the
    percentile interval covers it 92-98 % of the time."""
    true = (0.6 * 0.9 + 0.4 * 0.45 - 0.6) * 100
    hits = 0
    for k in range(1000):
        base, stage = paired_binary(100, seed=10_000 + k)
        V, _ = I.bootstrap_means(np.column_stack([base, stage]), 1000, np.random.default_rng(k))
        lo, hi = I.percentile_interval(V[:, 1] - V[:, 0])
        hits += lo <= true <= hi
    assert 0.92 <= hits / 1000 <= 0.98, hits


def test_items_and_seeds_interval_covers_95_percent_where_items_alone_do_not():
    """Three seeds fine-tune the same base (shared base answers) with a random seed effect on top of
    the item noise: the Welch-Satterthwaite interval of the seed mean covers the true difference
    92-98 % of 1 000 simulations; the items-only interval, blind to the seed effect, covers less."""
    phi = NormalDist().cdf
    sigma, n = 0.15, 100
    true = (phi(1.05 / math.sqrt(2 + sigma ** 2)) - phi(0.25 / math.sqrt(2))) * 100  # E over items and seeds
    rng = np.random.default_rng(3)
    hits = hits_items = 0
    for k in range(1000):
        z = rng.standard_normal(n)
        cols = [(z + rng.standard_normal(n) > -0.25).astype(float)]
        cols += [(z + 0.8 + rng.normal(0, sigma) + rng.standard_normal(n) > -0.25).astype(float) for _ in range(3)]
        V, point = I.bootstrap_means(np.column_stack(cols), 500, np.random.default_rng(k))
        r = I._combine((V[:, 1:] - V[:, :1])[..., None], (point[1:] - point[0])[:, None])
        hits += r["lo"][0] <= true <= r["hi"][0]
        hits_items += r["items_lo"][0] <= true <= r["items_hi"][0]
    assert 0.92 <= hits / 1000 <= 0.98, hits
    assert hits_items < hits


def test_metric_arrays_are_the_metrics_of_lmmcl_report_metrics():
    rows = {0: [20.0, 30.0, 10.0, 60.0, 50.0], 1: [70.0, 32.0, 12.0, 58.0, 47.0],
            2: [85.0, math.nan, 11.0, 55.0, 49.0], 3: [65.0, 75.0, 90.0, 50.0, math.nan]}
    R = pd.DataFrame.from_dict(rows, orient="index", columns=["A", "B", "C", "H1", "H2"])
    want = metrics.summary(R, ["A", "B", "C"], ["H1", "H2"])
    got = I.metric_arrays(R.to_numpy()[None], [0, 1, 2], [3, 4])
    assert list(got) == list(want)
    for k, v in want.items():
        assert float(got[k][0]) == pytest.approx(v, nan_ok=True), k


# --------------------------------------------------------------------------- a report with items
BENCH = ["T1", "T2", "H1", "H2"]
N_ITEMS = 60


def plan_of(**kw):
    return {"experiment": "ci", "methods": ["a", "b", "c"], "sequence": ["T1", "T2"], "held_out": ["H1", "H2"],
            "chance": {b: 25.0 for b in BENCH}, "seeds": [0], "intervals": {"resamples": 500}, **kw}


def answers(seed: int) -> dict:
    """{(method, stage): {benchmark: 0/1 per item}}; `b` answers exactly as `a`, `c` as the base."""
    rng = np.random.default_rng(seed)
    base = {b: (rng.random(N_ITEMS) < (0.2 if b.startswith("T") else 0.8)).astype(float) for b in BENCH}
    out = {("base", 0): base}
    prev = base
    for k, t in enumerate(["T1", "T2"], start=1):
        cur = {}
        for b in BENCH:
            u = rng.random(N_ITEMS)
            if b == t:
                cur[b] = np.where(prev[b] == 1, 1.0, (u < 0.8).astype(float))    # learns its target
            else:
                cur[b] = np.where(prev[b] == 1, (u < 0.85).astype(float), 0.0)  # forgets a little
        out[("a", k)] = out[("b", k)] = cur
        out[("c", k)] = base
        prev = cur
    return out


def write_tree(root: Path, seed: int = 0, data_seed: int = 0, exp: str = "ci", drop=None, with_item=True):
    """Evaluation JSONs + samples files (lmmcl.layout) of `answers(data_seed)` for run `seed`.
    `drop`: {(method, stage, benchmark): number of last items left out of that samples file}."""
    lay = Layout(exp, root=root)
    seq = ["T1", "T2"]
    for (m, k), by_bench in answers(data_seed).items():
        methods = ["a"] if m == "base" else [m]
        d = Path(lay.eval_dir(seed, methods[0], k, seq[k - 1] if k else None))
        d.mkdir(parents=True, exist_ok=True)
        for b, vals in by_bench.items():
            keep = N_ITEMS - (drop or {}).get((m, k, b), 0)
            rows = [{"doc_id": i, "id": f"{b}_{i:03d}", **({"item": f"{b}_{i:03d}"} if with_item else {}),
                     "response": "x", "score": float(v)} for i, v in enumerate(vals[:keep])]
            (d / f"{b}.samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            (d / f"{b}.json").write_text(json.dumps({"benchmark": b, "metric": "acc", "n": keep,
                                                     "score": float(np.mean(vals[:keep]) * 100)}))
    return root


def intervals_of(root, plan):
    scores = collect_scores(root, plan)
    per_seed = summary_per_seed(scores, plan)
    return I.compute_intervals(scores, per_seed, plan, I.collect_items(root, plan, scores)), per_seed


def test_report_intervals_identical_answers_and_comparisons(tmp_path):
    root = write_tree(tmp_path)
    plan = plan_of()
    write_report(root, plan)
    tables = root / "ci" / "tables"
    lf = pd.read_csv(tables / "learning_forgetting.csv", index_col="method")
    ci = pd.read_csv(tables / "learning_forgetting_ci.csv")
    assert list(ci.columns) == I.SUMMARY_CI_COLUMNS and len(ci) == 3 * len(metrics.summary_columns(2))
    for r in ci.itertuples():
        assert r.estimate == pytest.approx(lf.loc[r.method, r.metric], abs=1e-4, nan_ok=True)
        assert r.lo <= r.estimate + 1e-9 and r.estimate <= r.hi + 1e-9, r
    a = ci.set_index(["method", "metric"])
    assert a.loc[("a", "Learning"), "interval"] == I.BOOTSTRAP and a.loc[("a", "Learning"), "lo"] > 0
    # `c` answers as the base everywhere: every change is exactly 0, with a zero-width interval
    for metric in ("Learning_1", "Learning", "HeldOut_mean", "BWT", "MaxForgetting"):
        assert (a.loc[("c", metric), "lo"], a.loc[("c", metric), "hi"]) == (0.0, 0.0)
        assert bool(a.loc[("c", metric), "contains_zero"])
    d = pd.read_csv(tables / "deltas_c_ci.csv")
    assert list(d.columns) == I.DELTA_CI_COLUMNS and (d["lo"] == 0).all() and (d["hi"] == 0).all()
    assert (d["paired_items"] == N_ITEMS).all()
    # `b` answers as `a`: their paired difference is 0 with a zero-width interval
    comp = pd.read_csv(tables / "comparisons.csv").set_index(["method_a", "method_b", "metric"])
    assert list(comp.reset_index().columns) == I.COMPARISON_COLUMNS
    for metric in I.COMPARED:
        assert tuple(comp.loc[("a", "b", metric), ["difference", "lo", "hi"]]) == (0.0, 0.0, 0.0)
    assert comp.loc[("a", "c", "Learning"), "lo"] > 0                      # a learns more than c
    assert comp.loc[("a", "c", "HeldOut_mean"), "hi"] < 0                  # ... and forgets more
    md = (tables / "comparisons.md").read_text()
    assert "| a − b | 0.0 † |" in md and "no difference shown" in md
    assert "| a − c |" in md and "a learns more and forgets more than c" in md
    # R cells of 0/1 items: Wilson, from the items
    r = pd.read_csv(tables / "R_a_ci.csv")
    assert list(r.columns) == I.CELL_CI_COLUMNS and (r["interval"] == I.WILSON).all() and (r["items"] == N_ITEMS).all()
    row = r[(r["stage"] == 1) & (r["benchmark"] == "T1")].iloc[0]
    k = answers(0)[("a", 1)]["T1"].sum()
    assert (row["lo"], row["hi"]) == pytest.approx(tuple(float(x) for x in I.wilson_interval(k, N_ITEMS)), abs=1e-4)
    # the tables mark what contains 0 and say how the intervals are computed
    lf_md = (tables / "learning_forgetting.md").read_text()
    results = lf_md.split("## Results")[1].split("## 95 % intervals")[0]
    c_row = next(line for line in results.splitlines() if line.startswith("| c |"))
    assert c_row.count("†") == len(metrics.summary_columns(2))
    assert "paired bootstrap, 500 resamples" in lf_md and "Wilson" in lf_md
    assert "$^\\dagger$" in (tables / "learning_forgetting.tex").read_text()
    assert "## 95 % intervals (pp)" in (tables / "deltas_c.md").read_text()
    assert "0.0 †" in (tables / "deltas_c.md").read_text()
    items = pd.read_csv(tables / "items.csv")
    assert (items["status"] == "ok").all() and (items["paired_with_base"] == N_ITEMS).all()
    pareto = pd.read_csv(tables / "pareto.csv", index_col=0)
    assert pareto.loc["a", "Learning_lo"] == a.loc[("a", "Learning"), "lo"]
    assert "Learning 95 % interval" in (tables / "pareto.md").read_text()
    # the table across experiments carries each experiment's intervals
    from lmmcl.report.across import INTERVAL_COLUMNS, write_across

    csv_p, md_p, _, _ = write_across([root / "ci"], tmp_path / "across")
    across = pd.read_csv(csv_p, index_col=[0, 1])
    assert list(across.columns[-len(INTERVAL_COLUMNS):]) == INTERVAL_COLUMNS
    assert across.loc[("ci", "a"), "Learning_lo"] == a.loc[("a", "Learning"), "lo"]
    assert "| ci / c | n/a | 2 | 0.0 † | 0.0 † |" in md_p.read_text()


def test_items_missing_on_one_side_mismatches_and_older_samples_are_reported(tmp_path):
    """Items one side lacks are counted in items.csv (the interval still stands, pairing the shared
    ones); an evaluation whose items do not reproduce its score gets no interval, nor does any
    number that uses it; samples files without `item` pair on the doc's `id`."""
    root = write_tree(tmp_path, drop={("a", 1, "H1"): 5}, with_item=False)
    d = Path(Layout("ci", root=root).eval_dir(0, "c", 2, "T2"))
    rec = json.loads((d / "T2.json").read_text())
    (d / "T2.json").write_text(json.dumps({**rec, "score": rec["score"] + 10}))   # not the items' mean
    d = Path(Layout("ci", root=root).eval_dir(0, "b", 1, "T1"))
    first = (d / "H2.samples.jsonl").read_text().splitlines()[0]
    (d / "H2.samples.jsonl").write_text((d / "H2.samples.jsonl").read_text() + first + "\n")  # an id twice
    ci, _ = intervals_of(root, plan_of())
    st = ci.items.set_index(["method", "stage", "benchmark"])
    assert tuple(st.loc[("a", 1, "H1"), ["status", "items", "paired_with_base", "only_in_base"]]) == ("ok", 55, 55, 5)
    assert st.loc[("c", 2, "T2"), "status"].startswith("item mean")
    assert st.loc[("b", 1, "H2"), "status"] == "duplicate item ids"
    assert (st["status"] == "ok").sum() == len(st) - 2
    s = ci.summary.set_index(["method", "metric"])
    assert s.loc[("a", "HeldOut_1"), "interval"] == I.BOOTSTRAP                # 55 paired items of 60
    for metric in ("Learning_2", "Learning"):                                  # use R[2][T2] of c
        assert math.isnan(s.loc[("c", metric), "lo"]) and "do not reproduce" in s.loc[("c", metric), "interval"]
    assert s.loc[("c", "Learning_1"), "interval"] == I.BOOTSTRAP
    for metric in ("HeldOut_1", "HeldOut_mean"):                               # use H2 of b's stage 1
        assert math.isnan(s.loc[("b", metric), "lo"])
    assert s.loc[("b", "HeldOut_2"), "interval"] == I.BOOTSTRAP
    cells = ci.cells["c"].set_index(["stage", "benchmark"])
    assert math.isnan(cells.loc[(2, "T2"), "lo"]) and cells.loc[(1, "T2"), "interval"] == I.WILSON
    from lmmcl.report.interval_tables import items_line

    assert items_line(ci) == ("Items: 2 of 28 evaluations give no usable per-item scores; 1 have items their base "
                              "lacks or lack items of their base (tables/items.csv).")


def test_two_seeds_give_the_seed_spread_and_an_items_and_seeds_interval(tmp_path):
    write_tree(tmp_path, seed=0, data_seed=0)
    write_tree(tmp_path, seed=1, data_seed=1)
    plan = plan_of(seeds=[0, 1])
    ci, per_seed = intervals_of(tmp_path, plan)
    s = ci.summary.set_index(["method", "metric"])
    row = s.loc[("a", "Learning")]
    runs = per_seed.xs("a", level="method")["Learning"]
    assert row["interval"] == I.COMBINED and row["seeds"] == 2
    assert row["estimate"] == pytest.approx(runs.mean()) and row["seed_std"] == pytest.approx(runs.std(ddof=1))
    assert row["lo"] < row["estimate"] < row["hi"]
    assert row["hi"] - row["lo"] > row["items_hi"] - row["items_lo"]             # seeds widen it
    assert (s.loc[("c", "Learning"), "lo"], s.loc[("c", "Learning"), "hi"]) == (0.0, 0.0)
    seeds = ci.per_seed
    assert len(seeds) == 2 * 3 * len(metrics.summary_columns(2)) and set(seeds["seed"]) == {0, 1}
    one = seeds[(seeds["method"] == "a") & (seeds["metric"] == "Learning")].set_index("seed")
    assert one.loc[1, "estimate"] == pytest.approx(runs[1]) and one.loc[1, "interval"] == I.BOOTSTRAP
    assert ci.cells["a"]["interval"].eq(I.COMBINED).any()
    from lmmcl.report.interval_tables import describe

    assert "With 2 seeds" in describe(ci) and "Welch-Satterthwaite" in describe(ci)


def test_resamples_is_a_config_key_and_zero_turns_the_intervals_off(tmp_path):
    from lmmcl.config import Plan, load_configfiles
    from lmmcl.report.aggregate import intervals_of as report_intervals
    from lmmcl.report.interval_tables import summary_section
    from lmmcl.report.plan import normalize_plan

    assert Plan(load_configfiles([str(ROOT / "config/config.yaml")])).report_plan()["intervals"] == {"resamples": 2000}
    bad = tmp_path / "bad.yaml"
    bad.write_text("intervals: {resamples: -1}\n")
    with pytest.raises(ValueError, match="resamples"):
        load_configfiles([str(ROOT / "config/config.yaml"), str(bad)])
    with pytest.raises(ValueError, match="resamples"):
        normalize_plan(plan_of(intervals={"resamples": 1.5}))
    root = write_tree(tmp_path)
    plan = normalize_plan(plan_of(intervals={"resamples": 0}))
    scores = collect_scores(root, plan)
    ci = report_intervals(root, scores, summary_per_seed(scores, plan), plan)
    assert not ci.available and ci.summary["lo"].isna().all()
    assert (ci.summary["interval"] == "n/a: intervals off: intervals.resamples is 0").all()
    assert "95 % intervals: n/a (intervals off: intervals.resamples is 0)." in summary_section(ci, ["a"], ["Learning"])


def test_tables_are_the_same_bytes_in_another_process_with_other_cpu_dispatch(tmp_path):
    """Seeded resampling and integer sums: another process with one BLAS thread and NumPy's
    AVX-512 kernels switched off (as on another CPU, tests/test_reproducibility.py) writes every
    table byte for byte."""
    import shutil

    plan = plan_of(intervals={"resamples": 300})
    write_report(write_tree(tmp_path / "one"), plan)
    shutil.copytree(tmp_path / "one" / "ci" / "seed0", tmp_path / "two" / "ci" / "seed0")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NPY_DISABLE_CPU_FEATURES": "X86_V4,AVX512_ICL,AVX512_SPR", "MPLBACKEND": "Agg"}
    code = ("import json, sys; from lmmcl.report.aggregate import write_report; "
            "write_report(sys.argv[1], json.loads(sys.argv[2]))")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "two"), json.dumps(plan)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    one, two = (sorted((tmp_path / r / "ci" / "tables").iterdir()) for r in ("one", "two"))
    assert [f.name for f in one] == [f.name for f in two] and any(f.name.endswith("_ci.csv") for f in one)
    assert [f.name for f in one if f.read_bytes() != (tmp_path / "two" / "ci" / "tables" / f.name).read_bytes()] == []

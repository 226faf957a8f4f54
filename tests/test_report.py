"""Tests of lmmcl.report: metric formulas, NaN handling, tables, plots, the full report."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

from lmmcl.report import metrics
from lmmcl.report.aggregate import report_outputs, write_report
from lmmcl.report.plan import normalize_plan, stage_labels
from lmmcl.report.scores import MISSING_METRIC, SCORE_COLUMNS, collect_scores, n_eval_files, r_matrix
from lmmcl.report.summary import format_summary, pareto_table, summary_per_seed, summary_std, summary_table
from lmmcl.report.tables import NA, fmt, markdown_table

NAN = float("nan")
TARGETS = ["A", "B", "C"]  # t_1, t_2, t_3
HELD = ["H1", "H2"]


def hand_R() -> pd.DataFrame:
    """3-stage R matrix; A *rises* after its stage (70 -> 85) before dropping to 65."""
    rows = {
        #     A     B     C     H1    H2
        0: [20.0, 30.0, 10.0, 60.0, 50.0],
        1: [70.0, 32.0, 12.0, 58.0, 47.0],
        2: [85.0, 80.0, 11.0, 55.0, 49.0],
        3: [65.0, 75.0, 90.0, 50.0, 40.0],
    }
    R = pd.DataFrame.from_dict(rows, orient="index", columns=TARGETS + HELD)
    R.index.name = "stage"
    return R


def approx(x):
    return pytest.approx(x, abs=1e-9)


# --------------------------------------------------------------------------- formulas
def test_learning_per_stage_hand():
    L = metrics.learning_per_stage(hand_R(), TARGETS)
    # L1 = 70-20 = 50; L2 = 80-30 = 50; L3 = 90-10 = 80
    assert list(L.index) == [1, 2, 3]
    assert L.tolist() == approx([50.0, 50.0, 80.0])


def test_heldout_per_stage_hand():
    H = metrics.heldout_per_stage(hand_R(), HELD)
    # H1 = ((58-60) + (47-50))/2 = (-2-3)/2 = -2.5
    # H2 = ((55-60) + (49-50))/2 = (-5-1)/2 = -3.0
    # H3 = ((50-60) + (40-50))/2 = (-10-10)/2 = -10.0
    assert H.tolist() == approx([-2.5, -3.0, -10.0])


def test_bwt_and_max_forgetting_differ_when_score_rises_after_learning():
    R = hand_R()
    # BWT: i=1: R3[A]-R1[A] = 65-70 = -5 ; i=2: R3[B]-R2[B] = 75-80 = -5 ; mean = -5
    assert metrics.bwt(R, TARGETS) == approx(-5.0)
    assert metrics.bwt_per_stage(R, TARGETS).tolist() == approx([-5.0, -5.0])
    # MaxF: i=1: max(R1[A], R2[A]) - R3[A] = max(70, 85) - 65 = 20
    #       i=2: max(R2[B]) - R3[B] = 80 - 75 = 5 ; mean = (20+5)/2 = 12.5
    assert metrics.max_forgetting(R, TARGETS) == approx(12.5)
    assert metrics.max_forgetting_per_stage(R, TARGETS).tolist() == approx([20.0, 5.0])
    # -BWT would be 5, Chaudhry counts the post-learning peak of A
    assert metrics.max_forgetting(R, TARGETS) != approx(-metrics.bwt(R, TARGETS))


def test_max_forgetting_window_excludes_last_stage():
    # B improves in the last stage: R2[B] = 80 -> R3[B] = 85.  Max over l = 2..T-1 = {2}
    # gives f_2 = 80 - 85 = -5 (negative forgetting); a window including T would clip it to 0.
    R = hand_R()
    R.loc[3, "B"] = 85.0
    assert metrics.max_forgetting_per_stage(R, TARGETS).tolist() == approx([20.0, -5.0])
    assert metrics.max_forgetting(R, TARGETS) == approx(7.5)  # (20-5)/2
    assert metrics.bwt(R, TARGETS) == approx(0.0)  # ((65-70) + (85-80))/2


def test_summary_hand():
    s = metrics.summary(hand_R(), TARGETS, HELD)
    assert list(s) == metrics.summary_columns(3)
    assert list(s) == [
        "Learning_1", "Learning_2", "Learning_3", "Learning",
        "HeldOut_1", "HeldOut_2", "HeldOut_3", "HeldOut_final", "HeldOut_mean",
        "BWT", "MaxForgetting",
    ]
    expected = {
        "Learning_1": 50.0, "Learning_2": 50.0, "Learning_3": 80.0,
        "Learning": 60.0,  # (50+50+80)/3
        "HeldOut_1": -2.5, "HeldOut_2": -3.0, "HeldOut_3": -10.0,
        "HeldOut_final": -10.0,  # = HeldOut_3
        "HeldOut_mean": -15.5 / 3,  # (-2.5-3-10)/3 = -5.1667
        "BWT": -5.0,
        "MaxForgetting": 12.5,
    }
    for k, v in expected.items():
        assert s[k] == approx(v), k


def test_definitions_cover_summary_metrics():
    keys = set(metrics.DEFINITIONS)
    assert {"Learning_i", "HeldOut_i", *metrics.SUMMARY_SCALARS} <= keys
    assert all(isinstance(v, str) and "=" in v for v in metrics.DEFINITIONS.values())


def test_single_stage_has_no_bwt():
    R = hand_R().loc[[0, 1]]
    assert math.isnan(metrics.bwt(R, ["A"]))
    assert math.isnan(metrics.max_forgetting(R, ["A"]))
    assert metrics.summary(R, ["A"], HELD)["Learning"] == approx(50.0)


def test_metrics_do_not_modify_input_and_reject_bad_index():
    R = hand_R()
    before = R.copy()
    metrics.summary(R, TARGETS, HELD)
    pd.testing.assert_frame_equal(R, before)
    with pytest.raises(TypeError):
        metrics.learning_per_stage(R.set_axis(["a", "b", "c", "d"]), TARGETS)
    with pytest.raises(ValueError):  # R has stage 3 but only 2 targets
        metrics.learning_per_stage(R, TARGETS[:2])


# --------------------------------------------------------------------------- NaN handling
def test_missing_target_cell_only_kills_its_learning():
    R = hand_R()
    R.loc[2, "B"] = NAN
    L = metrics.learning_per_stage(R, TARGETS)
    assert L[1] == approx(50.0) and math.isnan(L[2]) and L[3] == approx(80.0)
    s = metrics.summary(R, TARGETS, HELD)
    assert s["Learning"] == approx(65.0)  # nan-aware: (50+80)/2
    assert s["BWT"] == approx(-5.0)  # only i=1 remains: 65-70
    assert s["MaxForgetting"] == approx(20.0)  # only i=1 remains: max(70,85)-65
    missing_base = hand_R()
    missing_base.loc[0, "C"] = NAN
    assert math.isnan(metrics.learning_per_stage(missing_base, TARGETS)[3])


def test_missing_heldout_cell_is_skipped_and_all_missing_is_nan():
    R = hand_R()
    R.loc[1, "H2"] = NAN
    H = metrics.heldout_per_stage(R, HELD)
    assert H[1] == approx(-2.0)  # only H1: 58-60
    assert H[2] == approx(-3.0)
    R.loc[1, "H1"] = NAN
    H = metrics.heldout_per_stage(R, HELD)
    assert math.isnan(H[1]) and H[3] == approx(-10.0)
    s = metrics.summary(R, TARGETS, HELD)
    assert s["HeldOut_mean"] == approx(-6.5)  # (-3-10)/2
    # no held-out benchmarks at all -> NaN, without a RuntimeWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.heldout_per_stage(hand_R(), []).isna().all()
        assert math.isnan(metrics.nanmean([NAN, NAN]))


def test_missing_stage_row_is_nan_not_zero():
    R = hand_R().drop(index=2)
    s = metrics.summary(R, TARGETS, HELD)
    assert math.isnan(s["Learning_2"]) and math.isnan(s["HeldOut_2"])
    assert s["Learning_3"] == approx(80.0)


def test_nan_rendered_na_in_markdown():
    assert fmt(NAN) == NA == "n/a"
    assert fmt(None) == "n/a"
    assert fmt(3.14159) == "3.1"
    assert fmt(2.0, signed=True) == "+2.0"
    assert fmt(-0.01, signed=True) == "0.0"
    df = pd.DataFrame({"x": [1.25, NAN]}, index=["a", "b"])
    md = markdown_table(df)
    assert "| b | n/a |" in md and "nan" not in md.lower().replace("n/a", "")


# --------------------------------------------------------------------------- aggregate
EXP = "exp1"
PLAN = {
    "experiment": EXP,
    "methods": ["sa_proj", "full"],
    "sequence": ["birds", "count"],
    "stage_targets": {"birds": "syn_birds", "count": "syn_count"},
    "target": ["syn_birds", "syn_count"],
    "held_out": ["syn_color", "syn_shape"],
    "extra": [],
    "chance": {"syn_birds": 25.0, "syn_count": 25.0, "syn_color": 16.67, "syn_shape": 25.0},
}
BENCH = ["syn_birds", "syn_count", "syn_color", "syn_shape"]
# (method, stage) -> scores of BENCH; base shared
FAKE = {
    ("base", 0): [30.0, 20.0, 70.0, 60.0],
    ("sa_proj", 1): [80.0, 22.0, 69.0, 59.0],
    ("sa_proj", 2): [78.0, 70.0, 68.0, 57.0],
    ("full", 1): [90.0, 25.0, 60.0, 50.0],
    ("full", 2): [60.0, 85.0, 55.0, None],  # null score
}
MISSING = ("full", 2, "syn_color")  # this JSON is not written


def make_tree(root, seed=0, scale=1.0, exp=EXP):
    """Evaluation JSONs of FAKE (every score × `scale`) for run `seed` (lmmcl.layout)."""
    from lmmcl.layout import Layout

    lay = Layout(exp, root=root)
    for (m, k), vals in FAKE.items():
        d = Path(lay.eval_dir(seed, m, k, PLAN["sequence"][k - 1] if k else None))
        d.mkdir(parents=True, exist_ok=True)
        for b, v in zip(BENCH, vals):
            v = v if v is None else v * scale
            if (m, k, b) == MISSING:
                continue
            (d / f"{b}.json").write_text(json.dumps({
                "benchmark": b, "metric": "acc", "score": v, "scores": {"acc": v}, "n": 100,
                "checkpoint": f"{m}/{k}",
            }))
    return root


def test_collect_scores(tmp_path):
    df = collect_scores(make_tree(tmp_path), PLAN)
    assert list(df.columns) == SCORE_COLUMNS
    assert len(df) == 2 * 3 * 4  # methods x (base + 2 stages) x benchmarks
    base = df[df.stage == 0]
    assert set(base.task) == {"base"} and set(base.method) == {"sa_proj", "full"}
    row = df[(df.method == "full") & (df.stage == 2) & (df.benchmark == "syn_color")].iloc[0]
    assert math.isnan(row.score) and row.metric == MISSING_METRIC
    nul = df[(df.method == "full") & (df.stage == 2) & (df.benchmark == "syn_shape")].iloc[0]
    assert math.isnan(nul.score) and nul.metric == "acc"
    assert len(df.attrs["missing"]) == 1

    R = r_matrix(df, "full")
    assert list(R.index) == [0, 1, 2] and list(R.columns) == BENCH
    assert R.loc[1, "syn_birds"] == 90.0 and R.loc[0, "syn_color"] == 70.0
    assert stage_labels(PLAN) == ["0 base", "1 birds", "2 count"]

    S = summary_table(df, PLAN)
    # full: Learning_1 = 90-30 = 60, Learning_2 = 85-20 = 65, BWT = 60-90 = -30
    assert S.loc["full", "Learning_1"] == approx(60.0)
    assert S.loc["full", "Learning_2"] == approx(65.0)
    assert S.loc["full", "BWT"] == approx(-30.0)
    # full stage 2: both held-out cells missing -> NaN
    assert math.isnan(S.loc["full", "HeldOut_2"]) and math.isnan(S.loc["full", "HeldOut_final"])
    # full HeldOut_1 = ((60-70)+(50-60))/2 = -10 ; HeldOut_mean skips stage 2 -> -10
    assert S.loc["full", "HeldOut_mean"] == approx(-10.0)
    # sa_proj HeldOut_2 = ((68-70)+(57-60))/2 = -2.5
    assert S.loc["sa_proj", "HeldOut_2"] == approx(-2.5)


def test_corrupt_or_mislabelled_json_raises(tmp_path):
    make_tree(tmp_path)
    f = tmp_path / EXP / "seed0" / "evals" / "base" / "syn_birds.json"
    f.write_text('{"benchmark": "syn_count", "score": 1}')
    with pytest.raises(ValueError, match="syn_count"):
        collect_scores(tmp_path, PLAN)
    f.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        collect_scores(tmp_path, PLAN)


def test_normalize_plan_defaults():
    p = normalize_plan({"experiment": "e", "methods": ["m"], "sequence": ["a", "b"], "held_out": ["h"]})
    assert p["stage_targets"] == ["a", "b"] and p["target"] == ["a", "b"]
    assert p["benchmarks"] == ["a", "b", "h"] and p["chance"] == {}
    assert normalize_plan(p) == p
    with pytest.raises(ValueError):
        normalize_plan({"experiment": "e", "methods": ["base"], "sequence": ["a"]})


def test_write_report(tmp_path):
    root = make_tree(tmp_path)
    out = write_report(root, PLAN)
    assert out == report_outputs(root, PLAN)
    exp = root / EXP
    files = [p for ps in out.values() for p in ps]
    names = {p.relative_to(exp).as_posix() for p in files}
    assert names == {
        "scores.csv", "report_plan.json",
        *(f"tables/{t}_{m}.{e}" for t in ("R", "deltas") for m in ("sa_proj", "full") for e in ("csv", "md", "tex")),
        "tables/learning_forgetting.csv", "tables/learning_forgetting.md", "tables/learning_forgetting.tex",
        "tables/learning_forgetting_seeds.csv", "tables/pareto.csv", "tables/pareto.md",
        *(f"tables/{t}_{m}_ci.csv" for t in ("R", "deltas") for m in ("sa_proj", "full")),
        "tables/learning_forgetting_ci.csv", "tables/learning_forgetting_seeds_ci.csv", "tables/items.csv",
        "tables/comparisons.csv", "tables/comparisons.md", "tables/comparisons.tex",
        "plots/learning_vs_heldout.png", "plots/heldout_per_stage.png", "plots/target_per_stage.png",
        "plots/pareto.png", "plots/R_heatmap_sa_proj.png", "plots/R_heatmap_full.png",
    }
    for p in files:
        assert p.is_file() and p.stat().st_size > 0, p
    # no temp files left behind
    assert not [p for p in exp.rglob(".*") if p.is_file()]

    scores = pd.read_csv(exp / "scores.csv")
    assert list(scores.columns) == SCORE_COLUMNS
    assert scores["score"].isna().sum() == 2  # missing file + null score

    lf = pd.read_csv(exp / "tables" / "learning_forgetting.csv", index_col="method")
    assert list(lf.index) == ["sa_proj", "full"]
    cols = metrics.summary_columns(2)
    assert list(lf.columns) == cols + [f"{c}_std" for c in cols] + ["seeds"]
    assert lf["Learning_std"].isna().all() and (lf["seeds"] == 1).all()  # one seed: no std
    assert math.isnan(lf.loc["full", "HeldOut_final"])  # empty CSV field
    assert lf.loc["sa_proj", "Learning_1"] == approx(50.0)  # 80-30

    md = (exp / "tables" / "learning_forgetting.md").read_text()
    for d in metrics.DEFINITIONS.values():
        assert d in md
    assert "`syn_birds`" in md and "`syn_count`" in md  # stage targets
    assert "`syn_color` (chance 16.7)" in md  # held-out set with chance
    assert "| full |" in md and "n/a" in md and "nan" not in md
    assert "+50.0" in md  # 1 decimal

    rmd = (exp / "tables" / "R_full.md").read_text()
    assert rmd.rstrip().splitlines()[-1].startswith("| chance | 25.0 | 25.0 | 16.7 | 25.0 |")
    assert "| 1 birds | **90.0** |" in rmd
    header = next(line for line in rmd.splitlines() if line.startswith("| stage"))
    assert header.split("|")[2:6] == [f" {b} " for b in BENCH]
    rcsv = pd.read_csv(exp / "tables" / "R_full.csv")
    assert list(rcsv.columns) == ["stage", "task", *BENCH]
    assert rcsv["task"].tolist() == ["base", "birds", "count"]

    for p in out["plots"]:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 1024

    text = format_summary(root, PLAN)
    assert "sa_proj" in text and "full" in text and "learning_forgetting.md" in text
    assert "1 evaluation(s) missing" in text


def test_plots_degenerate_inputs(tmp_path):
    from lmmcl.report import plots

    summ = pd.DataFrame({"Learning": [NAN, 10.0], "HeldOut_mean": [NAN, -2.0]}, index=["a", "b"])
    out = plots.plot_learning_vs_heldout(summ, tmp_path / "lvh.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    plan = {"experiment": "e", "methods": ["m"], "sequence": ["t"], "held_out": []}
    scores = pd.DataFrame(
        [(0, "m", 0, "base", "t", MISSING_METRIC, NAN), (0, "m", 1, "t", "t", MISSING_METRIC, NAN)],
        columns=SCORE_COLUMNS,
    )
    for fn in (plots.plot_heldout_per_stage, plots.plot_target_per_stage):
        p = fn(scores, plan, tmp_path / f"{fn.__name__}.png")
        assert p.stat().st_size > 1024



# --------------------------------------------------------------------------- deltas, LaTeX, heatmap, across
def test_deltas_tables(tmp_path):
    root = make_tree(tmp_path)
    write_report(root, PLAN)
    d = pd.read_csv(root / EXP / "tables" / "deltas_full.csv", index_col="stage")
    assert list(d.index) == [1, 2] and list(d.columns) == ["task", *BENCH]
    # full: stage 1 syn_birds 90-30 = +60, syn_color 60-70 = -10; stage 2 syn_color missing -> NaN
    assert d.loc[1, "syn_birds"] == approx(60.0) and d.loc[1, "syn_color"] == approx(-10.0)
    assert d.loc[2, "syn_count"] == approx(65.0) and math.isnan(d.loc[2, "syn_color"])
    md = (root / EXP / "tables" / "deltas_full.md").read_text()
    assert "R[i][b] − R[0][b]" in md and "| 1 birds | **+60.0** |" in md and "n/a" in md


def test_latex_tables(tmp_path):
    from lmmcl.report.tables import latex_escape, latex_table

    assert latex_escape("a_b & 50%") == r"a\_b \& 50\%"
    tex = latex_table(pd.DataFrame({"x_1": [1.25, NAN, -2.0]}, index=["a", "b", "c"]), caption="C_1",
                      label="tab:x", index_label="m", signed=True, bold={("a", "x_1")})
    lines = tex.splitlines()
    assert r"\toprule" in lines and r"\midrule" in lines and r"\bottomrule" in lines
    assert r"\begin{tabular}{lr}" in lines and r"\caption{C\_1}" in lines and r"\label{tab:x}" in lines
    assert r"m & x\_1 \\" in lines
    assert r"a & \textbf{+1.2} \\" in lines or r"a & \textbf{+1.3} \\" in lines
    assert r"b & n/a \\" in lines and r"c & $-$2.0 \\" in lines
    assert "nan" not in tex.lower().replace("n/a", "")

    root = make_tree(tmp_path)
    write_report(root, PLAN)
    r = (root / EXP / "tables" / "R_full.tex").read_text()
    assert r"1 birds & \textbf{90.0} & 25.0 & 60.0 & 50.0 \\" in r
    assert r"2 count & 60.0 & \textbf{85.0} & n/a & n/a \\" in r  # missing file + null score
    assert r"chance & 25.0 & 25.0 & 16.7 & 25.0 \\" in r
    lf = (root / EXP / "tables" / "learning_forgetting.tex").read_text()
    assert r"full & +60.0 & +65.0 & +62.5 &" in lf and "MaxForgetting" in lf and r"\end{table}" in lf
    assert lf.count("{") == lf.count("}")  # everything escaped / balanced


def test_heatmap_png_with_nan(tmp_path):
    from lmmcl.report import plots

    R = hand_R()
    R.loc[2, "B"] = NAN
    labels = ["0 base", "1 a", "2 b", "3 c"]
    out = plots.plot_r_heatmap(R, tmp_path / "h.png", method="m", stage_labels=labels, stage_targets=TARGETS,
                               groups={"target": TARGETS, "held-out": HELD})
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    # all-NaN / empty matrix still gives a figure; rerun overwrites in place
    empty = pd.DataFrame(NAN, index=[0, 1], columns=["A"])
    for _ in range(2):
        assert plots.plot_r_heatmap(empty, tmp_path / "e.png", method="m").stat().st_size > 1024
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.png", "h.png"]


def test_write_report_is_rerunnable(tmp_path):
    root = make_tree(tmp_path)
    first = write_report(root, PLAN)
    before = (root / EXP / "tables" / "learning_forgetting.tex").read_text()
    second = write_report(root, PLAN)
    assert first == second and (root / EXP / "tables" / "learning_forgetting.tex").read_text() == before


def test_across_experiments(tmp_path):
    from lmmcl.report.across import across_table, write_across

    root = make_tree(tmp_path)
    write_report(root, PLAN)
    other = dict(PLAN, experiment="exp2", methods=["full"])
    # second experiment: same evals, different name, no plan file (older run) -> plan inferred
    import shutil

    shutil.copytree(root / EXP / "seed0", root / "exp2" / "seed0")
    write_report(root, other)
    (root / "exp2" / "report_plan.json").unlink()
    # inference needs stage tasks = benchmark names; this plan maps birds->syn_birds, so it must fail clearly
    with pytest.raises(ValueError, match="cannot be inferred"):
        across_table([root / EXP, root / "exp2"])
    write_report(root, other)

    df = across_table([root / EXP, root / "exp2"])
    assert list(df.index) == [(EXP, "sa_proj"), (EXP, "full"), ("exp2", "full")]
    assert df.loc[(EXP, "full"), "Learning"] == approx(62.5)  # (60+65)/2
    assert df.loc[(EXP, "full"), "BWT"] == approx(-30.0)
    assert df.loc[("exp2", "full"), "Learning"] == approx(62.5)
    assert df.loc[(EXP, "full"), "n_missing"] == 2 and df.loc[(EXP, "sa_proj"), "n_missing"] == 0
    with pytest.raises(ValueError, match="appears twice"):
        across_table([root / EXP, root / EXP])

    paths = write_across([root / EXP, root / "exp2"], tmp_path / "across")
    for p in paths:
        assert p.is_file() and p.stat().st_size > 0
    md = paths[1].read_text()
    assert "| exp1 / full |" in md and "MaxForgetting" in md


def test_cli_report_across(tmp_path, capsys):
    from lmmcl.cli import main

    root = make_tree(tmp_path)
    write_report(root, PLAN)
    main(["report", "--across", str(root / EXP), "--out", str(tmp_path / "x")])
    assert (tmp_path / "x" / "learning_forgetting_across.tex").is_file()
    with pytest.raises(SystemExit):
        main(["report", "--across", str(root / EXP)])  # --out missing
    assert "--out" in capsys.readouterr().err


def test_seeds_mean_std_and_per_seed_rows(tmp_path):
    make_tree(tmp_path, seed=0)
    make_tree(tmp_path, seed=3, scale=1.1)  # every delta 10 % larger in the second run
    plan = dict(PLAN, seeds=[0, 3])
    scores = collect_scores(tmp_path, plan)
    assert sorted(scores["seed"].unique()) == [0, 3] and len(scores) == 2 * 2 * 3 * 4
    assert n_eval_files(scores) == 2 * (4 + 2 * 2 * 4)  # per seed: its base's 4, then 2 methods x 2 stages
    per_seed = summary_per_seed(scores, plan)
    assert per_seed.loc[("sa_proj", 0), "Learning_1"] == approx(50.0)
    assert per_seed.loc[("sa_proj", 3), "Learning_1"] == approx(55.0)
    assert summary_table(scores, plan).loc["sa_proj", "Learning_1"] == approx(52.5)
    assert summary_std(scores, plan).loc["sa_proj", "Learning_1"] == approx(5 / 2 ** 0.5)
    assert r_matrix(scores, "sa_proj", seed=3).loc[1, "syn_birds"] == approx(88.0)   # 80 × 1.1
    assert r_matrix(scores, "sa_proj").loc[1, "syn_birds"] == approx(84.0)           # mean of 80, 88
    write_report(tmp_path, plan)
    exp = tmp_path / EXP
    lf = pd.read_csv(exp / "tables" / "learning_forgetting.csv", index_col="method")
    assert lf.loc["sa_proj", "Learning_1_std"] == approx(3.5355) and (lf["seeds"] == 2).all()
    seeds_csv = pd.read_csv(exp / "tables" / "learning_forgetting_seeds.csv")
    assert list(seeds_csv.columns[:2]) == ["method", "seed"] and len(seeds_csv) == 4
    md = (exp / "tables" / "learning_forgetting.md").read_text()
    assert "mean ± std over 2 seeds: 0, 3" in md and "+52.5 ± 3.5" in md
    assert pd.read_csv(exp / "scores.csv")["seed"].tolist().count(3) == 2 * 3 * 4


def test_pareto_table_and_sweep_lr_rule(tmp_path):
    from lmmcl import sweep

    make_tree(tmp_path)
    # FAKE: sa_proj Learning 50.0, HeldOut_mean -1.8; full Learning 62.5, HeldOut_mean -10.0
    plan = dict(PLAN, sweep={"sa_proj": {"recipe": "sa_proj", "lr": 1e-3}, "full": {"recipe": "sa_proj", "lr": 1e-4}},
                lr_rule={"min_learning": 55})
    scores = collect_scores(tmp_path, plan)
    par = pareto_table(scores, plan)
    assert par["pareto"].tolist() == [True, True]  # neither dominates: one learns more, the other forgets less
    # same recipe, lrs 1e-4 (Learning 62.5) and 1e-3 (50.0): the smallest lr reaching 55 pp is 1e-4
    assert par.loc["full", "lr_rule"] == "picked" and par.loc["sa_proj", "lr_rule"] == ""
    assert sweep.pick_lrs(plan["sweep"], par["Learning"].to_dict(), {"min_learning": 70}) == {
        "full": "picked (below bar)", "sa_proj": ""}
    # one lr for every recipe: the lr the reference recipe learns most with
    points = {"llm_a": {"recipe": "llm", "lr": 1e-4}, "llm_b": {"recipe": "llm", "lr": 3e-4},
              "sa_a": {"recipe": "sa_proj", "lr": 1e-4}, "sa_b": {"recipe": "sa_proj", "lr": 3e-4}}
    learning = {"llm_a": 40.0, "llm_b": 55.0, "sa_a": 60.0, "sa_b": 20.0}
    assert sweep.pick_lrs(points, learning, {"reference": "llm"}) == {
        "llm_a": "", "llm_b": "picked", "sa_a": "", "sa_b": "picked"}
    with pytest.raises(ValueError, match="no method of the sweep has recipe 'full'"):
        sweep.pick_lrs(points, learning, {"reference": "full"})
    write_report(tmp_path, plan)
    md = (tmp_path / EXP / "tables" / "pareto.md").read_text()
    assert "| full |" in md and "picked" in md and "smallest lr whose mean Learning reaches 55.0 pp" in md
    assert "| full | +62.5 | -10.0 | 1 | yes | 1e-4 | sa_proj | picked |" in md  # grid values as in method names
    assert pd.read_csv(tmp_path / EXP / "tables" / "pareto.csv", index_col=0).loc["full", "lr"] == 1e-4
    assert sweep.pareto_front({"a": (10, -1), "b": (5, -2), "c": (20, -30), "d": (math.nan, 0)}) == {"a", "c"}


def test_sweep_expansion_names_and_errors():
    from lmmcl import sweep

    methods = sweep.expand({"grid": {"recipe": ["llm", "sa_proj"], "lr": [1e-4, 3e-4], "steps": [300]},
                            "method": {"warmup_ratio": 0.1}})
    assert list(methods) == ["llm_lr1e-4_steps300", "llm_lr3e-4_steps300", "sa_proj_lr1e-4_steps300",
                             "sa_proj_lr3e-4_steps300"]
    assert methods["sa_proj_lr3e-4_steps300"] == {"warmup_ratio": 0.1, "recipe": "sa_proj", "lr": 3e-4, "steps": 300}
    assert sweep.format_value(0.5) == "0.5" and sweep.format_value(1.5e-5) == "1.5e-5"
    with pytest.raises(ValueError, match="sweep.grid.lr: repeated value"):
        sweep.expand({"grid": {"lr": [1e-4, 1e-4]}})
    with pytest.raises(ValueError, match=r"\['lr'\] set both"):
        sweep.expand({"grid": {"lr": [1e-4]}, "method": {"lr": 1e-3}})


def test_the_studys_headline_numbers_beside_a_paper_configs_own(tmp_path):
    """compare_to_paper (the paper configs): learning_forgetting.md and the end-of-run summary show
    the study's abstract numbers of the same recipes beside the experiment's Learning / HeldOut_mean;
    other configs' report plans do not change (their aggregate params stay the same)."""
    from lmmcl.config import Plan
    from lmmcl.report.summary import format_summary

    from lmmcl.config import load_configfiles

    def plan_of(path):
        return Plan(load_configfiles([str(ROOT / path)])).report_plan()

    paper = plan_of("config/paper_llava_onevision.yaml")
    assert paper["paper"] == {"sa_proj": {"learning": 24.9, "heldout": -0.6},
                              "mlp_gate_up": {"learning": 30.5, "heldout": -2.1},
                              "llm": {"learning": 31.8, "heldout": -23.3}}
    assert paper["paper_source"] == "arXiv 2510.08564v2, abstract"
    assert "paper" not in plan_of("config/config.yaml")

    plan = {**PLAN, "paper": {"sa_proj": paper["paper"]["sa_proj"]}, "paper_source": paper["paper_source"]}
    write_report(make_tree(tmp_path), plan)
    md = (tmp_path / EXP / "tables/learning_forgetting.md").read_text()
    section = md.split("## Beside the study's headline numbers")[1]
    row = next(l for l in section.splitlines() if l.startswith("| sa_proj"))
    assert "+24.9" in row and "-0.6" in row and "arXiv 2510.08564v2, abstract" in section
    assert "| full" not in section                      # the abstract reports no `full` recipe
    line = next(l for l in format_summary(tmp_path, plan).splitlines() if l.startswith("sa_proj"))
    assert line.endswith("study: +24.9 / -0.6")

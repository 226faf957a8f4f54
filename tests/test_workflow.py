"""The DAG end to end on a small config, re-planning after a change, and config errors.

Runs Snakemake in a temporary working directory (`--directory`) so nothing lands in the repo.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile")]


def env():
    e = dict(os.environ)
    e["PATH"] = f"{BIN}:{e['PATH']}"
    e.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return e


def smk(workdir: Path, *args, check=True):
    cmd = SNAKEMAKE + ["--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args]
    p = subprocess.run(cmd, cwd=workdir, env=env(), capture_output=True, text=True, timeout=900)
    if check and p.returncode != 0:
        raise AssertionError(f"snakemake failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-6000:]}")
    return p


def planned_jobs(output: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job in a dry-run printout."""
    jobs, rule = set(), None
    for line in output.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line.strip())
        if m:
            rule = m.group(1)
            jobs.add((rule, ""))
        m = re.match(r"^wildcards: (.*)$", line.strip())
        if m and rule:
            jobs.discard((rule, ""))
            jobs.add((rule, m.group(1)))
    return {j for j in jobs if j[0] != "tables"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("wf")
    shutil.copy(ROOT / "tests/configs/smoke.yaml", wd / "config.yaml")
    t0 = time.time()
    p = smk(wd, "--cores", "2")
    print(f"end-to-end smoke run: {time.time() - t0:.1f} s")
    return wd, p


@pytest.mark.slow
def test_end_to_end_produces_tables(finished_run):
    wd, p = finished_run
    res = wd / "results/smoke"
    for f in ["scores.csv", "tables/learning_forgetting.md", "tables/learning_forgetting.csv",
              "tables/R_sa_proj.md", "tables/R_full.csv", "plots/learning_vs_heldout.png",
              "plots/heldout_per_stage.png", "plots/target_per_stage.png"]:
        assert (res / f).stat().st_size > 0, f
    scores = pd.read_csv(res / "scores.csv")
    assert list(scores.columns) == ["seed", "method", "stage", "task", "benchmark", "metric", "score"]
    # 2 methods x (base + 2 stages) x 3 benchmarks, every cell measured
    assert len(scores) == 18 and scores["score"].notna().all()
    assert set(scores["stage"]) == {0, 1, 2}
    # stage 2 of each method chains on its stage 1, which chains on the shared base
    import json
    m2 = json.loads((res / "seed0/full/stage2_syn_count/manifest.json").read_text())
    assert m2["parent"].endswith("results/smoke/seed0/full/stage1_syn_birds/manifest.json")
    m1 = json.loads((res / "seed0/full/stage1_syn_birds/manifest.json").read_text())
    assert m1["parent"].endswith("results/smoke/seed0/base/manifest.json")
    assert m1["trainable"]["trainable_share"] == 1.0
    # 95 % intervals (lmmcl.report.intervals): every evaluation's 8 items paired with its base
    items = pd.read_csv(res / "tables/items.csv")
    assert len(items) == 3 * (1 + 2 * 2) and (items["status"] == "ok").all() and (items["paired_with_base"] == 8).all()
    ci = pd.read_csv(res / "tables/learning_forgetting_ci.csv")
    assert list(ci.columns[:6]) == ["method", "metric", "estimate", "lo", "hi", "contains_zero"]
    learn = ci[ci["metric"] == "Learning"]
    assert learn["lo"].notna().all() and (learn["lo"] <= learn["estimate"]).all() and (learn["estimate"] <= learn["hi"]).all()
    assert "| sa_proj − full |" in (res / "tables/comparisons.md").read_text()
    assert "## 95 % intervals (pp)" in (res / "tables/learning_forgetting.md").read_text()
    assert (res / "tables/R_full_ci.csv").is_file() and (res / "tables/deltas_sa_proj_ci.csv").is_file()
    summary = p.stdout + p.stderr
    assert "learning_forgetting.md" in summary
    # training curves next to each stage's checkpoint, listed in its manifest
    events = m1["tracking"]["files"]
    assert events and all((res / "seed0/full/stage1_syn_birds" / f).is_file() for f in events)
    # the answer gallery: every benchmark, base + 2 stages of both methods
    gallery = json.loads((res / "gallery/gallery.json").read_text())
    assert list(gallery["benchmarks"]) == ["syn_birds", "syn_count", "syn_color"]
    assert gallery["stages"] == ["0 base", "1 syn_birds", "2 syn_count"]
    ex = gallery["benchmarks"]["syn_color"]["examples"]
    assert len(ex) == 4 and all(len(e["answers"]["full"]) == 3 for e in ex)
    assert all(a["verdict"] != "n/a" for e in ex for a in e["answers"]["sa_proj"])
    assert (res / "gallery/gallery.html").stat().st_size > 0 and (res / "gallery/syn_count.png").stat().st_size > 0
    assert "answer gallery: results/smoke/gallery/gallery.html" in summary


@pytest.mark.slow
def test_finished_run_has_nothing_to_do(finished_run):
    wd, _ = finished_run
    t0 = time.time()
    p = smk(wd, "-n")
    elapsed = time.time() - t0
    print(f"re-plan of a finished run: {elapsed:.2f} s")
    assert "Nothing to be done" in p.stdout + p.stderr
    # storage format and launch settings are not params: switching them replans nothing
    p = smk(wd, "-n", "--config", "checkpoints={format: full}")
    assert "Nothing to be done" in p.stdout + p.stderr
    p = smk(wd, "-n", "--config", "tracking={report_to: none}")
    assert "Nothing to be done" in p.stdout + p.stderr
    # stages are deltas on the base, and evaluation composed them
    res = wd / "results/smoke"
    assert (res / "seed0/sa_proj/stage2_syn_count/model/lmmcl_delta.json").is_file()
    assert not (res / "seed0/sa_proj/stage2_syn_count/model/model.safetensors").exists()


@pytest.mark.slow
def test_changing_one_stage_replans_that_stage_and_downstream_only(finished_run):
    wd, _ = finished_run
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["stages"]["syn_count"] = {"lr": 5e-4}          # stage 2, every method
    cfg["methods"]["sa_proj"]["stages"] = {"syn_birds": {"steps": 11}}  # stage 1, one method
    changed = wd / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    p = subprocess.run(SNAKEMAKE + ["--directory", str(wd), "--configfile", str(changed), "-n"],
                       cwd=wd, env=env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = planned_jobs(p.stdout + p.stderr)
    expected = {
        ("train_stage", "seed=0, method=full, k=2, task=syn_count"),
        ("evaluate_stage", "seed=0, method=full, k=2, task=syn_count"),
        ("train_stage", "seed=0, method=sa_proj, k=1, task=syn_birds"),
        ("evaluate_stage", "seed=0, method=sa_proj, k=1, task=syn_birds"),
        ("train_stage", "seed=0, method=sa_proj, k=2, task=syn_count"),
        ("evaluate_stage", "seed=0, method=sa_proj, k=2, task=syn_count"),
        ("aggregate", ""),
        ("gallery", ""),
    }
    assert jobs == expected


@pytest.mark.parametrize("patch, message", [
    ({"methods": {"x": {"recipe": "sa_prj"}}}, "unknown recipe 'sa_prj'"),
    ({"benchmarks": {"held_out": ["syn_colour"]}}, "unknown benchmark 'syn_colour'"),
    ({"stages": {"defaults": {"lr": -1}}}, "lr"),
    ({"bogus_key": 1}, "bogus_key"),
    ({"model": {"family": "llava15"}}, "llava15"),
])
def test_bad_config_fails_before_any_job(tmp_path, patch, message):
    cfg = yaml.safe_load((ROOT / "tests/configs/smoke.yaml").read_text())
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    p = smk(tmp_path, "-n", check=False)
    assert p.returncode != 0
    assert message in p.stdout + p.stderr
    assert not (tmp_path / "results").exists()


def test_seeds_and_sweep_plan_one_chain_per_seed_and_grid_point(tmp_path):
    """`seeds` and a `sweep` grid expand into runs of the same DAG: a base per seed, every grid
    point a method with its own chain per seed (dry run: nothing trains)."""
    cfg = yaml.safe_load((ROOT / "tests/configs/smoke.yaml").read_text())
    cfg.pop("seed")
    cfg["seeds"] = [0, 3]
    cfg["methods"] = None  # an overlay's way to drop the file's methods
    cfg["sweep"] = {"grid": {"recipe": ["sa_proj", "llm"], "lr": [1.0e-4, 1.0e-3]}, "lr_rule": {"reference": "llm"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(smk(tmp_path, "-n").stdout)
    assert {w for r, w in jobs if r == "build_base"} == {"seed=0", "seed=3"}
    trains = {w for r, w in jobs if r == "train_stage"}
    methods = ["sa_proj_lr1e-4", "sa_proj_lr1e-3", "llm_lr1e-4", "llm_lr1e-3"]
    assert trains == {f"seed={s}, method={m}, k={k}, task={t}" for s in (0, 3) for m in methods
                      for k, t in ((1, "syn_birds"), (2, "syn_count"))}
    assert sum(r == "evaluate_stage" for r, _ in jobs) == 2 * 4 * 2


@pytest.mark.slow
def test_evaluation_in_the_training_job_gives_the_same_answers(finished_run, tmp_path):
    """evaluation.in_training_job: the stage jobs evaluate their stage in their own process; no
    evaluate_stage job is left, the base keeps its own, and every answer and score equals those of
    the separate evaluation jobs of the finished run (a copy of it: the base and data are reused)."""
    wd, _ = finished_run
    ij = tmp_path / "ij"
    shutil.copytree(wd, ij, symlinks=True)
    flag = ["--config", "evaluation={limit: 8, in_training_job: true}"]
    jobs = planned_jobs(smk(ij, "-n", *flag).stdout)
    assert {r for r, _ in jobs} == {"train_stage", "aggregate", "gallery"}, jobs
    assert len([1 for r, _ in jobs if r == "train_stage"]) == 4
    smk(ij, "--cores", "2", *flag)
    res, ref = ij / "results/smoke", wd / "results/smoke"
    stages = sorted(p.relative_to(ref / "seed0/evals") for p in (ref / "seed0/evals").glob("*/stage*"))
    assert len(stages) == 4
    for stage in stages:
        for b in ("syn_birds", "syn_count", "syn_color"):
            assert (res / "seed0/evals" / stage / f"{b}.samples.jsonl").read_bytes() == \
                   (ref / "seed0/evals" / stage / f"{b}.samples.jsonl").read_bytes(), (stage, b)
            rec = json.loads((res / "seed0/evals" / stage / f"{b}.json").read_text())
            assert rec["timing"]["in_training_job"] is True and "startup" not in rec["timing"]
        log = (res / "logs/seed0" / f"{stage}.log").read_text()
        assert "trained" in log and "syn_color:" in log  # one log: the training, then the scores
    assert (res / "scores.csv").read_bytes() == (ref / "scores.csv").read_bytes()
    assert "Nothing to be done" in (lambda p: p.stdout + p.stderr)(smk(ij, "-n", *flag))

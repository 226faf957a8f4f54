"""config evaluation.in_training_job: which jobs the DAG plans, and the launches it refuses.
(The same answers as separate evaluation jobs: tests/test_workflow.py, on the smoke run.)"""
import subprocess

import pytest
import yaml

from lmmcl.config import ConfigError, Plan
from test_workflow import ROOT, SNAKEMAKE, env, planned_jobs


def smoke(**evaluation):
    cfg = yaml.safe_load((ROOT / "tests/configs/smoke.yaml").read_text())
    cfg["evaluation"] = {**cfg.get("evaluation", {}), **evaluation}
    return cfg


@pytest.mark.parametrize("resources, named", [
    ({"processes": 2}, "resources.processes: 2"),
    ({"gpus": 2}, "resources.gpus: 2"),
    ({"deepspeed": "zero2"}, "resources.deepspeed: zero2"),
])
def test_several_training_processes_are_refused(resources, named):
    cfg = smoke(in_training_job=True)
    cfg["resources"] = resources
    with pytest.raises(ConfigError, match="evaluation.in_training_job") as e:
        Plan(cfg)
    assert named in str(e.value) and "in_training_job: false" in str(e.value)


def test_off_by_default_and_single_process_launches_are_allowed():
    assert Plan(smoke()).eval_in_training_job is False
    assert Plan({**smoke(in_training_job=True), "resources": {"gpus": 1}}).eval_in_training_job is True


def test_the_default_config_evaluates_in_its_training_jobs():
    from lmmcl.config import load_configfiles

    assert Plan(load_configfiles([str(ROOT / "config/config.yaml")])).eval_in_training_job is True


def test_plan_keeps_evaluation_jobs_for_the_base_and_merged_wise_ft_stages(tmp_path):
    cfg = smoke(in_training_job=True)
    cfg["methods"] = {"sa_proj": {"recipe": "sa_proj"}, "wise": {"method": "wise_ft", "recipe": "mlp", "alpha": 0.5}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    p = subprocess.run(SNAKEMAKE + ["--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
                                    "-n", "-p"], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = planned_jobs(p.stdout)
    evaluated = {w.split("method=")[1].split(",")[0] for r, w in jobs if r == "evaluate_stage"}
    assert evaluated == {"wise"}  # the merge is what a WiSE-FT stage evaluates
    assert ("evaluate_base", "seed=0") in jobs
    trains = [line for line in p.stdout.splitlines() if "lmmcl train-stage" in line]
    assert len(trains) == 4
    with_eval = [t for t in trains if "--evaluate" in t]
    assert len(with_eval) == 2 and all("--method sa_proj" in t for t in with_eval)
    assert '"out_dir":"results/smoke/seed0/evals/sa_proj/stage1_syn_birds"' in with_eval[0] + with_eval[1]

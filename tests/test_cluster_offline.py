"""Data where the network is (docs/cluster_data_and_resources.md), through the real Snakemake and
SLURM executor plugin with a fake `sbatch` (test_slurm_profile.py) and a fake `lmmcl` that records
what ran on the submitting node:

- the data rules (make_synthetic, every convert_<dataset>) and the report rules (aggregate,
  gallery) are local rules: they run where Snakemake runs, never through sbatch;
- every job gets LMMCL_HUB_OFFLINE (config hub_offline_jobs), which takes lmmcl's compute
  subcommands offline (HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1) and leaves the data rules online;
- per-rule resources: a layered profile replaces whole top-level keys (measured), so the shipped
  site example repeats every rule, and layering it keeps the GPU rules' resources.
"""
import json
import subprocess
from pathlib import Path

import yaml
from test_slurm_profile import BIN, ROOT, SNAKEMAKE, STAGE1, fake_cluster, opt, workdir

from lmmcl import registry

# records argv and the hub variables of the environment each local job / sbatch call got, then fails
RECORDER = f"""#!{BIN / 'python'}
import json, os, sys
env = {{k: os.environ.get(k) for k in ("LMMCL_HUB_OFFLINE", "LMMCL_CONFIGFILES", "HF_HUB_OFFLINE")}}
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "env": env}}) + "\\n")
sys.exit(1)
"""
PAPER = ROOT / "config/paper_llava_onevision.yaml"


def run_on_fake_cluster(tmp: Path, wd: Path, config: Path, *args: str) -> tuple[list, list, str]:
    """A real (not dry) run with profiles/slurm: (sbatch calls, local `lmmcl` calls, log), each
    call {"argv", "env"}; the recorders fail, so nothing runs further."""
    env, _ = fake_cluster(tmp)
    env.pop("HF_HUB_OFFLINE"), env.pop("HF_DATASETS_OFFLINE")      # as on a login node
    for tool in ("sbatch", "lmmcl"):
        (tmp / f"fakebin/{tool}").write_text(RECORDER.replace("FAKE_LOG", f"FAKE_{tool.upper()}_LOG"))
        (tmp / f"fakebin/{tool}").chmod(0o755)
        env[f"FAKE_{tool.upper()}_LOG"] = str(tmp / f"{tool}_calls.jsonl")
    p = subprocess.run(SNAKEMAKE + ["--directory", str(wd), "--configfile", str(config), "--profile",
                                    str(ROOT / "profiles/slurm"), "--latency-wait", "1", "--retries", "0",
                                    "--slurm-init-seconds-before-status-checks", "1", *args],
                       cwd=wd, env=env, capture_output=True, text=True, timeout=180)
    read = lambda f: [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []  # noqa: E731
    return read(tmp / "sbatch_calls.jsonl"), read(tmp / "lmmcl_calls.jsonl"), p.stdout + p.stderr


def rule_of(sbatch_argv: list) -> str:
    return opt(sbatch_argv, "--comment").split("_wildcards")[0].removeprefix("rule_")


def test_conversions_run_on_the_submitting_node_never_through_sbatch(tmp_path):
    """The paper config on a fresh checkout: every convert_<dataset> job is ready at once with
    build_base; the conversions run locally, build_base alone is submitted. Every job gets
    LMMCL_HUB_OFFLINE=1 and the run's config files, and nothing sets HF_HUB_OFFLINE for the
    conversions (lmmcl's compute subcommands do that themselves: test_enter_job_...)."""
    wd = tmp_path / "wd"
    wd.mkdir()
    sbatch, local, _ = run_on_fake_cluster(tmp_path, wd, PAPER)
    converters = sorted(n for n, s in registry.datasets().items() if s.get("converter"))
    assert sorted(c["argv"][1] for c in local if c["argv"][0] == "convert") == converters == sorted(
        ["cococlock", "countbench", "cub200", "openimgclock", "pathvqa", "pixmocount", "textvqa", "timeclock"])
    assert [rule_of(c["argv"]) for c in sbatch] == ["build_base"]
    hub_env = {"LMMCL_HUB_OFFLINE": "1", "LMMCL_CONFIGFILES": str(PAPER), "HF_HUB_OFFLINE": None}
    assert all(c["env"] == hub_env for c in local + sbatch), [c["env"] for c in local + sbatch]


def test_the_data_target_converts_everything_on_the_submitting_node_and_submits_nothing(tmp_path):
    """`snakemake data` (the target rule of workflow/rules/data.smk): every split the experiment
    reads, i.e. every conversion, before any job is submitted."""
    wd = tmp_path / "wd"
    wd.mkdir()
    sbatch, local, _ = run_on_fake_cluster(tmp_path, wd, PAPER, "data")
    assert sbatch == []
    assert sorted(c["argv"][1] for c in local if c["argv"][0] == "convert") == sorted(
        n for n, s in registry.datasets().items() if s.get("converter"))


def test_synthetic_data_and_report_rules_are_local(tmp_path):
    """make_synthetic, aggregate and gallery with their inputs present (the evaluations done)."""
    from lmmcl.config import Plan
    from lmmcl.layout import DataLayout, Layout

    wd = tmp_path / "wd"
    wd.mkdir()
    cfg = yaml.safe_load((ROOT / "tests/configs/smoke.yaml").read_text())
    plan, layout = Plan(cfg), Layout(cfg["experiment"])
    inputs = list(layout.eval_files(0, None, 0, None, plan.benchmarks))
    for m in plan.methods:
        for s in plan.stages(m):
            inputs += layout.eval_files(0, m, s.k, s.task, plan.benchmarks)
    inputs += [DataLayout("data").split(b, "test") for b in plan.local_benchmarks]
    for f in inputs:
        (wd / f).parent.mkdir(parents=True, exist_ok=True)
        (wd / f).write_text("{}")
    sbatch, local, _ = run_on_fake_cluster(tmp_path, wd, ROOT / "tests/configs/smoke.yaml", "--config",
                                           "hub_offline_jobs=false", "--allowed-rules", "aggregate", "gallery",
                                           "tables", "make_synthetic", "--", "tables", "data/syn_birds/train.parquet")
    assert sbatch == []
    assert sorted(c["argv"][0] for c in local) == ["gallery", "make-data", "report"]
    assert {c["env"]["LMMCL_HUB_OFFLINE"] for c in local} == {"0"}     # config hub_offline_jobs: false


def test_enter_job_takes_compute_subcommands_offline_only():
    from lmmcl.hubcache import JOB_COMMANDS, enter_job

    assert JOB_COMMANDS == {"build-base", "train-stage", "merge-stage", "evaluate", "probe-numbers", "probe-layers"}
    for cmd in JOB_COMMANDS:
        env = {"LMMCL_HUB_OFFLINE": "1", "HF_HUB_OFFLINE": "0"}
        assert enter_job(cmd, env) and env["HF_HUB_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == "1"
    for cmd in ("convert", "make-data", "prefetch", "report", "gallery"):                # local rules, login node
        env = {"LMMCL_HUB_OFFLINE": "1"}
        assert not enter_job(cmd, env) and "HF_HUB_OFFLINE" not in env
    env = {"LMMCL_HUB_OFFLINE": "0"}                                                     # hub_offline_jobs: false
    assert not enter_job("train-stage", env) and "HF_HUB_OFFLINE" not in env
    assert not enter_job("evaluate", {})                                                 # by hand, outside the workflow


def test_switching_hub_offline_jobs_reruns_nothing(tmp_path):
    """The switch travels in the environment, not in any shell command or param."""
    wd = tmp_path / "wd"
    wd.mkdir()
    cfg = ROOT / "tests/configs/smoke.yaml"
    plans = []
    for value in ("true", "false"):
        p = subprocess.run(SNAKEMAKE + ["--directory", str(wd), "--configfile", str(cfg), "-n", "-p", "--config",
                                        f"hub_offline_jobs={value}"],
                           cwd=wd, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
        plans.append(sorted(l for l in p.stdout.splitlines() if l.startswith("Shell command: ")))  # job order varies
    assert plans[0] == plans[1] and not any("HF_HUB_OFFLINE" in l for l in plans[0])


# ---- per-rule resources: what layering does (snakemake 9.27.1, executor plugin slurm 2.8.0) ------
def submit(tmp: Path, rule: str, target: str, *profiles: str, extra: tuple = ()) -> list[str]:
    """sbatch argv of the one `rule` job building `target` (its inputs present)."""
    tmp.mkdir(parents=True, exist_ok=True)
    env, log = fake_cluster(tmp)
    wd = workdir(tmp, 2)
    for b in ("syn_birds", "syn_count", "syn_color"):
        (wd / f"data/{b}/test.parquet").parent.mkdir(parents=True, exist_ok=True)
        (wd / f"data/{b}/test.parquet").write_text("{}")
    prof = [a for p in profiles for a in ("--profile", str(p))]
    subprocess.run(SNAKEMAKE + ["--directory", str(wd), "--configfile", str(wd / "config.yaml"), *prof,
                                "--allowed-rules", rule, "--latency-wait", "1", "--retries", "0",
                                "--slurm-init-seconds-before-status-checks", "1", target, *extra],
                   cwd=wd, env=env, capture_output=True, text=True, timeout=120)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert len(calls) == 1, calls
    return calls[0]


def resources(argv: list[str]) -> tuple:
    return opt(argv, "--mem"), opt(argv, "-t"), opt(argv, "--cpus-per-gpu")


EVAL_BASE = "results/smoke/seed0/evals/base/syn_birds.json"


def test_site_example_covers_every_rule_and_key_of_profiles_slurm():
    base = yaml.safe_load((ROOT / "profiles/slurm/profile.yaml").read_text())
    site = yaml.safe_load((ROOT / "profiles/site-example/profile.yaml").read_text())
    assert set(site) == {"default-resources", "set-resources"}       # the rest comes from profiles/slurm
    assert set(base["default-resources"]) <= set(site["default-resources"])
    for rule, res in base["set-resources"].items():
        assert set(res) <= set(site["set-resources"].get(rule, {})), rule


def test_layering_the_site_profile_keeps_the_gpu_rules_resources(tmp_path):
    """profiles/slurm + a copy of profiles/site-example with one value changed: that value
    changes, every other resource of that rule and of the other rules stays profiles/slurm's."""
    site = tmp_path / "my-site"
    site.mkdir()
    prof = yaml.safe_load((ROOT / "profiles/site-example/profile.yaml").read_text())
    prof["set-resources"]["train_stage"]["runtime"] = 2000
    (site / "profile.yaml").write_text(yaml.safe_dump(prof))
    layered = (ROOT / "profiles/slurm", site)
    assert resources(submit(tmp_path / "t", "train_stage", STAGE1, *layered)) == ("256000", "2000", "8")
    assert resources(submit(tmp_path / "e", "evaluate_base", EVAL_BASE, *layered)) == ("128000", "720", "8")


def test_partial_overrides_replace_the_whole_mapping(tmp_path):
    """Why the site example repeats everything: `--set-resources train_stage:runtime=2000`, or a
    layered profile with only that entry, replaces profiles/slurm's whole set-resources mapping:
    train_stage falls back to default-resources (8000 MB, no --cpus-per-gpu), and so does
    evaluate_base. If this starts failing, Snakemake now merges: update the doc."""
    slurm = ROOT / "profiles/slurm"
    cli = ("--set-resources", "train_stage:runtime=2000")
    assert resources(submit(tmp_path / "a", "train_stage", STAGE1, slurm, extra=cli)) == ("8000", "2000", None)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "profile.yaml").write_text("set-resources:\n  train_stage:\n    runtime: 2000\n")
    assert resources(submit(tmp_path / "b", "evaluate_base", EVAL_BASE, slurm, partial)) == ("8000", "60", None)

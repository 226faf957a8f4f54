"""`snakemake --lint` is clean, and every rule runs in the one conda environment envs/lmmcl.yaml
(`snakemake --sdm conda`), whose post-deploy script installs lmms-eval --no-deps and lmmcl.

No conda here: a fake `conda` (info / --version / config, like the fake sbatch of
test_slurm_profile.py) lets Snakemake plan the environment; real conda builds it on a cluster
(docs/cluster.md)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile")]

FAKE_CONDA = """#!/bin/sh
case "$1" in
  info) printf '{"conda_prefix": "%s", "platform": "linux-64", "envs_dirs": []}\\n' "$(dirname "$(dirname "$0")")" ;;
  --version) echo "conda 24.11.3" ;;
  config) echo '{"get": {"channel_priority": "strict"}}' ;;
  *) echo "fake conda: refusing $*" >&2; exit 1 ;;
esac
"""


def run(args, cwd, env=None, timeout=120):
    env = dict(env or os.environ, PATH=f"{(env or os.environ)['PATH']}", HF_HUB_OFFLINE="1")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("configfile", [None, "config/paper_llava_onevision.yaml",
                                        "config/config.yaml config/example_own_skill.yaml"])
def test_snakemake_lint_is_clean(configfile):
    """The embedded default, a multi-GPU paper config and the own-skill example (its conversion rules
    exist only with a `skills:` entry; the linter checks rules, not jobs)."""
    args = SNAKEMAKE + ["--lint"] + (["--configfile", *(str(ROOT / f) for f in configfile.split())] if configfile else [])
    p = run(args, cwd=ROOT, env=dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}"))
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "Lints for" not in out, out[-4000:]
    assert "Congratulations, your workflow is in a good condition!" in out


@pytest.fixture()
def fake_conda(tmp_path):
    base = tmp_path / "conda"
    (base / "bin").mkdir(parents=True)
    (base / "bin/conda").write_text(FAKE_CONDA)
    (base / "bin/conda").chmod(0o755)
    return dict(os.environ, PATH=f"{base / 'bin'}:{BIN}:{os.environ['PATH']}")


def test_every_rule_names_the_one_conda_env(tmp_path, fake_conda):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "config.yaml").write_text((ROOT / "tests/configs/smoke.yaml").read_text())
    base = SNAKEMAKE + ["--directory", str(wd), "--configfile", str(wd / "config.yaml")]
    p = run(base + ["--list-conda-envs"], cwd=wd, env=fake_conda)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    envs = [line.split("\t")[0] for line in p.stdout.splitlines()[1:] if line.strip()]
    assert [Path(e).resolve() for e in envs] == [ROOT / "envs/lmmcl.yaml"], p.stdout
    # --lint demands an environment for each rule; with --sdm conda every job of the DAG gets it
    p = run(base + ["-n", "tables", "--sdm", "conda"], cwd=wd, env=fake_conda)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "envs/lmmcl.yaml will be created" in out and out.count("will be created") == 1


def test_post_deploy_installs_lmms_eval_no_deps_and_lmmcl_from_the_repo(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "python_calls.jsonl"
    (fake / "python").write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                                 f"open({str(log)!r}, 'a').write(json.dumps([os.getcwd(), sys.argv[1:]]) + '\\n')\n")
    (fake / "python").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", LMMCL_REPO=str(ROOT))
    p = run(["bash", str(ROOT / "envs/lmmcl.post-deploy.sh")], cwd=tmp_path, env=env)   # from another folder
    assert p.returncode == 0, p.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls == [[str(ROOT), ["-m", "pip", "install", "--no-deps", "-r", "requirements/nodeps.txt"]],
                     [str(ROOT), ["-m", "pip", "install", "--no-deps", "--no-build-isolation", "-e", "."]]]
    p = run(["bash", str(ROOT / "envs/lmmcl.post-deploy.sh")], cwd=tmp_path, env=dict(env, LMMCL_REPO=str(tmp_path)))
    assert p.returncode == 1 and "is not the lmmcl repository" in p.stderr and "LMMCL_REPO" in p.stderr

"""The submit environment exactly as docs/cluster.md tells users to build it, built for real: a new
venv with the documented pip commands (Snakemake, its SLURM plugin, PyYAML, constrained by the
lock, and lmmcl --no-deps). Every paper config plans there with `--sdm conda` (a fake conda, as in
test_lint_conda.py), and the end-of-run summary (the workflow's `onsuccess`) runs there.
test_planning_env.py checks the same with imports blocked inside the test environment; this one
checks that the documented commands give an environment that works, and what it holds."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# never installed by the documented commands: planning must not need them
COMPUTE = ("torch", "PIL", "transformers", "datasets", "pyarrow", "deepspeed", "lmms_eval", "matplotlib")


def documented_commands() -> list[str]:
    """The `python3.11 -m venv ~/smk && ...` command of docs/cluster.md, split at `&&`."""
    text = (ROOT / "docs/cluster.md").read_text()
    m = re.search(r"^(python3\.11 -m venv ~/smk .*?)(?<!\\)\n", text, re.S | re.M)
    assert m, "docs/cluster.md lacks the `python3.11 -m venv ~/smk ...` command of the submit environment"
    return [c.strip() for c in m.group(1).replace("\\\n", " ").split("&&")]


@pytest.fixture(scope="module")
def submit_env(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("smk") / "smk"
    for cmd in documented_commands():
        cmd = cmd.replace("~/smk", str(venv)).replace("python3.11 ", f"{sys.executable} ", 1)
        p = subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"{cmd}\n{(p.stdout + p.stderr)[-3000:]}"
    return venv


def test_the_documented_commands_install_the_lock_pins_and_no_compute_package(submit_env):
    assert any("-c requirements/lock.txt" in c for c in documented_commands()), "pins of the lock"
    probe = ("import importlib.util, json; print(json.dumps({m: importlib.util.find_spec(m) is not None "
             f"for m in {COMPUTE + ('numpy', 'pandas', 'yaml', 'lmmcl')!r}}}))")
    found = json.loads(subprocess.run([str(submit_env / "bin/python"), "-c", probe], capture_output=True,
                                      text=True, check=True).stdout)
    assert not [m for m in COMPUTE if found[m]], found
    # what planning does need (docs/cluster.md lists it): the plugin brings NumPy and pandas
    assert found["numpy"] and found["pandas"] and found["yaml"] and found["lmmcl"], found
    freeze = subprocess.run([str(submit_env / "bin/python"), "-m", "pip", "freeze"], capture_output=True,
                            text=True, check=True).stdout.lower()
    lock = (ROOT / "requirements/lock.txt").read_text().lower()
    pins = [l for l in freeze.splitlines() if "==" in l and not l.startswith(("#", "lmmcl=="))]
    assert pins and all(l in lock for l in pins), [l for l in pins if l not in lock]


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "config").glob("paper_*.yaml")))
def test_every_paper_config_plans_in_the_submit_environment(submit_env, config, tmp_path):
    from test_lint_conda import FAKE_CONDA

    (tmp_path / "conda/bin").mkdir(parents=True)
    (tmp_path / "conda/bin/conda").write_text(FAKE_CONDA)
    (tmp_path / "conda/bin/conda").chmod(0o755)
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": f"{tmp_path / 'conda/bin'}:{submit_env / 'bin'}:/usr/bin:/bin"}
    p = subprocess.run([str(submit_env / "bin/snakemake"), "-n", "--sdm", "conda", "--snakefile",
                        str(ROOT / "workflow/Snakefile"), "--directory", str(tmp_path / "work"),
                        "--configfile", str(ROOT / "config" / config)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "train_stage" in p.stdout and "evaluate_stage" in p.stdout and "This was a dry-run" in p.stdout
    assert "envs/lmmcl.yaml will be created" in out


def test_the_end_of_run_summary_runs_in_the_submit_environment(submit_env, tmp_path):
    """`onsuccess: print_summary()` runs in the submitting Snakemake: lmmcl.report.summary on a
    finished experiment's evaluation JSONs (test_report's fake tree), with the submit env's Python."""
    from test_report import PLAN, make_tree

    make_tree(tmp_path)
    code = ("import json, sys; from lmmcl.report.summary import format_summary; "
            "print(format_summary(sys.argv[1], json.loads(sys.argv[2]))); "
            f"print(sorted(m for m in {COMPUTE!r} if m in sys.modules))")
    p = subprocess.run([str(submit_env / "bin/python"), "-c", code, str(tmp_path), json.dumps(PLAN)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"experiment {PLAN['experiment']}: 2 method(s) x 2 stage(s), 1 evaluation(s) missing")
    assert any(l.startswith("sa_proj") for l in lines) and any(l.startswith("full") for l in lines)
    assert lines[-1] == "[]"   # no compute package imported

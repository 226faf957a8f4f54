"""Planning from the submit environment of docs/cluster.md: Snakemake, its SLURM plugin (which
brings NumPy and pandas), PyYAML and lmmcl --no-deps; no Pillow, torch, transformers, datasets or
pyarrow. Each paper config is planned (`snakemake -n`) in a process where importing those fails,
so a planning-time import of any of them (the skill registry once imported Pillow) fails here."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# not in the submit environment (docs/cluster.md): every import of these fails
ABSENT = ("PIL", "torch", "transformers", "datasets", "pyarrow", "deepspeed", "peft", "lmms_eval", "accelerate")
BLOCK = "import sys\nfor m in {!r}:\n    sys.modules[m] = None\n".format(ABSENT)


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "config").glob("paper_*.yaml")))
def test_paper_config_plans_without_the_compute_packages(config, tmp_path):
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(BLOCK)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "block"), PATH=f"{BIN}:{os.environ['PATH']}")
    p = subprocess.run([str(BIN / "snakemake"), "-n", "--snakefile", str(ROOT / "workflow/Snakefile"),
                        "--directory", str(tmp_path / "work"), "--configfile", str(ROOT / "config" / config)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert "train_stage" in p.stdout and "This was a dry-run" in p.stdout
    assert "halted; None in sys.modules" not in p.stdout + p.stderr


def test_a_config_with_its_own_skill_plans_without_the_compute_packages(tmp_path):
    """A declared skill (config `skills:`, lmmcl.data.declared) is checked at planning (its rows,
    image files, answers against the scorer) with the standard library alone."""
    import yaml

    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(BLOCK)
    example = yaml.safe_load((ROOT / "config/example_own_skill.yaml").read_text())
    paper = yaml.safe_load((ROOT / "config/paper_llava_onevision.yaml").read_text())
    overlay = {"skills": example["skills"], "sequence": ["cub200", "color_check"],
               "benchmarks": {"target": ["cub200", "color_check"], "held_out": paper["benchmarks"]["held_out"]}}
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "block"), PATH=f"{BIN}:{os.environ['PATH']}")
    p = subprocess.run([str(BIN / "snakemake"), "-n", "--snakefile", str(ROOT / "workflow/Snakefile"),
                        "--directory", str(tmp_path / "work"), "--configfile",
                        str(ROOT / "config/paper_llava_onevision.yaml"), str(tmp_path / "overlay.yaml")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert "convert_skill_color_check" in p.stdout and "benchmark_skill_color_check" in p.stdout

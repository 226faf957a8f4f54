"""Same config + seed -> the same numbers on another CPU and with another --cores (goal of
docs/reproducibility.md), checked on one machine: the run is repeated with `--cores 1` and with
the CPU capped to AVX2 as a stand-in for another machine (our matrix kernel's AVX2 path instead
of AVX-512, oneMKL/oneDNN/NumPy dispatch and glibc's libm variants capped, and every oneMKL
vector-math result one ulp off, as another CPU's oneMKL may round it: tests/vml_shim.c) and must
give byte-identical data, checkpoints, answers and scores.csv. tests/test_fingerprint.py compares
this machine with the committed reference machine."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
# As on a CPU without AVX-512: each variable caps one library's code path to AVX2
AVX2_MACHINE = {
    "LMMCL_GEMM_ISA": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4,AVX512_ICL,AVX512_SPR",
    "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX512DQ,-AVX512BW,-AVX512VL",
}


def run(wd: Path, cores: int, extra_env: dict) -> Path:
    wd.mkdir(parents=True)
    shutil.copy(ROOT / "tests/configs/repro.yaml", wd / "config.yaml")
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", **extra_env)
    env.pop("LMMCL_NUMERICS", None)
    p = subprocess.run([str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile"), "--directory", str(wd),
                        "--configfile", str(wd / "config.yaml"), "--cores", str(cores)],
                       cwd=wd, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, (p.stdout + p.stderr)[-5000:]
    return wd


def digests(wd: Path) -> dict[str, str]:
    """sha256 of every file that carries numbers: data, checkpoints, answers, scores."""
    files = [*wd.glob("data/**/*.parquet"), *wd.glob("results/repro/seed0/**/*.safetensors"),
             *wd.glob("results/repro/seed0/evals/**/*.samples.jsonl"), wd / "results/repro/scores.csv"]
    return {str(f.relative_to(wd)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, vml_shim):
    base = tmp_path_factory.mktemp("repro")
    other = {**AVX2_MACHINE, "LD_PRELOAD": str(vml_shim), "LMMCL_VML_SHIM": "perturb"}
    return run(base / "cores2", 2, {}), run(base / "cores1_avx2", 1, other)


@pytest.mark.slow
def test_same_bits_with_cores_1_and_an_avx2_cpu(runs):
    a, b = (digests(wd) for wd in runs)
    assert len(a) >= 4 + 3 + 6 + 1 and set(a) == set(b)
    assert {k for k in a if a[k] != b[k]} == set()


@pytest.mark.slow
def test_the_compared_scores_are_not_trivial(runs):
    import pandas as pd

    scores = pd.read_csv(runs[0] / "results/repro/scores.csv")
    assert len(scores) == 3 * 3 and scores["score"].notna().all()
    assert scores["score"].nunique() >= 2 and scores["score"].max() > 0

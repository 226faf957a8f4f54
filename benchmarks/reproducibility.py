"""Does a fresh run of the default give the committed numbers? Same seed, this machine, any --cores.

    .venv/bin/python benchmarks/reproducibility.py                  # 2 runs of the default (~2 x make run)
    .venv/bin/python benchmarks/reproducibility.py --native         # + 2 runs with numerics: native
    .venv/bin/python benchmarks/reproducibility.py --only-a          # run A only (B takes ~4x as long)
    .venv/bin/python benchmarks/reproducibility.py --update-reference

Runs the default config (`config/config.yaml`, one seed) through the real workflow, from fresh
data, in two fresh folders:
  A: `snakemake --cores 2`
  B: `snakemake --cores 1` with the CPU capped to AVX2, a stand-in for another machine (our matrix
     kernel's AVX2 path instead of AVX-512; oneMKL, oneDNN, NumPy and glibc's libm dispatch capped;
     every oneMKL vector-math result one ulp off, as another CPU's oneMKL may round it:
     tests/vml_shim.c, preloaded)
(both fine-tune the shipped base, pretrained/tiny_default/, as `make run` does; whether its
pre-training gives the same bytes on a machine is benchmarks/pretrained_base.py's check, with the
same --avx2 stand-in)
and compares each run's scores.csv byte for byte with the other and with the committed reference
`benchmarks/reference/tiny_default_scores.csv` (the README's numbers), printing the Learning /
HeldOut_mean of each method and every score that differs. `--native` repeats A and B with
`numerics: native` (torch's CPU defaults) and prints how far those two runs' tables drift apart:
the machine dependence that portable numerics remove. `--update-reference` writes run A's
scores.csv as the new reference (after an intended change of the default), to be committed with
`lmmcl fingerprint > benchmarks/reference/fingerprint.txt`. Exit status 1 if a portable run
differs from the reference.

Measured (docs/reproducibility.md has the fingerprints): the reference written at commit 8283b09
on an Intel Xeon (family 6, model 207; Debian 12, glibc 2.36, gcc 12.2) was not what an AMD EPYC
(family 25, model 17, Zen 4; the same software) gave: 120 of 192 scores differed (oneMKL's vector
math; fixed). The reference after the fix was written on that AMD EPYC (run A); its fingerprint,
also written there, agrees with qemu-x86_64 running an Intel CPUID for the lines it ran (data,
init, 1, 2 and 10 steps) and later with an Intel Xeon (family 6, model 167), where a whole run
wrote the same scores.csv. The current reference (the default on the base chosen by the finding,
commit cc674be) was written on that Intel Xeon: runs A (567 s) and B (826 s, a machine shared with
another run) byte-identical to it and to each other. It has not met an AMD CPU yet.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REFERENCE = ROOT / "benchmarks" / "reference" / "tiny_default_scores.csv"
EXPERIMENT = "tiny_default"
AVX2_MACHINE = {
    "LMMCL_GEMM_ISA": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4,AVX512_ICL,AVX512_SPR",
    "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX512DQ,-AVX512BW,-AVX512VL",
}
NATIVE_AVX2_MACHINE = {**AVX2_MACHINE, "ATEN_CPU_CAPABILITY": "avx2"}  # portable pins this itself


def run_default(work: Path, cores: int, env_extra: dict, numerics: str = "portable") -> tuple[Path, float]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **env_extra)
    env.pop("LMMCL_NUMERICS", None)
    cmd = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile"), "--directory", str(work),
           "--configfile", str(ROOT / "config/config.yaml"), "--cores", str(cores), "--config", f"numerics={numerics}"]
    print(f"[{time.strftime('%H:%M:%S')}] {work.name}: snakemake --cores {cores} (numerics {numerics}"
          f"{', CPU capped to AVX2' if env_extra else ''}) ...", flush=True)
    t0 = time.time()
    p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{work.name}: snakemake failed ({p.returncode}):\n{(p.stdout + p.stderr)[-4000:]}")
    seconds = time.time() - t0
    print(f"[{time.strftime('%H:%M:%S')}] {work.name}: {seconds:.0f} s", flush=True)
    return work / "results" / EXPERIMENT, seconds


def vml_perturbed(work: Path) -> dict:
    """The environment that preloads tests/vml_shim.c (built here) in its perturbing mode."""
    out = work / "vml_shim.so"
    if not out.is_file():
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(ROOT / "tests" / "vml_shim.c"), "-ldl"],
                       check=True)
    return {"LD_PRELOAD": str(out), "LMMCL_VML_SHIM": "perturb"}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table(results: Path) -> pd.DataFrame:
    lf = pd.read_csv(results / "tables" / "learning_forgetting.csv")
    return lf.set_index("method")[["Learning", "HeldOut_mean", "HeldOut_final", "BWT"]]


def differing_scores(a: Path, b: Path) -> pd.DataFrame:
    x, y = pd.read_csv(a), pd.read_csv(b)
    keys = ["seed", "method", "stage", "task", "benchmark", "metric"]
    m = x.merge(y, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    return m[(m["_merge"] != "both") | (m["score_a"] != m["score_b"])]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="default: a new temporary folder")
    ap.add_argument("--native", action="store_true", help="also run numerics: native with and without the cap")
    ap.add_argument("--only-a", action="store_true", help="run A only, no stand-in machine (B takes ~4x as long)")
    ap.add_argument("--update-reference", action="store_true", help=f"write run A's scores.csv to {REFERENCE}")
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="lmmcl_repro_"))
    res_a, sec_a = run_default(work / "A_cores2", 2, {})
    if a.only_a:
        res_b, sec_b = res_a, 0.0
    else:
        res_b, sec_b = run_default(work / "B_cores1_avx2", 1, {**AVX2_MACHINE, **vml_perturbed(work)})
    pd.set_option("display.width", 160)
    print(f"\nrun A (--cores 2): {sec_a:.0f} s" + ("" if a.only_a else f"; run B (--cores 1, the stand-in machine): {sec_b:.0f} s"))
    print("\nLearning / HeldOut (pp) of run A:\n" + table(res_a).to_string(float_format=lambda v: f"{v:+.1f}"))
    same_ab = sha(res_a / "scores.csv") == sha(res_b / "scores.csv")
    if not a.only_a:
        print(f"\nscores.csv A vs B: {'byte-identical' if same_ab else 'DIFFERENT'} (sha256 {sha(res_a / 'scores.csv')[:16]}"
              f"{'' if same_ab else ' vs ' + sha(res_b / 'scores.csv')[:16]})")
    if not same_ab:
        print(differing_scores(res_a / "scores.csv", res_b / "scores.csv").to_string())
    status = 0 if same_ab else 1
    if a.update_reference:
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(res_a / "scores.csv", REFERENCE)
        print(f"wrote {REFERENCE}")
    elif REFERENCE.is_file():
        for name, res in (("A", res_a),) + ((("B", res_b),) if not a.only_a else ()):
            same = sha(res / "scores.csv") == sha(REFERENCE)
            print(f"scores.csv {name} vs {REFERENCE.relative_to(ROOT)}: {'byte-identical' if same else 'DIFFERENT'}")
            if not same:
                status = 1
                print(differing_scores(res / "scores.csv", REFERENCE).to_string())
    else:
        print(f"no reference at {REFERENCE} (--update-reference writes one)")
    if a.native:
        nat_a, _ = run_default(work / "C_native_cores2", 2, {}, numerics="native")
        nat_b, _ = run_default(work / "D_native_cores1_avx2", 1, {**NATIVE_AVX2_MACHINE, **vml_perturbed(work)},
                               numerics="native")
        ta, tb = table(nat_a), table(nat_b)
        same = sha(nat_a / "scores.csv") == sha(nat_b / "scores.csv")
        print(f"\nnumerics: native, the same two machines: scores.csv {'byte-identical' if same else 'different'}")
        print("Learning / HeldOut_mean (pp), native as is | native capped to AVX2 | difference:")
        out = pd.concat({"as is": ta[["Learning", "HeldOut_mean"]], "capped": tb[["Learning", "HeldOut_mean"]],
                         "difference": tb[["Learning", "HeldOut_mean"]] - ta[["Learning", "HeldOut_mean"]]}, axis=1)
        print(out.to_string(float_format=lambda v: f"{v:+.1f}"))
        d = (tb - ta).abs()
        print(f"largest difference: Learning {d['Learning'].max():.1f} pp, HeldOut_mean {d['HeldOut_mean'].max():.1f} pp")
    return status


if __name__ == "__main__":
    sys.exit(main())

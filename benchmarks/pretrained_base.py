"""Does pre-training from config/pretrain_tiny.yaml rebuild the shipped base, byte for byte?

    .venv/bin/python benchmarks/pretrained_base.py            # this machine, --cores 2
    .venv/bin/python benchmarks/pretrained_base.py --avx2     # + the CPU capped to AVX2 with oneMKL's
                                                              #   vector math perturbed (another machine's
                                                              #   stand-in, as benchmarks/reproducibility.py)

What `make pretrain` does, in a fresh folder (fresh data too): the base of `config/config.yaml` +
`config/pretrain_tiny.yaml` through the workflow, then `lmmcl ship-base`; prints the sha256 of every
file of the rebuilt `model/` next to the committed `pretrained/tiny_default/model/`, the base's
held-out score is not computed here (the default's evaluation of its base does that). Exit status 1
when a file differs. tests/test_shipped_base.py checks the same mechanism on a small config in seconds.

Measured on an idle 2-core Intel Xeon (family 6, model 167), commit d521879 (the former base, 3000
steps): every file of the rebuilt model/ byte-identical to the committed one, 262 s. The base of
commit cc674be (4800 steps, the combined prior) was shipped by `make pretrain` itself (this
script's run A, 11.6 min on a slower 2-core Xeon of the same model), and every file equals the
seed-0 base of the earlier `config/tiny_priors.yaml` finding run, pre-trained in another folder
under another experiment name; the `--avx2` rebuild of that base was not run (about 4x as long).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHIPPED = ROOT / "pretrained" / "tiny_default"
BASE = "results/pretrain_tiny/seed0/base/manifest.json"

sys.path.insert(0, str(ROOT / "benchmarks"))
from reproducibility import AVX2_MACHINE, vml_perturbed  # noqa: E402


def rebuild(work: Path, cores: int, env_extra: dict) -> tuple[Path, float]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **env_extra)
    env.pop("LMMCL_NUMERICS", None)
    t0 = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] {work.name}: pre-training (--cores {cores}"
          f"{', CPU capped to AVX2' if env_extra else ''}) ...", flush=True)
    p = subprocess.run([str(BIN / "snakemake"), BASE, "--snakefile", str(ROOT / "workflow/Snakefile"),
                        "--directory", str(work), "--cores", str(cores), "--configfile",
                        str(ROOT / "config/config.yaml"), str(ROOT / "config/pretrain_tiny.yaml")],
                       cwd=work, env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{work.name}: snakemake failed ({p.returncode}):\n{(p.stdout + p.stderr)[-4000:]}")
    subprocess.run([str(BIN / "lmmcl"), "ship-base", str(work / BASE), "--out", str(work / "shipped")],
                   check=True, env=env, capture_output=True)
    seconds = time.time() - t0
    print(f"[{time.strftime('%H:%M:%S')}] {work.name}: {seconds:.0f} s", flush=True)
    return work / "shipped" / "model", seconds


def main() -> int:
    from lmmcl.hashing import file_hashes

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="default: a new temporary folder")
    ap.add_argument("--avx2", action="store_true", help="also rebuild with the CPU capped to AVX2 (--cores 1)")
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="lmmcl_pretrain_"))
    committed = file_hashes(SHIPPED / "model", suffixes=None)
    runs = [("A --cores 2", *rebuild(work / "A_cores2", 2, {}))]
    if a.avx2:
        runs.append(("B --cores 1, AVX2", *rebuild(work / "B_cores1_avx2", 1, {**AVX2_MACHINE, **vml_perturbed(work)})))
    status = 0
    for name, folder, seconds in runs:
        got = file_hashes(folder, suffixes=None)
        diff = sorted(f for f in set(committed) | set(got) if committed.get(f) != got.get(f))
        print(f"\n{name} ({seconds:.0f} s) vs {SHIPPED.relative_to(ROOT)}/model: "
              f"{'byte-identical' if not diff else 'DIFFERENT: ' + ', '.join(diff)}")
        for f in sorted(committed):
            print(f"  {f:28} {committed[f][:16]}  {'=' if got.get(f) == committed[f] else (got.get(f) or 'missing')[:16]}")
        status |= bool(diff)
    return status


if __name__ == "__main__":
    sys.exit(main())

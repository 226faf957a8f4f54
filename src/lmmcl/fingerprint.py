"""Where this machine stands against the reference numbers: a short fingerprint of the default.

`lmmcl fingerprint` prints, under `numerics: portable`, the machine, the sha256 of the default's
nine training splits (seed 0, 32 px), of the seeded initial model, and of the tiny base after N
pre-training steps with its first and last loss. Two machines that give the same fingerprint give
the same `make run` numbers; where they part, the first differing line says where (the data, the
initialisation, the first update or a later one); docs/reproducibility.md.

`--reference FILE` compares with a committed fingerprint (benchmarks/reference/fingerprint.txt)
and exits 1 at the first differing line. The promise holds under a condition, also in the file
(`condition` lines): an x86-64 CPU with AVX2 and FMA, and the C library's version (its libm
computes exp, log, sin, ... in ATen's scalar code and in our elementwise kernel). A machine
outside the condition gets the differences reported and exit status 0, with the unmet condition
named; inside it, any difference is a failure.
"""
from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path

from .hashing import sha256_file

# the default's training splits (config/config.yaml: data.synthetic, seed 0, 32 px) and base as they
# were when machines were first fingerprinted (the word tokenizer, 4 base skills): fixed, so that a
# fingerprint stays comparable with every one taken before; today's default base differs
SPLITS = {"syn_color": 2000, "syn_shape": 2000, "syn_position": 2000, "syn_prior": 4000, "syn_birds": 2000,
          "syn_count": 2000, "syn_texture": 2000, "syn_words": 2000, "syn_clock": 2000}
BASE_SKILLS = ("syn_color", "syn_shape", "syn_position", "syn_prior")
TINY = {"hidden_size": 128, "image_size": 32, "intermediate_size": 512, "num_heads": 8, "num_kv_heads": 4,
        "num_layers": 4, "patch_size": 8, "tokenizer": "word", "vision_layers": 2}
STEPS = (1, 2, 10, 100)
THREADS = 2


def _sha(path: Path) -> str:
    return sha256_file(path)[:32]


def libc() -> str:
    """The C library and its version, e.g. 'glibc 2.36' ('unknown' where none is found)."""
    name, version = platform.libc_ver()
    return f"{name} {version}".strip() if name else "unknown"


def _cpu_field(key: str) -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if re.match(rf"{key}\s*:", line):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def conditions() -> dict[str, str]:
    """What the reference's promise assumes of a machine, as this machine has it."""
    from .numerics import _cpu_flags, _is_x86

    isa = "x86-64 AVX2 FMA" if _is_x86() and {"avx2", "fma"} <= _cpu_flags() else f"{platform.machine()} (no AVX2+FMA)"
    return {"isa": isa, "libc": libc()}


def machine() -> list[str]:
    """Lines that describe this machine (printed, never compared)."""
    import numpy
    import PIL
    import torch

    try:
        cc = subprocess.run([os.environ.get("CC", "cc"), "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        cc = "none"
    from .numerics import _cpu_flags

    avx512 = sorted(f for f in _cpu_flags() if f.startswith("avx512"))
    return [f"cpu: {_cpu_field('model name')} (vendor {_cpu_field('vendor_id')}, family {_cpu_field('cpu family')}, "
            f"model {_cpu_field('model')})",
            f"avx512: {' '.join(avx512) or 'none'}",
            f"cc: {cc}",
            f"python: {platform.python_version()} torch {torch.__version__} numpy {numpy.__version__} pillow {PIL.__version__}"]


@contextlib.contextmanager
def _quiet():
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        yield


def compute(steps=STEPS, workdir: Path | None = None, progress=None) -> list[str]:
    """The compared lines: `data <split> <sha>`, `init <sha>`, `steps <N> <sha> loss <a> -> <b>`.
    Runs in this process under `numerics: portable` (configured here if torch is not loaded yet)."""
    from . import numerics

    if numerics.active() != "portable":
        if numerics.configure("portable", THREADS) != "portable":
            raise RuntimeError("fingerprint: torch was imported before numerics could be made portable")
    import torch

    torch.set_num_threads(THREADS)
    from .data.skills import write_skill
    from .models.tiny import TinySpec, save_tiny_llava

    with _quiet():  # the Trainer's imports and progress bars: not part of the fingerprint
        from .train.stage import build_base

    say = progress or (lambda msg: None)
    lines = []
    with tempfile.TemporaryDirectory(prefix="lmmcl_fingerprint_", dir=workdir) as tmp:
        w = Path(tmp)
        for skill, n in SPLITS.items():
            path = write_skill(skill, "train", n, 0, w / f"{skill}.parquet", image_size=32)
            lines.append(f"data {skill} {_sha(path)}")
            say(lines[-1])
        with _quiet():
            save_tiny_llava(w / "init", TinySpec.from_dict(TINY), seed=0)
        lines.append(f"init {_sha(w / 'init' / 'model.safetensors')}")
        say(lines[-1])
        for n in steps:
            hp = {"batch_size": 16, "lr": 1e-3, "role_lr": {}, "steps": int(n), "warmup_ratio": 0.05}
            model = {"family": "tiny_llava", "checkpoint": None, "tiny": TINY,
                     "base_training": {"hparams": hp, "skills": list(BASE_SKILLS)}}
            out = w / f"b{n}" / "base" / "manifest.json"
            with _quiet():
                m = build_base(model_cfg=model, experiment="tiny_default", out_manifest=out,
                               data=[w / f"{s}.parquet" for s in BASE_SKILLS], hparams=hp, seed=0,
                               threads=THREADS, tracking={"report_to": [], "logging_steps": None})
            met = m["metrics"]
            lines.append(f"steps {n} {_sha(out.parent / 'model' / 'model.safetensors')} "
                         f"loss {met['loss_first_log']:.3f} -> {met['loss_last_log']:.3f}")
            say(lines[-1])
    return lines


def read(path: Path) -> tuple[dict[str, str], list[str]]:
    """A fingerprint file: its `condition <key>: <value>` lines and its compared lines."""
    cond, lines = {}, []
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("condition "):
            key, _, value = line[len("condition "):].partition(":")
            cond[key.strip()] = value.strip()
        elif line.split()[0] in ("data", "init", "steps"):
            lines.append(line)
    return cond, lines


def _key(line: str) -> str:
    parts = line.split()
    return " ".join(parts[:2]) if parts[0] in ("data", "steps") else parts[0]


def compare(reference: list[str], here: list[str]) -> list[tuple[str, str]]:
    """(reference line, this machine's line) for each compared line that differs, in order; only
    the lines both have (a shorter run checks fewer steps)."""
    mine = {_key(line): line for line in here}
    return [(ref, mine[_key(ref)]) for ref in reference if _key(ref) in mine and mine[_key(ref)] != ref]


def unmet(reference_conditions: dict[str, str], here: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    here = conditions() if here is None else here
    return {k: (v, here.get(k, "?")) for k, v in reference_conditions.items() if here.get(k) != v}


def verdict(reference: tuple[dict[str, str], list[str]], lines: list[str], here: dict[str, str],
            name: str = "the reference") -> tuple[int, str]:
    """(exit status, report) of this machine's lines against a reference read by `read`: 1 at a
    difference when the machine meets the reference's conditions, else 0."""
    ref_cond, ref_lines = reference
    mine = {_key(line) for line in lines}
    checked = sum(_key(r) in mine for r in ref_lines)
    diffs, outside = compare(ref_lines, lines), unmet(ref_cond, here)
    if not diffs:
        return 0, f"# same as {name}: {checked} lines"
    ref, got = diffs[0]
    text = (f"# differs from {name} in {len(diffs)} of {checked} lines; first:\n"
            f"#   reference: {ref}\n#   here:      {got}")
    if outside:
        return 0, text + ("\n# outside the reference's condition ("
                          + "; ".join(f"{k}: reference {r}, here {h}" for k, (r, h) in outside.items())
                          + "): reported, not a failure")
    return 1, text + "\n# this machine meets the reference's condition: its numbers part from the reference machine's"

"""CPU numerics of every process that computes: the same bits on every machine, or the fastest.

`portable` (the default): the same config and seed give bit-identical weights and scores on any
x86-64 CPU (AVX2 and FMA, Intel or AMD) whatever the thread count, given the same C library
(glibc's libm rounds exp, sin, ... in ATen's scalar code and in elementwise.py); measured and
explained in docs/reproducibility.md. What it fixes, each measured to change the last bits on its own:
- matrix products: our kernel (lmmcl.numerics.kernel, one fma chain per output element) in
  place of oneMKL's CPU-specific ones (overrides.py); attention as explicit products (eager);
- ATen's vectorised kernels (elementwise ops, reductions, softmax, random init): pinned to their
  AVX2 build (`ATEN_CPU_CAPABILITY=avx2`) instead of the CPU's widest (AVX-512 where present);
- oneDNN off (`torch.backends.mkldnn`); patch-embedding convolutions as patchify + linear;
- oneMKL's reproducibility mode (`MKL_CBWR=COMPATIBLE`, no dynamic threads) for anything left
  in it (nothing in our models: tests/test_numerics.py checks with MKL_VERBOSE).
`native`: torch's defaults (oneMKL, the CPU's widest kernels): faster on AVX-512 machines,
but the numbers depend on the CPU. GPUs are not affected either way.

`configure()` must run before torch is imported (the CLI calls it first thing), because ATen and
oneMKL read their settings once (after that, a process keeps torch's defaults and records
"native"); `LMMCL_NUMERICS` carries the mode to processes a launcher (torchrun, accelerate) starts.
"""
from __future__ import annotations

import os
import platform
import sys
import warnings

MODES = ("portable", "native")
ENV = "LMMCL_NUMERICS"
DEFAULT = "portable"
ATEN_CAPABILITY = "avx2"  # the widest ATen build every x86-64 CPU of the last decade runs
_ENV_PINS = {"MKL_CBWR": "COMPATIBLE", "MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE"}

_active: str | None = None


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"numerics: {mode!r} is not a mode; allowed: {', '.join(MODES)}")
    return mode


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def configure(mode: str | None = None, threads: int | None = None) -> str:
    """Set this process's numerics (mode: argument, else $LMMCL_NUMERICS, else portable) and
    torch's thread count; returns the mode. Call before importing torch."""
    global _active
    mode = check_mode(mode or os.environ.get(ENV) or DEFAULT)
    fresh = "torch" not in sys.modules
    if mode == "portable" and not fresh and _active != "portable":
        # ATen and oneMKL have read their settings already: half-portable numbers would be
        # neither; this process keeps torch's defaults and says so (record() shows "native")
        warnings.warn("numerics: torch was imported before lmmcl.numerics.configure('portable'); this process "
                      "computes with torch's CPU defaults (numerics: native)", stacklevel=2)
        mode = "native"
    if fresh:
        os.environ[ENV] = mode  # for processes a launcher (torchrun, accelerate) starts from this one
    if mode == "portable":
        if _is_x86() and {"avx2", "fma"} <= _cpu_flags():
            os.environ["ATEN_CPU_CAPABILITY"] = ATEN_CAPABILITY
        os.environ.update(_ENV_PINS)
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    if mode == "portable":
        torch.backends.mkldnn.enabled = False
        from . import elementwise, overrides

        overrides.install()
        elementwise.install()
    _active = mode
    return mode


def active() -> str | None:
    """The mode configure() set in this process (None: not configured, torch's defaults)."""
    return _active


def prepare_model(model):
    """Under `portable`, the model parts that would call oneMKL directly become products our
    kernel computes: eager attention, patch embeddings as patchify + linear (patching.py).
    Returns the model (changed in place; its weights and state dict are untouched)."""
    import torch

    # on a machine with a GPU the model runs there (the Trainer, the evaluation wrapper): the CPU
    # kernels never see it, and the fused attention stays
    if _active == "portable" and not torch.cuda.is_available():
        from .patching import patchify_convolutions

        if hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("eager")
        patchify_convolutions(model)
    return model


def record() -> dict:
    """What computed this process's numbers, for manifests and evaluation records."""
    import torch

    rec = {"mode": _active or "unconfigured", "threads": torch.get_num_threads(),
           "aten_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
           "machine": platform.machine()}
    if _active == "portable":
        from . import kernel

        rec["gemm"] = f"lmmcl ({kernel.isa_name()})"
        rec["mkldnn"] = False
    else:
        rec["gemm"] = "torch default (oneMKL on CPU)"
        rec["mkldnn"] = bool(torch.backends.mkldnn.enabled)
    return rec

"""Build, load and call the portable kernels: matrix products (`gemm.c`: one fma chain per output
element) and elementwise math functions (`unary.c`: the IEEE square root, the C library's libm).

The C files are compiled into one library once per machine kind into a cache folder (`LMMCL_KERNEL_DIR`, default
`~/.cache/lmmcl/kernels`) with the system's C compiler (`$CC`, else `cc`), then loaded with
ctypes: no build step at install, no torch headers, under a second to compile. The file name
carries a hash of the sources and the flags, so an edited kernel is rebuilt, and it is written
under a temporary name and renamed, so processes that build it at the same time never load a
half-written library.

`LMMCL_GEMM_ISA` (avx512 | avx2 | generic) caps the code path, to check on one machine that
every path gives the same bits (tests/test_numerics.py); by default the widest the CPU has.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCES = (Path(__file__).with_name("gemm.c"), Path(__file__).with_name("unary.c"))
# -ffp-contract=off: the compiler never fuses a*b+c on its own; every fma is written out
FLAGS = ["-O3", "-shared", "-fPIC", "-fopenmp", "-ffp-contract=off"]
ISAS = {"generic": 0, "avx2": 1, "avx512": 2}
_I64 = ctypes.c_int64
_P = ctypes.c_void_p

_lib = None
_isa: int | None = None


class KernelBuildError(RuntimeError):
    pass


def kernel_dir() -> Path:
    return Path(os.environ.get("LMMCL_KERNEL_DIR") or Path.home() / ".cache" / "lmmcl" / "kernels")


def _compiler() -> str:
    cc = os.environ.get("CC") or next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if not cc or not shutil.which(cc.split()[0]):
        raise KernelBuildError(
            "numerics: portable needs a C compiler to build its kernels once (none of $CC, cc, gcc, "
            "clang found); install one (Debian: apt install gcc) or set numerics: native in the config")
    return cc


def library_path() -> Path:
    tag = hashlib.sha256(b"".join(s.read_bytes() for s in SOURCES) + " ".join(FLAGS).encode()).hexdigest()[:16]
    return kernel_dir() / f"lmmcl-{tag}-{platform.machine()}.so"


def build() -> Path:
    """The compiled kernel's path, compiling it first if this machine kind has none yet."""
    out = library_path()
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    cc = _compiler()
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        p = subprocess.run([*cc.split(), *FLAGS, "-o", tmp, *map(str, SOURCES), "-lm"], capture_output=True, text=True)
        if p.returncode != 0:
            raise KernelBuildError(f"numerics: compiling {', '.join(map(str, SOURCES))} with {cc} failed:\n{p.stderr[-2000:]}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def library():
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(build()))
        lib.lmmcl_gemm_best_isa.restype = ctypes.c_int
        lib.lmmcl_sgemm.restype = ctypes.c_int
        lib.lmmcl_sgemm.argtypes = [_I64] * 4 + [_P, _I64, _I64, _I64] * 2 + [_P, _I64, _I64, ctypes.c_int, ctypes.c_int]
        lib.lmmcl_dgemm.restype = None
        lib.lmmcl_dgemm.argtypes = [_I64] * 4 + [_P, _I64, _I64, _I64] * 2 + [_P, _I64, _I64, ctypes.c_int]
        for fn in (lib.lmmcl_unary_f32, lib.lmmcl_unary_f64):
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_int, _I64, _P, _P, ctypes.c_int]
        _lib = lib
    return _lib


def isa() -> int:
    """The code path in use: the CPU's widest, capped by LMMCL_GEMM_ISA."""
    global _isa
    if _isa is None:
        best = library().lmmcl_gemm_best_isa()
        cap = os.environ.get("LMMCL_GEMM_ISA", "").strip().lower()
        if cap and cap not in ISAS:
            raise ValueError(f"LMMCL_GEMM_ISA={cap!r}: allowed {sorted(ISAS)}")
        _isa = min(best, ISAS[cap]) if cap else best
    return _isa


def isa_name() -> str:
    return {v: k for k, v in ISAS.items()}[isa()]


def bmm(a, b, *, threads: int | None = None, path: str | None = None):
    """a[t] @ b[t] for 3-D CPU tensors a [T, M, K], b [T, K, N] of float32 or float64 (any
    strides) as a new contiguous [T, M, N] tensor. `threads` (default torch's) and `path`
    (default `isa()`; generic | avx2 | avx512, capped to the CPU's) never change the result."""
    import torch

    T, M, K = a.shape
    if b.dim() != 3 or b.shape[0] != T or b.shape[1] != K:
        raise ValueError(f"numerics: cannot multiply {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != b.dtype or a.device.type != "cpu" or b.device.type != "cpu":
        raise TypeError(f"numerics: both operands must be CPU tensors of one dtype, got {a.dtype} on {a.device} "
                        f"and {b.dtype} on {b.device}")
    N = b.shape[2]
    out = torch.empty((T, M, N), dtype=a.dtype, device=a.device)
    threads = max(1, int(threads or torch.get_num_threads()))
    args = [T, M, N, K, a.data_ptr(), a.stride(0), a.stride(1), a.stride(2),
            b.data_ptr(), b.stride(0), b.stride(1), b.stride(2), out.data_ptr(), out.stride(0), out.stride(1), threads]
    if a.dtype == torch.float32:
        code = isa() if path is None else min(library().lmmcl_gemm_best_isa(), ISAS[path])
        if library().lmmcl_sgemm(*args, code) != 0:
            raise MemoryError(f"numerics: out of memory packing a [{T}, {M}, {K}] @ [{T}, {K}, {N}] product")
    elif a.dtype == torch.float64:
        library().lmmcl_dgemm(*args)
    else:
        raise TypeError(f"numerics: the kernel multiplies float32 or float64, not {a.dtype}")
    return out


def best_isa_name() -> str:
    return {v: k for k, v in ISAS.items()}[library().lmmcl_gemm_best_isa()]

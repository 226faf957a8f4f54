"""Route ATen's oneMKL-backed elementwise math functions through `unary.c`.

torch's CPU kernels of sqrt, exp, log, log2, log10, sin, cos, tan, tanh, erf, erfc, erfinv, asin,
acos and atan hand float32 and float64 tensors to oneMKL's vector math (VML), which picks its code
by CPU even with `MKL_CBWR=COMPATIBLE`: its float32 square root refines the `rsqrtps` estimate,
and Intel and AMD CPUs give other last bits (docs/reproducibility.md). AdamW takes a square
root of every parameter's second moment each step, so two machines' weights part at the first
update. Registered as the CPU implementation of these operators (`torch.library`, below
autograd), unary.c computes them instead: the IEEE square root, the C library's libm otherwise.
(VML's other function in ATen, trunc, is exact: one result anywhere.)
tests/test_numerics.py checks, with a library preloaded in front of oneMKL's, that a training step
and a generation call no VML function at all.
"""
from __future__ import annotations

import torch

from . import kernel
from .overrides import register_cpu

# operator -> its code in unary.c (the same order as its enum)
OPS = ("sqrt", "exp", "log", "log2", "log10", "sin", "cos", "tan", "tanh", "erf", "erfc", "erfinv",
       "asin", "acos", "atan")
# what torch computes in complex numbers too (not in VML: numpy's, that is the C library's, csqrt etc.)
_COMPLEX = {"sqrt": "sqrt", "exp": "exp", "log": "log", "log2": "log2", "log10": "log10", "sin": "sin",
            "cos": "cos", "tan": "tan", "tanh": "tanh", "asin": "arcsin", "acos": "arccos", "atan": "arctan"}

_LIBRARY = None


def compute(name: str, x: torch.Tensor, threads: int | None = None) -> torch.Tensor:
    """`name`(x) for a CPU tensor, as torch computes it (integers and bool to the default float
    dtype, float16/bfloat16 through float32), with unary.c's bits; the result has x's layout."""
    code = OPS.index(name)
    x = x.detach()
    if x.is_complex():
        return _complex(name, x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if x.dtype in (torch.float16, torch.bfloat16):
        return compute(name, x.float(), threads).to(x.dtype)
    if x.dtype not in (torch.float32, torch.float64):
        raise NotImplementedError(f"numerics: portable has no CPU {name} for {x.dtype}; set numerics: native")
    src = x if x.is_contiguous() else x.contiguous()
    out = torch.empty_like(src)
    if src.numel():
        fn = kernel.library().lmmcl_unary_f32 if x.dtype == torch.float32 else kernel.library().lmmcl_unary_f64
        fn(code, src.numel(), src.data_ptr(), out.data_ptr(), max(1, int(threads or torch.get_num_threads())))
    if src is not x:  # keep x's strides (channels-last and the like), as ATen's kernels do
        out = torch.empty_like(x).copy_(out)
    return out


def _complex(name: str, x: torch.Tensor) -> torch.Tensor:
    if name not in _COMPLEX:
        raise RuntimeError(f"\"{name}\" not implemented for '{str(x.dtype).removeprefix('torch.').capitalize()}'")
    import numpy as np

    res = getattr(np, _COMPLEX[name])(x.resolve_conj().resolve_neg().numpy())
    return torch.empty_like(x).copy_(torch.from_numpy(np.asarray(res, dtype=res.dtype)))


def _check_cast(name: str, result: torch.Tensor, target: torch.Tensor):
    if not torch.can_cast(result.dtype, target.dtype):
        raise RuntimeError(f"{name}: result type {result.dtype} can't be cast to the desired output type {target.dtype}")


def _kernels(name: str) -> dict:
    def plain(self):
        return compute(name, self)

    def in_place(self):
        res = compute(name, self)
        _check_cast(name + "_", res, self)
        return self.copy_(res)

    def out_variant(self, *, out):
        res = compute(name, self)
        _check_cast(name, res, out)
        out.resize_(res.shape)
        return out.copy_(res)

    return {name: plain, name + "_": in_place, name + ".out": out_variant}


KERNELS = {k: fn for name in OPS for k, fn in _kernels(name).items()}


def install() -> None:
    """Register the kernels for the CPU dispatch key (once per process; there is no uninstall)."""
    global _LIBRARY
    if _LIBRARY is not None:
        return
    if kernel.library().lmmcl_unary_op_count() != len(OPS):
        raise RuntimeError(f"numerics: unary.c has {kernel.library().lmmcl_unary_op_count()} functions, "
                           f"elementwise.OPS {len(OPS)}")
    _LIBRARY = register_cpu(KERNELS)

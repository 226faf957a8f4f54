"""Route every CPU matrix product through the portable kernel (lmmcl.numerics.kernel).

torch computes CPU float32 products in Intel oneMKL, whose kernels, blockings and summation
orders depend on the CPU model and vendor (AVX-512 vs AVX2, Intel vs AMD): the same training run
gives other weights on another machine. Registering our kernel as the CPU implementation of the
ATen product operators (`torch.library`, below autograd, so their derivative formulas call it
too) takes oneMKL out of the path: mm, addmm, bmm, baddbmm, mv, addmv, dot. Two model parts
call oneMKL without these operators, so lmmcl.numerics.prepare_model rewrites them as products:
attention (the fused `scaled_dot_product_attention` CPU kernel; `eager` instead) and the
patch-embedding convolutions (their CPU backward; patchify + linear instead, patching.py).
tests/test_numerics.py checks with `MKL_VERBOSE=1` that a training step and a generation call
no oneMKL product at all.
"""
from __future__ import annotations

import warnings

import torch

from . import kernel

_LIBRARY = None


def _product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a [T, M, K] @ b [T, K, N] for CPU tensors of one dtype."""
    if a.dtype != b.dtype:
        raise RuntimeError(f"expected both operands of a matrix product to have the same dtype, got {a.dtype} and {b.dtype}")
    if a.dtype in (torch.float32, torch.float64):
        return kernel.bmm(a, b)
    if a.dtype in (torch.float16, torch.bfloat16):
        return kernel.bmm(a.float(), b.float()).to(a.dtype)
    if not a.is_floating_point() and not a.is_complex():  # integer products are exact anyway
        return torch.from_numpy((a.numpy() @ b.numpy()).astype(a.numpy().dtype, copy=False))
    raise NotImplementedError(f"numerics: portable has no {a.dtype} matrix product on CPU; set numerics: native")


def _check_2d(name: str, a, b):
    if a.dim() != 2 or b.dim() != 2:
        raise RuntimeError(f"{name}: expected 2-D tensors, got {a.dim()}-D and {b.dim()}-D")
    if a.shape[1] != b.shape[0]:
        raise RuntimeError(f"{name}: mat1 and mat2 shapes cannot be multiplied ({a.shape[0]}x{a.shape[1]} and "
                           f"{b.shape[0]}x{b.shape[1]})")


def _mm(self, mat2):
    _check_2d("mm", self, mat2)
    return _product(self.unsqueeze(0), mat2.unsqueeze(0))[0]


def _bmm(self, mat2):
    if self.dim() != 3 or mat2.dim() != 3 or self.shape[0] != mat2.shape[0] or self.shape[2] != mat2.shape[1]:
        raise RuntimeError(f"bmm: cannot multiply {tuple(self.shape)} and {tuple(mat2.shape)}")
    return _product(self, mat2)


def _mv(self, vec):
    if self.dim() != 2 or vec.dim() != 1 or self.shape[1] != vec.shape[0]:
        raise RuntimeError(f"mv: cannot multiply {tuple(self.shape)} and {tuple(vec.shape)}")
    return _product(self.unsqueeze(0), vec.view(1, -1, 1))[0, :, 0]


def _dot(self, tensor):
    if self.dim() != 1 or tensor.dim() != 1 or self.shape[0] != tensor.shape[0]:
        raise RuntimeError(f"dot: cannot multiply {tuple(self.shape)} and {tuple(tensor.shape)}")
    return _product(self.view(1, 1, -1), tensor.view(1, -1, 1)).reshape(())


def _scaled_sum(self, product, beta, alpha):
    """beta * self + alpha * product (self ignored when beta == 0, as in BLAS)."""
    if alpha != 1:
        product = product.mul_(alpha)
    if beta == 0:
        return product
    return product.add_(self if beta == 1 else self * beta)


def _addmm(self, mat1, mat2, *, beta=1, alpha=1):
    return _scaled_sum(self, _mm(mat1, mat2), beta, alpha)


def _baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
    return _scaled_sum(self, _bmm(batch1, batch2), beta, alpha)


def _addmv(self, mat, vec, *, beta=1, alpha=1):
    return _scaled_sum(self, _mv(mat, vec), beta, alpha)


def _out(fn):
    def with_out(*args, out, **kwargs):
        res = fn(*args, **kwargs)
        out.resize_(res.shape)
        return out.copy_(res)
    return with_out


def _inplace(fn):
    def in_place(self, *args, **kwargs):
        return self.copy_(fn(self, *args, **kwargs))
    return in_place


KERNELS = {
    "mm": _mm, "mm.out": _out(_mm),
    "addmm": _addmm, "addmm.out": _out(_addmm), "addmm_": _inplace(_addmm),
    "bmm": _bmm, "bmm.out": _out(_bmm),
    "baddbmm": _baddbmm, "baddbmm.out": _out(_baddbmm), "baddbmm_": _inplace(_baddbmm),
    "mv": _mv, "mv.out": _out(_mv),
    "addmv": _addmv, "addmv.out": _out(_addmv), "addmv_": _inplace(_addmv),
    "dot": _dot, "dot.out": _out(_dot),
}


def install() -> None:
    """Register the kernels for the CPU dispatch key (once per process; there is no uninstall)."""
    global _LIBRARY
    if _LIBRARY is not None:
        return
    kernel.library()  # build/load first: a missing compiler fails here, before anything is replaced
    _LIBRARY = register_cpu(KERNELS)


def register_cpu(kernels: dict):
    """A torch.library that registers each kernel as the CPU implementation of its aten operator
    ("mm", "mm.out", "sqrt_", ...); keep it referenced, or the registrations go with it."""
    lib = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding a previously registered kernel": the point
        for name, fn in kernels.items():
            lib.impl(name, fn, "CPU")
    return lib

"""Model parts rewritten as plain matrix products under portable numerics.

Two parts of the vision-language models call oneMKL without going through the ATen product
operators that lmmcl.numerics.overrides replaces:
- the fused CPU attention kernel (`scaled_dot_product_attention`): the model runs its `eager`
  attention instead, the same softmax(QK^T)V as explicit products;
- the CPU backward of a convolution (a direct oneMKL call inside ATen). Every convolution in these
  models is a patch embedding (kernel = stride, no padding, dilation or groups), which is exactly
  "cut the image into patches, then one linear map per patch": the forward is rewritten as that
  (a reshape/permute, which copies, and `F.linear`), so forward and backward are products too.
  Other convolutions are left alone (their numbers may then depend on the CPU).
Only `forward` is replaced, per module instance: parameters, state dicts and checkpoints are
untouched.
"""
from __future__ import annotations

import math
import types

import torch
import torch.nn.functional as F

PATCHIFIED = "_lmmcl_patchify"


def is_patch_embedding(conv) -> bool:
    k = tuple(conv.kernel_size)
    return (tuple(conv.stride) == k and all(p == 0 for p in _padding(conv)) and conv.groups == 1
            and all(d == 1 for d in conv.dilation) and not getattr(conv, "transposed", False))


def _padding(conv):
    return (0,) * len(conv.kernel_size) if conv.padding == "valid" else tuple(conv.padding)


def _patchify_forward(self, x):
    k = tuple(self.kernel_size)
    d = len(k)
    unbatched = x.dim() == d + 1
    if unbatched:
        x = x.unsqueeze(0)
    n, c = x.shape[:2]
    out_sizes = [s // ki for s, ki in zip(x.shape[2:], k)]
    x = x[(slice(None), slice(None), *(slice(0, o * ki) for o, ki in zip(out_sizes, k)))]
    # [N, C, o1, k1, o2, k2, ...] -> [N, o1, o2, ..., C, k1, k2, ...]: the weight's (C, k...) order
    x = x.reshape(n, c, *[v for o, ki in zip(out_sizes, k) for v in (o, ki)])
    perm = [0, *range(2, 2 + 2 * d, 2), 1, *range(3, 3 + 2 * d, 2)]
    patches = x.permute(perm).reshape(n, math.prod(out_sizes), c * math.prod(k))
    y = F.linear(patches, self.weight.reshape(self.out_channels, -1), self.bias)  # [N, L, O]
    y = y.transpose(1, 2).reshape(n, self.out_channels, *out_sizes)
    return y[0] if unbatched else y


def patchify_convolutions(model) -> int:
    """Rewrite every patch-embedding Conv1d/2d/3d of `model` as patchify + linear; returns how many."""
    n = 0
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)) and is_patch_embedding(module) \
                and not getattr(module, PATCHIFIED, False) and module.padding_mode == "zeros":
            module.forward = types.MethodType(_patchify_forward, module)
            setattr(module, PATCHIFIED, True)
            n += 1
    return n

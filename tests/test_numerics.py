"""Portable numerics (lmmcl.numerics): the matrix kernel gives the same bits on every code path
and thread count; under `numerics: portable` no oneMKL product runs in a training step or a
generation; the patch-embedding rewrite equals the convolution; bad settings are refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmmcl import numerics
from lmmcl.numerics import kernel
from lmmcl.numerics.patching import is_patch_embedding, patchify_convolutions

ROOT = Path(__file__).resolve().parents[1]
PATHS = [p for p in ("generic", "avx2", "avx512") if kernel.ISAS[p] <= kernel.ISAS[kernel.best_isa_name()]]


def _operands(T, M, K, N, *, transpose_a=False, transpose_b=False, expand_b=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(T, K, M, generator=g).transpose(1, 2) if transpose_a else torch.randn(T, M, K, generator=g)
    if expand_b:
        b = torch.randn(1, K, N, generator=g).expand(T, K, N)  # batch stride 0
    else:
        b = torch.randn(T, N, K, generator=g).transpose(1, 2) if transpose_b else torch.randn(T, K, N, generator=g)
    return a, b


SHAPES = [(1, 1, 1, 1), (1, 5, 7, 3), (2, 17, 33, 65), (3, 64, 128, 130), (1, 720, 128, 512), (4, 9, 0, 5)]


@pytest.mark.parametrize("T,M,K,N", SHAPES)
@pytest.mark.parametrize("layout", ["plain", "transposed", "expanded"])
def test_same_bits_on_every_path_and_thread_count(T, M, K, N, layout):
    a, b = _operands(T, M, K, N, transpose_a=layout == "transposed", transpose_b=layout == "transposed",
                     expand_b=layout == "expanded")
    ref = kernel.bmm(a, b, threads=1, path="generic")
    assert ref.shape == (T, M, N) and ref.is_contiguous()
    for path in PATHS:
        for threads in (1, 2, 3):
            assert torch.equal(kernel.bmm(a, b, threads=threads, path=path), ref), (path, threads)
    exact = torch.bmm(a.double(), b.double()) if K else torch.zeros(T, M, N, dtype=torch.float64)
    assert torch.allclose(ref.double(), exact, rtol=1e-5, atol=1e-5 * max(K, 1) ** 0.5)


def test_each_element_is_one_fma_chain_in_k_order():
    """The contract itself, on numbers where the order shows: ((1e8 + 1) - 1e8) in float32."""
    a = torch.tensor([[[1e8, 1.0, -1e8]]])
    b = torch.ones(1, 3, 1)
    assert kernel.bmm(a, b).item() == 0.0  # fma(1,1,1e8) rounds to 1e8, then -1e8: 0 (a pairwise sum gives 1)
    c = torch.tensor([[[2.0 ** -30, 1.0, 2.0 ** -30]]])
    assert kernel.bmm(c, b, path="generic").item() == kernel.bmm(c, b).item()


def test_float64_and_refusals():
    a, b = _operands(2, 7, 9, 5)
    d = kernel.bmm(a.double(), b.double())
    assert d.dtype == torch.float64 and torch.allclose(d, torch.bmm(a.double(), b.double()))
    with pytest.raises(TypeError, match="one dtype"):
        kernel.bmm(a, b.double())
    with pytest.raises(ValueError, match="cannot multiply"):
        kernel.bmm(a, b[:, :3])


def test_patch_embedding_rewrite_equals_the_convolution():
    torch.manual_seed(0)
    for conv, x in [(torch.nn.Conv2d(3, 8, 4, stride=4), torch.randn(2, 3, 18, 16)),
                    (torch.nn.Conv3d(3, 6, (2, 4, 4), stride=(2, 4, 4), bias=False), torch.randn(2, 3, 4, 8, 8)),
                    (torch.nn.Conv2d(3, 8, 4, stride=4), torch.randn(3, 16, 16))]:  # unbatched
        ref = conv(x)
        model = torch.nn.Sequential(conv)
        assert patchify_convolutions(model) == 1 and patchify_convolutions(model) == 0  # once
        assert torch.allclose(conv(x), ref, atol=1e-5)
        assert set(dict(model.state_dict())) == {k for k in dict(conv.named_parameters(prefix="0"))}
    assert not is_patch_embedding(torch.nn.Conv2d(3, 8, 3, stride=1, padding=1))
    assert not is_patch_embedding(torch.nn.Conv2d(3, 8, 4, stride=4, groups=1, dilation=2))


def test_bad_settings_are_refused(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="allowed: portable, native"):
        numerics.configure("fast")
    # torch is imported in this process: portable can no longer pin ATen / oneMKL, so it keeps
    # torch's defaults and says so
    with pytest.warns(UserWarning, match="before lmmcl.numerics.configure"):
        assert numerics.configure("portable") == "native"
    assert numerics.active() == "native" and numerics.record()["gemm"].startswith("torch default")
    p = subprocess.run([sys.executable, "-m", "lmmcl.cli", "train-stage", "--numerics", "bogus"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "invalid choice: 'bogus'" in p.stderr and "portable" in p.stderr
    monkeypatch.setenv("LMMCL_KERNEL_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(kernel.KernelBuildError, match="needs a C compiler"):
        kernel.build()


# One portable process: a training step (base recipe: every tensor trains) and a generation of the
# tiny default model, under MKL_VERBOSE; prints the weights' digest and what ran.
STEP = r"""
import hashlib, json, sys
from lmmcl import numerics
numerics.configure(sys.argv[2], int(sys.argv[1]))
import torch
from lmmcl.models.tiny import TinySpec, build_tiny_llava
from lmmcl.train.collate import AnswerOnlyCollator
from lmmcl.data.synthetic import generate
spec = TinySpec.from_dict({"hidden_size": 64, "intermediate_size": 128, "num_layers": 2, "num_heads": 4,
                           "num_kv_heads": 2, "vision_layers": 2, "image_size": 32, "patch_size": 8})
model, proc = build_tiny_llava(spec, seed=0)
numerics.prepare_model(model)
rows = generate("syn_count", "train", 8, seed=0, image_size=32)
batch = AnswerOnlyCollator(proc, end_of_turn="</s>")(rows)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
print("=== STEP", flush=True)
for _ in range(2):
    loss = model(**batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
with torch.no_grad():
    gen = model.generate(**{k: v[:4] for k, v in batch.items() if k != "labels"}, max_new_tokens=3)
print("=== END", flush=True)
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
print("RESULT " + json.dumps({"digest": digest, "tokens": gen[:, -3:].tolist(), "numerics": numerics.record()}))
"""


def _step(threads=1, mode="portable", **env):
    e = dict(os.environ, HF_HUB_OFFLINE="1", MKL_VERBOSE="1", **env)
    p = subprocess.run([sys.executable, "-c", STEP, str(threads), mode], capture_output=True, text=True, env=e, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    inside = p.stdout.split("=== STEP", 1)[1].split("=== END", 1)[0]
    result = json.loads(p.stdout.split("RESULT ", 1)[1])
    return result, [line for line in inside.splitlines() if line.startswith("MKL_VERBOSE") and "GEMM" in line]


@pytest.fixture(scope="module")
def portable_step():
    return _step()


def test_no_onemkl_product_runs_under_portable(portable_step):
    result, mkl_products = portable_step
    assert mkl_products == []
    rec = result["numerics"]
    assert rec["mode"] == "portable" and rec["gemm"].startswith("lmmcl (") and rec["mkldnn"] is False
    if {"avx2", "fma"} <= numerics._cpu_flags():
        assert rec["aten_capability"] == "AVX2"


def test_same_weights_on_a_narrower_code_path(portable_step):
    """As on a CPU without AVX-512: our kernel's AVX2 path, oneMKL/oneDNN/NumPy capped too."""
    result, _ = portable_step
    capped, mkl_products = _step(LMMCL_GEMM_ISA="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2", ONEDNN_MAX_CPU_ISA="AVX2",
                                 NPY_DISABLE_CPU_FEATURES="X86_V4,AVX512_ICL,AVX512_SPR")
    assert mkl_products == []
    assert capped["digest"] == result["digest"] and capped["tokens"] == result["tokens"]


def test_the_caps_do_change_native_numbers():
    """The control: without portable numerics the same capping changes the weights, so the
    comparison above (and tests/test_reproducibility.py) can see a difference."""
    native, mkl_products = _step(mode="native")
    assert mkl_products and native["numerics"]["mode"] == "native"
    capped, _ = _step(mode="native", ATEN_CPU_CAPABILITY="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    if native["numerics"]["aten_capability"] == "AVX2":
        pytest.skip("this CPU has no AVX-512: capping to AVX2 changes nothing here")
    assert capped["digest"] != native["digest"]

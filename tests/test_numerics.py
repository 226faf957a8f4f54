"""Portable numerics (lmmcl.numerics): the matrix kernel and the elementwise functions give the
same bits on every code path and thread count; under `numerics: portable` no oneMKL product and
no oneMKL vector-math function runs in a training step or a generation (and results that another
CPU's oneMKL would round otherwise leave the weights alone); the patch-embedding rewrite equals
the convolution; bad settings are refused."""
from __future__ import annotations

import json
import os
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lmmcl import numerics
from lmmcl.numerics import elementwise, kernel
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


SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 1e-40, -1e-40, 1e30, -1e30, 88.0, 89.0, -104.0, float("inf"),
           float("-inf"), float("nan"), 1 - 2 ** -24, -(1 - 2 ** -24)]


def _libm(name, values):
    """The C library's double function of each value, called directly."""
    import ctypes
    import ctypes.util

    fn = getattr(ctypes.CDLL(ctypes.util.find_library("m")), name)
    fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_double]
    return torch.tensor([fn(v) for v in values], dtype=torch.float64)


def test_square_root_is_the_correctly_rounded_one():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.rand(200_000, generator=g) * 1e4, torch.tensor(SPECIAL)])
    got = elementwise.compute("sqrt", x)
    with np.errstate(invalid="ignore"):  # sqrt(-1): NaN, as in IEEE 754
        want = torch.from_numpy(np.sqrt(x.numpy()))  # sqrtps / sqrtss: correctly rounded
        want64 = torch.from_numpy(np.sqrt(x.double().numpy()))
    assert torch.equal(got.view(torch.int32), want.view(torch.int32))
    assert torch.equal(elementwise.compute("sqrt", x.double()).view(torch.int64), want64.view(torch.int64))


@pytest.mark.parametrize("name", [n for n in elementwise.OPS if n not in ("sqrt", "erfinv")])
def test_functions_are_the_c_librarys_double_rounded_to_float(name):
    g = torch.Generator().manual_seed(1)
    x = torch.cat([(torch.rand(3000, generator=g) * 2 - 1) * (1 if name in ("asin", "acos") else 30),
                   torch.tensor(SPECIAL)])
    want = _libm(name, x.double().tolist())
    got64 = elementwise.compute(name, x.double())
    assert torch.equal(got64.isnan(), want.isnan()) and torch.equal(got64[~want.isnan()], want[~want.isnan()])
    got32 = elementwise.compute(name, x)
    assert got32.dtype == torch.float32
    assert torch.equal(got32.view(torch.int32)[~want.isnan()], want.float().view(torch.int32)[~want.isnan()])


def test_erfinv_inverts_erf():
    g = torch.Generator().manual_seed(2)
    y = torch.cat([torch.rand(100_000, generator=g) * 2 - 1, torch.tensor([1 - 2 ** -24, -(1 - 2 ** -24), 1e-30])])
    x = elementwise.compute("erfinv", y.double())
    assert (torch.erf(x) - y.double()).abs().max() < 1e-15  # erf(x) near y: Newton converged in double
    x32 = elementwise.compute("erfinv", y)
    assert ((x32.double() - x) / x).abs().max() < 2 ** -24  # the double result, rounded to float32
    edge = elementwise.compute("erfinv", torch.tensor([1.0, -1.0, 0.0, -0.0, 1.5, float("nan")]))
    assert edge[:2].tolist() == [float("inf"), float("-inf")] and edge[2:4].tolist() == [0.0, 0.0]
    assert edge[3].view(torch.int32) != 0 and edge[4:].isnan().all()  # -0 keeps its sign


def test_elementwise_threads_dtypes_and_layouts():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(300_001, generator=g) + 0.1
    for name in ("sqrt", "exp", "log", "sin"):
        assert torch.equal(elementwise.compute(name, x, threads=1), elementwise.compute(name, x, threads=2))
    assert torch.equal(elementwise.compute("sqrt", torch.tensor([4, 9])), torch.tensor([2.0, 3.0]))  # ints: float
    h = torch.tensor([2.0, 3.0], dtype=torch.bfloat16)
    assert elementwise.compute("exp", h).dtype == torch.bfloat16
    assert torch.equal(elementwise.compute("exp", h), elementwise.compute("exp", h.float()).bfloat16())
    t = torch.rand(4, 6, generator=g).t()  # a transposed view: same strides out, as ATen keeps them
    r = elementwise.compute("cos", t)
    assert r.stride() == t.stride() and torch.equal(r, elementwise.compute("cos", t.contiguous()))
    c = torch.tensor([-4 + 0j, 1j])
    assert torch.allclose(elementwise.compute("sqrt", c), torch.tensor([2j, (1 + 1j) / 2 ** 0.5]))
    with pytest.raises(RuntimeError, match="not implemented for 'Complex"):
        elementwise.compute("erf", c)
    assert elementwise.compute("exp", torch.empty(0, 3)).shape == (0, 3)


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
# tiny default model, under MKL_VERBOSE and with tests/vml_shim.c preloaded; prints the weights'
# digest and what ran.
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


_RUNS = itertools.count()


def _step(shim, threads=1, mode="portable", perturb=False, **env):
    log = shim.with_name(f"vml-{next(_RUNS)}.log")
    e = dict(os.environ, HF_HUB_OFFLINE="1", MKL_VERBOSE="1", LD_PRELOAD=str(shim), LMMCL_VML_LOG=str(log),
             LMMCL_VML_SHIM="perturb" if perturb else "count", **env)
    p = subprocess.run([sys.executable, "-c", STEP, str(threads), mode], capture_output=True, text=True, env=e, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    inside = p.stdout.split("=== STEP", 1)[1].split("=== END", 1)[0]
    result = json.loads(p.stdout.split("RESULT ", 1)[1])
    result["vml"] = {name: int(calls) for name, calls, _ in (line.split() for line in log.read_text().splitlines())}
    return result, [line for line in inside.splitlines() if line.startswith("MKL_VERBOSE") and "GEMM" in line]


@pytest.fixture(scope="module")
def portable_step(vml_shim):
    return _step(vml_shim)


@pytest.fixture(scope="module")
def native_step(vml_shim):
    return _step(vml_shim, mode="native")


def test_no_onemkl_product_or_vector_math_runs_under_portable(portable_step):
    result, mkl_products = portable_step
    assert mkl_products == []
    assert result["vml"] == {}
    rec = result["numerics"]
    assert rec["mode"] == "portable" and rec["gemm"].startswith("lmmcl (") and rec["mkldnn"] is False
    if {"avx2", "fma"} <= numerics._cpu_flags():
        assert rec["aten_capability"] == "AVX2"


def test_same_weights_on_a_narrower_code_path(portable_step, vml_shim):
    """As on a CPU without AVX-512: our kernel's AVX2 path, oneMKL/oneDNN/NumPy capped too."""
    result, _ = portable_step
    capped, mkl_products = _step(vml_shim, LMMCL_GEMM_ISA="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2", ONEDNN_MAX_CPU_ISA="AVX2",
                                 NPY_DISABLE_CPU_FEATURES="X86_V4,AVX512_ICL,AVX512_SPR")
    assert mkl_products == []
    assert capped["digest"] == result["digest"] and capped["tokens"] == result["tokens"]


def test_same_weights_when_onemkl_rounds_otherwise(portable_step, native_step, vml_shim):
    """The stand-in for a second CPU's oneMKL (its vector math rounding results otherwise, as
    Intel and AMD CPUs do): every VML result one ulp off. Portable weights do not move; native
    ones (the control, through oneMKL's square root in AdamW) do."""
    result, _ = portable_step
    perturbed, _ = _step(vml_shim, perturb=True)
    assert perturbed["digest"] == result["digest"] and perturbed["tokens"] == result["tokens"]
    native, _ = native_step
    native_perturbed, _ = _step(vml_shim, mode="native", perturb=True)
    assert native["vml"].get("vmsSqrt", 0) > 0
    assert native_perturbed["digest"] != native["digest"]


def test_the_caps_do_change_native_numbers(native_step, vml_shim):
    """The control: without portable numerics the same capping changes the weights, so the
    comparison above (and tests/test_reproducibility.py) can see a difference."""
    native, mkl_products = native_step
    assert mkl_products and native["numerics"]["mode"] == "native"
    capped, _ = _step(vml_shim, mode="native", ATEN_CPU_CAPABILITY="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    if native["numerics"]["aten_capability"] == "AVX2":
        pytest.skip("this CPU has no AVX-512: capping to AVX2 changes nothing here")
    assert capped["digest"] != native["digest"]

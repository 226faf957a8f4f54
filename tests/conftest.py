import os

# Tests never reach a hub: everything is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(scope="session")
def tiny_model():
    """A fresh tiny LLaVA (model, processor); tests that mutate it must build their own."""
    from lmmcl.models.tiny import TinySpec, build_tiny_llava

    return build_tiny_llava(TinySpec(), seed=0)


@pytest.fixture(scope="session")
def vml_shim(tmp_path_factory):
    """tests/vml_shim.c built: preloaded (LD_PRELOAD), it counts every oneMKL vector-math call
    libtorch_cpu makes, and with LMMCL_VML_SHIM=perturb moves each result by one ulp, as another
    CPU's oneMKL code path may round it: a stand-in for a second machine."""
    import subprocess
    from pathlib import Path

    from lmmcl.numerics import kernel

    out = tmp_path_factory.mktemp("shim") / "vml_shim.so"
    src = Path(__file__).with_name("vml_shim.c")
    p = subprocess.run([*kernel._compiler().split(), "-shared", "-fPIC", "-O1", "-o", str(out), str(src), "-ldl"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return out


@pytest.fixture()
def caches(tmp_path, monkeypatch):
    """A temporary HF_HOME for in-process calls: hub cache and datasets cache (lmms-eval's pin)."""
    from huggingface_hub import constants

    home = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("LMMS_EVAL_DATASETS_CACHE", str(home / "datasets"))
    return home

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

"""`tiny_llava`: the embedded default, a tiny LlavaForConditionalGeneration (models/tiny.py)."""


def build_tiny(seed: int = 0, spec=None):
    from ..tiny import TinySpec, build_tiny_llava

    return build_tiny_llava(spec or TinySpec(), seed=seed)

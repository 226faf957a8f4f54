"""`tiny_llava`: the embedded default, a tiny LlavaForConditionalGeneration (models/tiny.py)."""
from . import LLAVA_ROLES, Family, register


def build_tiny(seed: int = 0, spec=None):
    from ..tiny import TinySpec, build_tiny_llava

    return build_tiny_llava(spec or TinySpec(), seed=seed)


FAMILY = register(Family(
    name="tiny_llava", model_class="LlavaForConditionalGeneration", model_type="llava",
    default_checkpoint=None, roles=LLAVA_ROLES, hf_config=None,
    # None: label everything after the generation prompt (" answer</s>\n"), the default's behaviour
    end_of_turn=None,
    build_tiny=build_tiny,
))

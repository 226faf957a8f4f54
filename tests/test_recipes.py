import re

import pytest

from lmmcl import recipes
from lmmcl.models.tiny import TinySpec, build_tiny_llava

# Tiny default (hidden 64, FFN 256, 2 LLM layers, 4 heads / 2 KV heads, 2 CLIP layers of 64).
# q/o: 64x64, k/v: 64x32 -> 12,288 per layer; gate/up/down: 64x256 each -> 16,384.
EXPECTED = {
    "sa_proj": (24_576, r"^model\.language_model\.layers\.\d+\.self_attn\.(q|k|v|o)_proj\.weight$", 8),
    "sa_qkv": (16_384, r"^model\.language_model\.layers\.\d+\.self_attn\.(q|k|v)_proj\.weight$", 6),
    "sa_vo": (12_288, r"^model\.language_model\.layers\.\d+\.self_attn\.(v|o)_proj\.weight$", 4),
    "mlp": (98_304, r"^model\.language_model\.layers\.\d+\.mlp\.(gate|up|down)_proj\.weight$", 6),
    "mlp_gate_up": (65_536, r"^model\.language_model\.layers\.\d+\.mlp\.(gate|up)_proj\.weight$", 4),
    "mlp_down": (32_768, r"^model\.language_model\.layers\.\d+\.mlp\.down_proj\.weight$", 2),
    "projector": (8_320, r"^model\.multi_modal_projector\.", 4),
    "vision_tower": (80_640, r"^model\.vision_tower\.", 39),
    "llm": (123_200, r"^(model\.language_model\.|lm_head\.)", 21),   # + 128 per vocabulary entry
    "full": (212_160, r".", 64),                                        # (embeddings + lm_head rows)
}
PER_TOKEN = {"llm": 128, "full": 128}


@pytest.fixture()
def model():
    return build_tiny_llava(TinySpec(), seed=0)[0]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_trains_exactly_expected_tensors(model, name):
    count, pattern, n_tensors = EXPECTED[name]
    vocab = model.config.text_config.vocab_size
    count += PER_TOKEN.get(name, 0) * vocab
    report = recipes.apply(model, name)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert report["trainable_params"] == count
    assert report["trainable_tensors"] == len(trainable) == n_tensors
    assert all(re.search(pattern, n) for n in trainable)
    frozen_matching = [n for n, p in model.named_parameters() if not p.requires_grad and re.search(pattern, n)]
    assert not frozen_matching, frozen_matching
    assert report["total_params"] == 212_160 + 128 * vocab


def test_mlp_gate_up_keeps_down_frozen(model):
    recipes.apply(model, "mlp_gate_up")
    downs = [p.requires_grad for n, p in model.named_parameters() if "down_proj" in n]
    assert downs and not any(downs)


def test_sa_proj_never_touches_vision_attention(model):
    recipes.apply(model, "sa_proj")
    assert not any(p.requires_grad for n, p in model.named_parameters() if "vision_tower" in n)


def test_recipe_matching_nothing_errors(model):
    with pytest.raises(ValueError, match="matches no parameter"):
        recipes.apply(model, {"include": [r"no_such_module\."]})


def test_unknown_recipe_names_allowed(model):
    with pytest.raises(ValueError, match="unknown recipe 'sa_prj'.*sa_proj"):
        recipes.apply(model, "sa_prj")


def test_user_recipe_from_config(model):
    extra = {"first_layer_attn": {"include": [r"{llm_layers}\.0\.self_attn\."], "exclude": [r"o_proj"]}}
    report = recipes.apply(model, "first_layer_attn", extra=extra)
    assert report["trainable_params"] == 64 * 64 + 2 * 64 * 32
    assert report["modules"] == [f"model.language_model.layers.0.self_attn.{x}_proj" for x in "qkv"]


def test_unknown_role_placeholder_errors(model):
    with pytest.raises(ValueError, match="role 'llm_layerz'"):
        recipes.apply(model, {"include": [r"{llm_layerz}\.0\."]})

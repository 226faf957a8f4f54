"""Model families: role maps, recipe counts on the real checkpoints' shapes (meta device, no
weights), and a full train step → save → reload → generate on a tiny model of each class."""
import pytest
import torch

from lmmcl import recipes
from lmmcl.models.families import FAMILIES, ROLES, get_family
from lmmcl.models.meta import build_meta
from lmmcl.train.collate import IGNORE_INDEX, AnswerOnlyCollator

REAL = ["llava_onevision", "llava_next", "qwen2_5_vl"]


@pytest.fixture(scope="module")
def meta_models():
    return {f: build_meta(f) for f in REAL}


def _m(model, recipe, **kw):
    return recipes.apply(model, recipe, **kw)["trainable_params"] / 1e6


def test_every_family_maps_every_role():
    assert set(FAMILIES) == {"tiny_llava", *REAL}
    for fam in FAMILIES.values():
        assert set(ROLES) <= set(fam.roles)
    with pytest.raises(ValueError, match="unknown model family 'llava'; allowed"):
        get_family("llava")


def test_counts_on_the_default_checkpoints(meta_models):
    ov, nx, qw = (meta_models[f] for f in REAL)
    assert all(p.device.type == "meta" for p in ov.parameters())
    # OV-7B's Qwen2-7B LLM (q/k/v biases included)
    assert _m(ov, "sa_proj") == pytest.approx(822.2, abs=0.1)
    assert _m(ov, "sa_qkv") == pytest.approx(462.6, abs=0.1)
    assert _m(ov, "mlp_gate_up") == pytest.approx(3802.1, abs=0.1)
    assert _m(ov, "mlp_down") == pytest.approx(1901.1, abs=0.1)
    # LLaMA3-LLaVA-NeXT-8B's Llama-3-8B LLM (no biases)
    assert _m(nx, "sa_proj") == pytest.approx(1342.2, abs=0.1)
    assert _m(nx, "sa_qkv") == pytest.approx(805.3, abs=0.1)
    assert _m(nx, "mlp_gate_up") == pytest.approx(3758.1, abs=0.1)
    assert _m(nx, "mlp_down") == pytest.approx(1879.0, abs=0.1)
    # Qwen2.5-VL-7B: same LLM shapes as Qwen2-7B; the merger is the projector, not the tower
    assert _m(qw, "sa_proj") == pytest.approx(822.2, abs=0.1)
    rep = recipes.apply(qw, "projector")
    assert rep["modules"] and all(m.startswith("model.visual.merger.") for m in rep["modules"])
    assert not any("merger" in m for m in recipes.apply(qw, "vision_tower")["modules"])
    # CLIP ViT-L/14-336 (1024-d) vs SigLIP-so400m (1152-d)
    assert nx.config.vision_config.hidden_size == 1024 and ov.config.vision_config.hidden_size == 1152
    assert nx.config.text_config.vocab_size >= 128256


def test_onevision_vocab_is_the_converted_checkpoints(meta_models):
    """llava-hf's OneVision checkpoint: transformers' conversion script
    (models/llava_onevision/convert_llava_onevision_weights_to_hf.py) adds <image> and <video>
    to Qwen2-7B-Instruct's 152064 rows and pads to a multiple of 64 -> 152128 rows in both the
    embedding and the (untied) lm_head; 152064 is the original lmms-lab value."""
    ov, nx, qw = (meta_models[f] for f in REAL)
    assert ov.config.text_config.vocab_size == 152128 == -(-(152064 + 2) // 64) * 64
    assert not ov.config.tie_word_embeddings
    emb, head = ov.get_input_embeddings().weight, ov.get_output_embeddings().weight
    assert tuple(emb.shape) == tuple(head.shape) == (152128, 3584)
    assert emb.numel() + head.numel() == 2 * 152128 * 3584 == 1_090_453_504
    assert 2 * (152128 - 152064) * 3584 == 458_752  # what the 152064 config was short
    assert sum(p.numel() for p in ov.parameters()) == 8_030_807_584
    # the image token id needs a row; the other families keep their published vocab sizes
    assert ov.config.image_token_index == 151646 < 152128
    assert nx.get_input_embeddings().weight.shape[0] == nx.config.text_config.vocab_size == 128320
    assert qw.get_input_embeddings().weight.shape[0] == qw.config.text_config.vocab_size == 152064


def test_recipes_partition_and_newline(meta_models):
    ov = meta_models["llava_onevision"]
    total = sum(p.numel() for p in ov.parameters())
    parts = sum(_m(ov, r) for r in ["vision_tower", "projector", "llm"]) * 1e6
    assert parts == total  # every parameter has exactly one top-level role
    assert _m(ov, "sa_proj_mlp") == pytest.approx(_m(ov, "sa_proj") + _m(ov, "mlp"), abs=1e-6)
    assert "model.image_newline" in recipes.apply(ov, "llm")["modules"]
    assert "model.image_newline" not in recipes.apply(ov, "sa_proj_mlp")["modules"]


def test_last_n_layers_is_parameterised(meta_models):
    nx = meta_models["llava_next"]
    rep = recipes.apply(nx, "last_n_layers", last_n_layers=2)
    layers = {m.split(".")[3] for m in rep["modules"] if ".layers." in m}
    assert layers == {"30", "31"}
    assert {"model.language_model.embed_tokens", "model.language_model.norm", "lm_head"} <= set(rep["modules"])
    one_layer = (4 * 4096 * 4096 - 2 * 4096 * 3072 + 3 * 4096 * 14336 + 2 * 4096) / 1e6  # attn (GQA) + mlp + norms
    assert _m(nx, "last_n_layers", last_n_layers=3) - rep["trainable_params"] / 1e6 == pytest.approx(one_layer, abs=1e-6)
    with pytest.raises(ValueError, match="last_n_layers=40 but the LLM of family llava_next has 32 layers"):
        recipes.apply(nx, "last_n_layers", last_n_layers=40)


def test_user_yaml_recipe_without_code(meta_models):
    import yaml

    user = yaml.safe_load("""
    attn_out_last8: {description: "o_proj of the last 8 layers", last_n_layers: 8,
                     exclude: ["self_attn\\\\.(q|k|v)_proj", "\\\\.mlp\\\\.", "layernorm"]}
    """)
    rep = recipes.apply(meta_models["qwen2_5_vl"], "attn_out_last8", extra=user)
    assert rep["trainable_params"] == 8 * 3584 * 3584
    with pytest.raises(ValueError, match="unknown key"):
        recipes.all_recipes({"bad": {"include": ["x"], "layers": 3}})


def test_count_table_lists_every_family_and_recipe():
    rows = recipes.count_table(["llava_next"], ["sa_proj", "mlp_gate_up"])
    text = recipes.format_count_table(rows)
    assert "| sa_proj | 1,342.2M" in text and "| mlp_gate_up | 3,758.1M" in text


def _rows(n=4):
    from PIL import Image

    colors = {"red": (220, 20, 20), "blue": (20, 20, 220)}
    return [{"image": Image.new("RGB", (32 + 8 * (i % 2), 32), colors[c]), "question": "What colour is it?",
             "answer": c, "id": str(i), "task": "t"} for i, c in enumerate(["red", "blue"] * (n // 2))]


@pytest.mark.parametrize("family", ["llava_onevision", "llava_next", "qwen2_5_vl"])
def test_labels_are_answer_plus_end_of_turn(family):
    fam = get_family(family)
    _, processor = fam.build_tiny(0)
    rows = _rows(2)
    batch = AnswerOnlyCollator(processor, end_of_turn=fam.end_of_turn)(rows)
    for i, row in enumerate(rows):
        lab = batch["labels"][i]
        assert processor.tokenizer.decode(lab[lab != IGNORE_INDEX]) == row["answer"] + fam.end_of_turn
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


@pytest.mark.parametrize("family", ["llava_onevision", "llava_next", "qwen2_5_vl"])
def test_train_step_save_reload_generate(family, tmp_path):
    import datasets

    from lmmcl.models.io import load_model, save_model_atomic
    from lmmcl.train.trainer import fit

    torch.set_num_threads(1)
    model, processor = get_family(family).build_tiny(0)
    rep = recipes.apply(model, "sa_proj_mlp")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    metrics = fit(model, processor, datasets.Dataset.from_list(_rows(4)),
                  {"lr": 1e-3, "steps": 2, "batch_size": 2, "warmup_ratio": 0.0}, tmp_path / "trainer")
    assert metrics["steps"] == 2 and metrics["train_loss_mean"] > 0
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= {n for n, p in model.named_parameters() if p.requires_grad}
    assert rep["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)

    save_model_atomic(model, processor, tmp_path / "model")
    model2, processor2 = load_model(str(tmp_path / "model"))
    assert type(model2) is type(model) and type(processor2) is type(processor)
    for n, p in model2.named_parameters():
        assert torch.equal(p, dict(model.named_parameters())[n]), n
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}]
    prompt = processor2.apply_chat_template(msgs, add_generation_prompt=True)
    inputs = processor2(text=[prompt], images=[_rows(2)[0]["image"]], return_tensors="pt")
    out = model2.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_gradient_checkpointing_trains_with_frozen_embeddings(tmp_path):
    """Non-reentrant checkpointing: an attention-only recipe still gets gradients."""
    import datasets

    from lmmcl.train.trainer import fit

    model, processor = get_family("llava_onevision").build_tiny(0)
    recipes.apply(model, "sa_proj")
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    fit(model, processor, datasets.Dataset.from_list(_rows(2)),
        {"lr": 1e-3, "steps": 1, "batch_size": 2, "warmup_ratio": 0.0, "gradient_checkpointing": True},
        tmp_path / "trainer")
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)

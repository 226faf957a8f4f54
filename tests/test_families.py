"""Model families: role maps proven on every family's meta-device model (no weights), recipe
counts on the real checkpoints' shapes beside the published parameter counts, the suggested role
maps, a family from YAML alone, and a full train step → save → reload → generate on a tiny model of
each class. Every test that loops over families reads them from registry/families.yaml: a new
entry is checked with no test edit."""
import pytest
import torch
import yaml

from lmmcl import recipes, registry
from lmmcl.models.families import FAMILIES, ROLES, check_roles, get_family
from lmmcl.models.meta import build_meta
from lmmcl.train.collate import IGNORE_INDEX, AnswerOnlyCollator

STUDY = ["llava_onevision", "llava_next", "qwen2_5_vl"]          # the study's three
REAL = [f for f in FAMILIES if FAMILIES[f].hf_config]           # every family with a checkpoint
TINY = [f for f in FAMILIES if f != "tiny_llava"]               # their tiny models (the default: test_train)


@pytest.fixture(scope="module")
def meta_models():
    return {f: build_meta(f) for f in FAMILIES}


def _m(model, recipe, **kw):
    return recipes.apply(model, recipe, **kw)["trainable_params"] / 1e6


def test_every_family_maps_every_role():
    assert {"tiny_llava", *STUDY, "qwen3_vl", "internvl", "gemma3", "smolvlm"} <= set(FAMILIES)
    for fam in FAMILIES.values():
        assert set(ROLES) <= set(fam.roles)
    with pytest.raises(ValueError, match="unknown model family 'llava'; allowed"):
        get_family("llava")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_role_map_partitions_the_parameters(family, meta_models):
    """Every parameter in exactly one of vision tower / projector / LLM; llm_layers, embeddings,
    lm_head, final norm and newline inside the LLM and disjoint; every recipe of the registry
    selects tensors, and only of the roles it names (sa_proj: no vision-tower tensor); the total
    is the published count within 1 %; `lmmcl families --suggest` proposes the shipped map."""
    from lmmcl.models.suggest import suggest_roles

    fam, model = get_family(family), meta_models[family]
    every = [n for n, _ in model.named_parameters(remove_duplicate=False)]  # a tied lm_head is named too
    assert check_roles(every, fam) == []
    names = [n for n, _ in model.named_parameters()]
    assert recipes.check_recipes(names, fam) == []
    vision = {n for n in names if recipes.role_of(n, fam, ["vision_tower", "projector"])}
    for name, spec in registry.recipes().items():
        if recipes.named_roles(spec) and not {"vision_tower", "projector"} & recipes.named_roles(spec):
            assert not vision & set(recipes.select(names, {**spec, "last_n_layers": 1} if spec.get("last_n_layers")
                                                   else spec, fam)), name
    if fam.published_params:
        total = sum(p.numel() for p in model.parameters())
        assert total == pytest.approx(fam.published_params, rel=0.01), (total, fam.published_source)
        assert fam.published_source
        assert suggest_roles(model) == fam.roles


def test_the_checks_catch_a_substring_recipe(meta_models):
    """The original study's recipe written as a substring (`self_attn.q_proj`, no anchor) reaches
    the SigLIP layers of Gemma 3's and SmolVLM's vision towers; the role checks name it."""
    import dataclasses
    import re

    study = re.compile(r"self_attn\.(q|k|v|o)_proj")
    for family, tower in (("gemma3", "model.vision_tower."), ("smolvlm", "model.vision_model.")):
        names = [n for n, _ in meta_models[family].named_parameters()]
        assert any(study.search(n) and n.startswith(tower) for n in names), family
        problems = recipes.check_recipes(names, get_family(family), {"study_sa": {"include": [study.pattern]}})
        assert problems and problems[0].startswith("recipe study_sa names no role and selects tensors of several "
                                                   "components (vision_tower "), problems
        # the same substring as a role: the role map check names it
        loose = dataclasses.replace(get_family(family), roles={**get_family(family).roles, "llm_layers": r"\.layers"})
        assert any(p.startswith("llm_layers outside llm: ['" + tower) for p in check_roles(names, loose))


def test_counts_on_the_default_checkpoints(meta_models):
    ov, nx, qw = (meta_models[f] for f in STUDY)
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


def test_counts_of_the_new_families(meta_models):
    """SA Proj and MLP Gate&Up from the published configs' shapes (q/k/v/o, gate/up per layer)."""
    def sa(layers, h, heads, kv, hd, bias=0):
        return layers * (2 * h * heads * hd + 2 * h * kv * hd + bias) / 1e6

    # Qwen3-VL-8B: Qwen3-8B (36 layers, 4096, 32/8 heads of 128, FFN 12288, no biases; q/k norms not in SA Proj)
    q3 = meta_models["qwen3_vl"]
    assert _m(q3, "sa_proj") == pytest.approx(sa(36, 4096, 32, 8, 128), abs=1e-6) == pytest.approx(1509.9, abs=0.1)
    assert _m(q3, "mlp_gate_up") == pytest.approx(36 * 2 * 4096 * 12288 / 1e6) == pytest.approx(3623.9, abs=0.1)
    projector = recipes.apply(q3, "projector")["modules"]
    assert {m.split(".")[2] for m in projector} == {"merger", "deepstack_merger_list"}
    assert not any("merger" in m for m in recipes.apply(q3, "vision_tower")["modules"])
    # InternVL3-8B: Qwen2.5-7B (28 layers, 3584, 28/4 heads of 128, q/k/v biases, FFN 18944)
    iv = meta_models["internvl"]
    assert _m(iv, "sa_proj") == pytest.approx(sa(28, 3584, 28, 4, 128, bias=3584 + 2 * 512), abs=1e-6)
    assert _m(iv, "mlp_gate_up") == pytest.approx(28 * 2 * 3584 * 18944 / 1e6) == pytest.approx(3802.1, abs=0.1)
    # Gemma 3 4B (34 layers, 2560, 8/4 heads of 256, FFN 10240); the projector: a bare weight + its norm
    g3 = meta_models["gemma3"]
    assert _m(g3, "sa_proj") == pytest.approx(sa(34, 2560, 8, 4, 256), abs=1e-6) == pytest.approx(534.8, abs=0.1)
    assert _m(g3, "mlp_gate_up") == pytest.approx(34 * 2 * 2560 * 10240 / 1e6) == pytest.approx(1782.6, abs=0.1)
    assert recipes.apply(g3, "projector")["modules"] == ["model.multi_modal_projector.mm_input_projection_weight",
                                                         "model.multi_modal_projector.mm_soft_emb_norm"]
    assert g3.config.tie_word_embeddings and "lm_head.weight" not in dict(g3.named_parameters())
    # SmolVLM2-2.2B: SmolLM2-1.7B (24 layers, 2048, 32/32 heads of 64, FFN 8192)
    sv = meta_models["smolvlm"]
    assert _m(sv, "sa_proj") == pytest.approx(sa(24, 2048, 32, 32, 64), abs=1e-6) == pytest.approx(402.7, abs=0.1)
    assert _m(sv, "mlp_gate_up") == pytest.approx(24 * 2 * 2048 * 8192 / 1e6) == pytest.approx(805.3, abs=0.1)
    assert recipes.apply(sv, "projector")["modules"] == ["model.connector.modality_projection.proj"]


def test_onevision_vocab_is_the_converted_checkpoints(meta_models):
    """llava-hf's OneVision checkpoint: transformers' conversion script
    (models/llava_onevision/convert_llava_onevision_weights_to_hf.py) adds <image> and <video>
    to Qwen2-7B-Instruct's 152064 rows and pads to a multiple of 64 -> 152128 rows in both the
    embedding and the (untied) lm_head; 152064 is the original lmms-lab value."""
    ov, nx, qw = (meta_models[f] for f in STUDY)
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


def test_count_table_lists_every_family_and_recipe(capsys):
    """`lmmcl recipes --table`: every family with a checkpoint x every recipe, the totals and the
    published counts beside them."""
    from lmmcl.cli import main

    main(["recipes", "--table"])
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert all(f"{f} ({get_family(f).default_checkpoint})" in lines[0] for f in REAL)
    assert [line.split(" | ")[0][2:] for line in lines[2:]] == [*registry.recipes(), "(total)", "(published)"]
    assert all("—" not in line for line in lines[2:])   # every recipe applies to every family
    assert "| sa_proj | 822.2M (10.2%) | 1,342.2M" in text and "| mlp_gate_up | 3,802.1M (47.3%) | 3,758.1M" in text
    assert "8,767.1M" in text and "8,770M (-0.03%)" in text     # Qwen3-VL-8B: meta total vs published 8.77B


def _rows(n=4):
    from PIL import Image

    colors = {"red": (220, 20, 20), "blue": (20, 20, 220)}
    return [{"image": Image.new("RGB", (32 + 8 * (i % 2), 32), colors[c]), "question": "What colour is it?",
             "answer": c, "id": str(i), "task": "t"} for i, c in enumerate(["red", "blue"] * (n // 2))]


@pytest.fixture(scope="module")
def tiny_models():
    """{family: (model, processor)} built once; tests that change a model build their own."""
    return {}


def _tiny(cache, family):
    if family not in cache:
        cache[family] = get_family(family).build_tiny(0)
    return cache[family]


@pytest.mark.parametrize("family", TINY)
def test_labels_are_answer_plus_end_of_turn(family, tiny_models):
    fam = get_family(family)
    _, processor = _tiny(tiny_models, family)
    rows = _rows(2)
    batch = AnswerOnlyCollator(processor, end_of_turn=fam.end_of_turn)(rows)
    for i, row in enumerate(rows):
        lab = batch["labels"][i]
        # SmolVLM's generation prompt ends at "Assistant:", its rendered answer follows a space
        assert processor.tokenizer.decode(lab[lab != IGNORE_INDEX]) in (row["answer"] + fam.end_of_turn,
                                                                        " " + row["answer"] + fam.end_of_turn)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_chat_templates_are_the_checkpoints():
    """Where transformers ships a family's template, the tiny model's is that one (SmolVLM)."""
    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

    from lmmcl.models.families import smolvlm

    assert smolvlm.CHAT_TEMPLATE == DEFAULT_CHAT_TEMPLATE


def test_gemma3_prompt_keeps_one_bos(tiny_models):
    """Gemma 3's template writes `<bos>` and Gemma's tokenizer adds one: the processor we give
    Gemma 3 (ours, and a published checkpoint's after load_processor) tokenizes a templated text
    without adding a second, as apply_chat_template(tokenize=True) does."""
    from tokenizers import processors as tp
    from transformers.models.gemma3.processing_gemma3 import Gemma3Processor

    model, processor = get_family("gemma3").build_tiny(0)   # its own: the tokenizer is changed below
    tok = processor.tokenizer
    tok._tokenizer.post_processor = tp.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)])
    text = processor.apply_chat_template(_messages(), add_generation_prompt=True)
    image = _rows(2)[0]["image"]
    assert text.startswith("<bos>")
    assert processor(text=[text], images=[image])["input_ids"][0].count(tok.bos_token_id) == 1
    assert Gemma3Processor.__call__(processor, images=[image], text=[text])["input_ids"][0].count(tok.bos_token_id) == 2


def _messages():
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}]


@pytest.mark.parametrize("family", TINY)
def test_train_step_save_reload_generate(family, tmp_path):
    _train_save_reload_generate(get_family(family), tmp_path)


def _train_save_reload_generate(fam, tmp_path):
    """The base saved in full, a stage of sa_proj_mlp trained on it and saved as a delta (its changed
    tensors only), the stage reloaded (base + delta), the same weights, then generation."""
    import datasets

    from lmmcl.models import delta
    from lmmcl.models.io import load_model, save_model_atomic
    from lmmcl.train.trainer import fit

    torch.set_num_threads(1)
    model, processor = fam.build_tiny(0)
    save_model_atomic(model, processor, tmp_path / "base")
    snapshot = delta.Snapshot(model)
    rep = recipes.apply(model, "sa_proj_mlp")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    metrics = fit(model, processor, datasets.Dataset.from_list(_rows(4)),
                  {"lr": 1e-3, "steps": 2, "batch_size": 2, "warmup_ratio": 0.0}, tmp_path / "trainer")
    assert metrics["steps"] == 2 and metrics["train_loss_mean"] > 0
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= {n for n, p in model.named_parameters() if p.requires_grad}
    assert rep["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)

    stored = snapshot.changed(model)
    assert set(stored) == changed
    delta.save_delta(model, stored, tmp_path / "stage", str(tmp_path / "base"), True)
    model2, processor2 = load_model(str(tmp_path / "stage"))
    assert type(model2) is type(model) and type(processor2) is type(processor)
    for n, p in model2.named_parameters():
        assert torch.equal(p, dict(model.named_parameters())[n]), n
    prompt = processor2.apply_chat_template(_messages(), add_generation_prompt=True)
    inputs = processor2(text=[prompt], images=[_rows(2)[0]["image"]], return_tensors="pt")
    out = model2.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert check_roles([n for n, _ in model2.named_parameters(remove_duplicate=False)], fam) == []


# A native class of a known layout, registered from YAML alone: no module, the generic tiny builder
# (lmmcl.models.families.generic), the roles pasted from `lmmcl families --suggest`.
QWEN2_VL_YAML = """
qwen2_vl:
  model_class: Qwen2VLForConditionalGeneration
  model_type: qwen2_vl
  default_checkpoint: Qwen/Qwen2-VL-7B-Instruct
  hf_config: null
  end_of_turn: '<|im_end|>'
  tiny:
    tokens: {pad: '<|endoftext|>', image_token: '<|image_pad|>', video_token: '<|video_pad|>',
             vision_start_token: '<|vision_start|>', vision_end_token: '<|vision_end|>'}
    image_placeholder: '<|vision_start|><|image_pad|><|vision_end|>'
    image_processor: {patch_size: 8, merge_size: 2, temporal_patch_size: 2, min_pixels: 1024, max_pixels: 4096}
"""


def test_a_family_from_yaml_alone(tmp_path, monkeypatch, capsys):
    from lmmcl.cli import main
    from lmmcl.models import families

    main(["families", "--suggest", "Qwen2VLForConditionalGeneration", "--name", "qwen2_vl"])
    suggested = yaml.safe_load(capsys.readouterr().out)["qwen2_vl"]
    assert suggested["roles"]["projector"] == r"^model\.visual\.merger\."
    spec = yaml.safe_load(QWEN2_VL_YAML)["qwen2_vl"]
    fam = families.from_spec("qwen2_vl", {**spec, "roles": suggested["roles"]})
    assert fam.build_tiny.__module__ == families.__name__   # no module lmmcl.models.families.qwen2_vl
    monkeypatch.setitem(FAMILIES, "qwen2_vl", fam)          # what _load_all does with a families.yaml entry
    _train_save_reload_generate(fam, tmp_path)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['tokens'\]"):
        families.from_spec("x", {**spec, "tokens": {}})


# The `tiny` keys that let the generic builder make the new families' classes from YAML alone
GENERIC_TINY = yaml.safe_load(r"""
qwen3_vl:
  tokens: {image_token: '<|image_pad|>', video_token: '<|video_pad|>', vision_start_token: '<|vision_start|>',
           vision_end_token: '<|vision_end|>'}
  image_placeholder: '<|vision_start|><|image_pad|><|vision_end|>'
  config: {vision_config: {num_position_embeddings: 64, deepstack_visual_indexes: [0]}}
  image_processor: {patch_size: 8, merge_size: 2, temporal_patch_size: 2, min_pixels: 1024, max_pixels: 4096}
internvl:
  tokens: {image_token: '<IMG_CONTEXT>', start_image_token: '<img>', end_image_token: '</img>',
           context_image_token: '<IMG_CONTEXT>', video_token: '<video>'}
  image_placeholder: "<IMG_CONTEXT>
"
  config: {image_seq_length: 4}
  processor: {image_seq_length: 4}
  image_processor: {size: {height: 32, width: 32}, max_patches: 2}
gemma3:
  tokens: {bos: '<bos>', eos: '<end_of_turn>', pad: '<pad>', image_token: '<image_soft_token>',
           boi_token: '<start_of_image>', eoi_token: '<end_of_image>'}
  image_placeholder: '<start_of_image>'
  config: {mm_tokens_per_image: 4, text_config: {sliding_window: 64}}
  processor: {image_seq_length: 4}
  image_processor: {size: {height: 32, width: 32}}
smolvlm:
  tokens: {eos: '<end_of_utterance>', image_token: '<image>', fake_image_token: '<fake_token_around_image>',
           global_image_token: '<global-img>', video_token: '<video>'}
  config: {scale_factor: 2}
  processor: {image_seq_len: 4}
  image_processor: {size: {longest_edge: 32}, do_image_splitting: false, max_image_size: {longest_edge: 32}}
""")


@pytest.mark.parametrize("family", sorted(GENERIC_TINY))
def test_generic_builder_makes_each_new_layout(family):
    """Each new family's class from its YAML entry plus `tiny` keys, without its module: a
    batch of the collator gives a loss and gradients, and the role map holds on the tiny model."""
    from lmmcl.models import families
    from lmmcl.models.families import generic

    shipped = get_family(family)
    spec = {k: getattr(shipped, k) for k in ("model_class", "model_type", "default_checkpoint", "end_of_turn", "roles")}
    fam = families.from_spec("generic_" + family, {**spec, "tiny": GENERIC_TINY[family]})
    model, processor = generic.build_tiny(fam, 0)
    assert type(model).__name__ == shipped.model_class
    batch = AnswerOnlyCollator(processor, end_of_turn=fam.end_of_turn)(_rows(2))
    lab = batch["labels"][0]
    assert processor.tokenizer.decode(lab[lab != IGNORE_INDEX]) == "red" + fam.end_of_turn  # ChatML, its end of turn
    loss = model(**batch).loss
    loss.backward()
    assert loss.item() > 0 and model.get_input_embeddings().weight.grad is not None
    assert check_roles([n for n, _ in model.named_parameters(remove_duplicate=False)], fam) == []


def test_suggest_reads_a_checkpoint_folder(tmp_path, capsys):
    """`lmmcl families --suggest <folder>`: the class from config.json's `architectures`."""
    import json

    from lmmcl.cli import main

    (tmp_path / "config.json").write_text(json.dumps(registry.hf_config(get_family("gemma3").hf_config)))
    main(["families", "--suggest", str(tmp_path)])
    entry = yaml.safe_load(capsys.readouterr().out)["gemma3"]
    assert entry["model_class"] == "Gemma3ForConditionalGeneration" and entry["roles"] == get_family("gemma3").roles
    main(["families", "--check", "gemma3", "smolvlm"])
    assert capsys.readouterr().out.splitlines() == ["gemma3: role map and recipes OK", "smolvlm: role map and recipes OK"]
    with pytest.raises(SystemExit):
        main(["families", "--suggest", "NoSuchForConditionalGeneration"])


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

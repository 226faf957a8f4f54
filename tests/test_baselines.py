"""The four mitigation baselines (lmmcl.train.methods): exact unit facts, then one end-to-end run.

- WiSE-FT: the merge is exactly α·previous + (1−α)·finetuned on known tensors and on models;
- LoRA: the merged plain model gives the adapter model's outputs; targets stay in the LLM;
- LwF: loss = CE when student = teacher; the KL covers exactly the answer-predicting positions;
- MoE: router forced to the original expert reproduces the base outputs exactly; checkpoints
  round-trip through `load_model`; experts per task grow the router;
- one Snakemake run over tests/configs/baselines.yaml (all four, 2 stages) fills the tables.
"""
import copy
import json
import shutil
import time

import pytest
import torch
import yaml

from lmmcl.config import ConfigError, Plan
from lmmcl.data.synthetic import generate
from lmmcl.models.families import family_of_model
from lmmcl.models.io import load_model, save_model_atomic
from lmmcl.models.tiny import TinySpec, build_tiny_llava
from lmmcl.train.collate import IGNORE_INDEX, AnswerOnlyCollator
from lmmcl.train.methods import get_hook, method_spec
from lmmcl.models import moe  # the MoE layers (the hook: lmmcl.train.methods.moe)
from lmmcl.train.methods import lora, lwf, wise_ft

SPEC = TinySpec(hidden_size=32, intermediate_size=64)


def fresh(seed=0):
    return build_tiny_llava(SPEC, seed=seed)


def batch_of(processor, model, n=2, skill="syn_count"):
    rows = generate(skill, "train", n, seed=1)
    return AnswerOnlyCollator(processor, end_of_turn=family_of_model(model).end_of_turn)(rows)


def logits(model, batch):
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


# ---- WiSE-FT ------------------------------------------------------------------------------
def test_wise_ft_merge_exact_on_known_tensors():
    prev = {"w": torch.tensor([2.0, 4.0, -8.0]), "b": torch.tensor([1.0, 3.0]), "ids": torch.tensor([0, 1, 2])}
    ft = {"w": torch.tensor([4.0, 8.0, 8.0]), "b": torch.tensor([-1.0, 3.0]), "ids": torch.tensor([0, 1, 2])}
    half = wise_ft.merge_state_dicts(prev, ft, 0.5)
    assert torch.equal(half["w"], torch.tensor([3.0, 6.0, 0.0])) and torch.equal(half["b"], torch.tensor([0.0, 3.0]))
    assert torch.equal(half["ids"], ft["ids"])
    m = wise_ft.merge_state_dicts(prev, ft, 0.1)                  # the study's alpha (previous model)
    assert torch.equal(m["w"], 0.1 * prev["w"] + 0.9 * ft["w"])
    assert torch.allclose(m["w"], torch.tensor([3.8, 7.6, 6.4]), atol=1e-6, rtol=0)
    assert torch.equal(wise_ft.merge_state_dicts(prev, ft, 0.0)["w"], ft["w"])
    assert torch.equal(wise_ft.merge_state_dicts(prev, ft, 1.0)["w"], prev["w"])
    with pytest.raises(ValueError, match="differ in keys"):
        wise_ft.merge_state_dicts({"w": prev["w"]}, ft, 0.1)
    with pytest.raises(ValueError, match="non-floating tensor ids differs"):
        wise_ft.merge_state_dicts({**prev, "ids": torch.tensor([0, 1, 3])}, ft, 0.1)


def test_wise_ft_merge_models_every_tensor():
    prev, _ = fresh(0)
    ft, _ = fresh(1)
    before = {k: v.clone() for k, v in ft.state_dict().items()}
    p = prev.state_dict()
    n = wise_ft.merge_models(prev, ft, 0.1)
    assert n == len(before)
    for k, v in ft.state_dict().items():
        expected = 0.1 * p[k] + 0.9 * before[k] if v.is_floating_point() else before[k]
        assert torch.equal(v, expected), k


# ---- LoRA ---------------------------------------------------------------------------------
def test_lora_merged_model_equals_adapter_model():
    model, processor = fresh()
    for p in model.parameters():
        p.requires_grad_(False)
    hook = get_hook({"method": "lora", "r": 8, "lora_alpha": 16, "lora_dropout": 0.05})
    peft_model = hook.prepare(model)
    assert hook.targets and all(".language_model.layers." in n and ".mlp." in n for n in hook.targets)
    assert len(hook.targets) == 3 * model.config.text_config.num_hidden_layers
    torch.manual_seed(0)
    with torch.no_grad():   # lora_B starts at zero: give the adapters an effect
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    peft_model.eval()
    batch = batch_of(processor, model)
    with_adapters = logits(peft_model, batch)
    merged = hook.finalize(peft_model)
    after = logits(merged.eval(), batch)
    assert type(merged).__name__ == "LlavaForConditionalGeneration"
    assert not any("lora" in n for n in merged.state_dict())
    diff = (with_adapters - after).abs().max().item()
    print(f"LoRA merged vs adapter max |logit diff| = {diff:.2e}")
    assert diff < 1e-5
    base_out = logits(fresh()[0].eval(), batch)
    assert (base_out - after).abs().max().item() > 1e-3          # the merge did change the model


def test_lora_targets_stay_in_the_language_model():
    model, _ = fresh()
    att = lora.target_modules(model, "attention")
    allin = lora.target_modules(model, "all_linear")
    assert all(n.split(".")[-1] in {"q_proj", "k_proj", "v_proj", "o_proj"} for n in att)
    assert set(att) < set(allin) and all(n.startswith("model.language_model.layers.") for n in allin)
    with pytest.raises(ValueError, match="outside the language model"):
        lora.target_modules(model, [r"self_attn\.q_proj$"])    # CLIP has q_proj too
    with pytest.raises(ValueError, match="matches no nn.Linear"):
        lora.target_modules(model, [r"nothing_here$"])


# ---- LwF ----------------------------------------------------------------------------------
def test_lwf_kl_positions_are_the_answer_tokens_only():
    torch.manual_seed(0)
    labels = torch.full((2, 6), IGNORE_INDEX)
    labels[0, 4:] = torch.tensor([5, 6])
    labels[1, 3:5] = torch.tensor([7, 8])
    mask = lwf.answer_positions(labels)     # over logits [:, :-1]: position p predicts token p+1
    assert mask.tolist() == [[False, False, False, True, True], [False, False, True, True, False]]
    student = torch.randn(2, 6, 11)
    ce = torch.tensor(1.2345)
    loss, kl, n = lwf.lwf_loss(ce, student, student.clone(), labels, 1.0, 2.0)
    assert n == 4 and kl.item() == 0.0 and torch.equal(loss, ce)
    teacher = student.clone()
    teacher[~torch.cat([mask, torch.zeros(2, 1, dtype=torch.bool)], 1)] += torch.randn(11) * 5
    assert lwf.distill_kl(student, teacher, labels, 2.0)[0].item() == 0.0   # prompt/image logits ignored
    teacher[0, 3] += torch.randn(11) * 5                                      # one answer position
    kl, n = lwf.distill_kl(student, teacher, labels, 2.0)
    s, t = torch.log_softmax(student[0, 3] / 2, -1), torch.log_softmax(teacher[0, 3] / 2, -1)
    assert torch.allclose(kl, (t.exp() * (t - s)).sum() / 4, atol=1e-6)
    loss, _, _ = lwf.lwf_loss(ce, student, teacher, labels, 0.5, 2.0)
    assert torch.allclose(loss, ce + 0.5 * 4.0 * kl)


def test_lwf_loss_equals_ce_when_student_is_teacher():
    model, processor = fresh()
    hook = get_hook({"method": "lwf"})
    hook.prepare(model, teacher=copy.deepcopy(model))
    model.eval()
    batch = batch_of(processor, model)

    def default_loss():
        out = model(**batch)
        return out.loss, out

    loss = hook.compute_loss(default_loss, model, batch)
    assert loss.item() == pytest.approx(model(**batch).loss.item(), abs=0)
    assert hook.last["kl"] == 0.0
    assert hook.last["positions"] == int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert not any(p.requires_grad for p in hook.teacher.parameters())


# ---- MoE ----------------------------------------------------------------------------------
def force_route(model, expert: int, margin: float = 1e4) -> None:
    """Make every router pick `expert` with weight 1."""
    with torch.no_grad():
        for m in moe.moe_layers(model):
            m.moe_router.weight.zero_()
            m.moe_router.bias.fill_(-margin)
            m.moe_router.bias[expert] = margin


def test_moe_router_forced_to_original_reproduces_base_exactly():
    base, processor = fresh()
    model = copy.deepcopy(base)
    moe.convert(model, experts=2, top_k=1)
    assert len(moe.moe_layers(model)) == model.config.text_config.num_hidden_layers
    with torch.no_grad():    # make the new experts differ from the original
        for m in moe.moe_layers(model):
            for p in m.moe_experts.parameters():
                p.add_(torch.randn_like(p))
    batch = batch_of(processor, base)
    ref = logits(base.eval(), batch)
    force_route(model, 0)
    assert torch.equal(logits(model.eval(), batch), ref)          # top-1 at evaluation
    model.train()
    model.config.text_config.dropout = 0.0
    with torch.no_grad():
        train_out = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    assert torch.equal(train_out, ref)                            # softmax mix in training
    force_route(model, 1)
    assert (logits(model.eval(), batch) - ref).abs().max() > 1e-3


def test_moe_checkpoint_round_trip_and_experts_per_task(tmp_path):
    model, processor = fresh()
    for p in model.parameters():
        p.requires_grad_(False)
    hook = get_hook({"method": "moe", "experts": 1, "expert_per_task": True})
    model = hook.prepare(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".moe_experts.0." in n or ".moe_router." in n for n in trainable)
    with torch.no_grad():
        for m in moe.moe_layers(model):
            m.moe_router.bias.copy_(torch.tensor([0.0, 0.3]))
            for p in m.moe_experts.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    save_model_atomic(model, processor, tmp_path / "model")
    loaded, _ = load_model(str(tmp_path / "model"))
    batch = batch_of(processor, model)
    assert torch.equal(logits(loaded.eval(), batch), logits(model.eval(), batch))
    assert loaded.config.lmmcl_moe == {"experts": 1, "top_k": 1, "expert_per_task": True}
    from lmmcl.evaluation.model import LmmclModel                  # what lmms-eval loads

    wrapped = LmmclModel(pretrained=str(tmp_path / "model"))
    assert len(moe.moe_layers(wrapped.model)) == len(moe.moe_layers(model)) and not wrapped.model.training
    assert torch.equal(logits(wrapped.model, batch), logits(model, batch))
    loaded.requires_grad_(False)                                   # what recipe `none` does
    hook2 = get_hook({"method": "moe", "experts": 1, "expert_per_task": True})
    loaded = hook2.prepare(loaded)                                 # next task: one more expert
    layer = moe.moe_layers(loaded)[0]
    assert layer.num_experts == 3 and layer.moe_router.out_features == 3
    assert torch.equal(layer.moe_router.bias[:2], torch.tensor([0.0, 0.3]))
    trainable = {n for n, p in loaded.named_parameters() if p.requires_grad}
    assert all(".moe_experts.1." in n or ".moe_router." in n for n in trainable)
    assert any(".moe_experts.1." in n for n in trainable)


# ---- config -------------------------------------------------------------------------------
def _cfg(methods):
    from pathlib import Path

    cfg = yaml.safe_load((Path(__file__).parent / "configs/baselines.yaml").read_text())
    cfg["methods"] = methods
    return cfg


def test_method_keys_defaults_and_errors():
    plan = Plan(_cfg({"l": {"method": "lora"}, "w": {"method": "wise_ft", "recipe": "mlp"}}))
    assert plan.method_spec("l") == {"method": "lora", "r": 256, "lora_alpha": 32, "lora_dropout": 0.05,
                                     "targets": "mlp"}
    assert plan.recipe("l") == "none" and plan.method_spec("w")["alpha"] == 0.1
    assert method_spec("lwf", {}) == {"method": "lwf", "lambda": 1.0, "temperature": 2.0}
    for methods, message in [
        ({"x": {"method": "lwf"}}, "methods.x.recipe: required for method 'lwf'"),
        ({"x": {"method": "lora", "r": 0}}, "methods.x.r: 0 is not allowed"),
        ({"x": {"method": "lora", "targets": "vision"}}, "methods.x.targets"),
        ({"x": {"method": "moe", "lambda": 1.0}}, r"unknown key\(s\) \['lambda'\]"),
        ({"x": {"method": "wise_ft", "recipe": "mlp", "alpha": 1.5}}, "methods.x.alpha: 1.5"),
        ({"x": {"method": "dpo", "recipe": "mlp"}}, "unknown method 'dpo'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Plan(_cfg(methods))


# ---- end to end ---------------------------------------------------------------------------
@pytest.mark.slow
def test_all_baselines_two_stages_end_to_end(tmp_path):
    import pandas as pd
    import test_workflow as wf

    from pathlib import Path

    shutil.copy(Path(__file__).parent / "configs/baselines.yaml", tmp_path / "config.yaml")
    t0 = time.time()
    p = wf.smk(tmp_path, "--cores", "2")
    print(f"baselines end-to-end: {time.time() - t0:.1f} s")
    res = tmp_path / "results/baselines"
    scores = pd.read_csv(res / "scores.csv")
    methods = ["lora", "lwf", "wise_ft", "moe"]
    # 4 methods x (base + 2 stages) x 3 benchmarks, every cell measured
    assert set(scores["method"]) == set(methods) and len(scores) == 36 and scores["score"].notna().all()
    lf = pd.read_csv(res / "tables/learning_forgetting.csv")
    assert set(methods) <= set(lf.iloc[:, 0].astype(str))
    for m in methods:
        assert (res / f"tables/R_{m}.md").stat().st_size > 0
    # LoRA: every stage checkpoint is a plain, merged model
    lo = json.loads((res / "seed0/lora/stage2_syn_count/manifest.json").read_text())
    assert lo["method_report"]["merged"] and "model.multi_modal_projector.linear_1" in lo["trainable"]["modules"]
    cfg = json.loads((res / "seed0/lora/stage2_syn_count/model/config.json").read_text())
    assert cfg["architectures"] == ["LlavaForConditionalGeneration"]
    # WiSE-FT: the merged stage is what the next stage trained from and what was evaluated
    w2 = json.loads((res / "seed0/wise_ft/stage2_syn_count/manifest.json").read_text())
    assert w2["wise_ft"]["alpha_previous"] == 0.1
    assert w2["wise_ft"]["previous"].endswith("wise_ft/stage1_syn_birds/manifest.json")
    f2 = json.loads((res / "seed0/wise_ft/stage2_syn_count/finetuned/manifest.json").read_text())
    assert f2["parent"].endswith("wise_ft/stage1_syn_birds/manifest.json")
    ev = json.loads((res / "seed0/evals/wise_ft/stage2_syn_count/syn_count.json").read_text())
    assert ev["checkpoint"].endswith("wise_ft/stage2_syn_count/model")
    # LwF distilled from its parent; MoE grew one expert per task
    l2 = json.loads((res / "seed0/lwf/stage2_syn_count/manifest.json").read_text())
    assert l2["method_report"]["teacher"].endswith("lwf/stage1_syn_birds/manifest.json")
    m2 = json.loads((res / "seed0/moe/stage2_syn_count/manifest.json").read_text())
    assert m2["method_report"]["experts_total"] == 3
    assert "Nothing to be done" in (lambda q: q.stdout + q.stderr)(wf.smk(tmp_path, "-n"))

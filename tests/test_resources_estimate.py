"""`lmmcl resources` (lmmcl.resources_estimate): its formulas against what torch, the trainer and
DeepSpeed actually hold, measured on CPU, and the command on the paper configs (docs/resources.md)."""
import collections
import contextlib
import io
import json
import shutil
import time
import types
from pathlib import Path

import pytest
import torch
import yaml

from lmmcl import resources_estimate as est
from lmmcl.cli import main
from lmmcl.config import Plan
from lmmcl.models.families import get_family
from lmmcl.train.hparams import complete

ROOT = Path(__file__).resolve().parents[1]
MiB = 2 ** 20
PAPER = ["paper_llava_onevision", "paper_llama3_llava_next", "paper_qwen2_5_vl", "paper_qwen3_vl"]


def _default_cfg(**methods):
    """The default config, with a base of its own (the tests change model.tiny: not the shipped base's shape)."""
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["methods"].update(methods)
    cfg["model"]["checkpoint"] = None
    return cfg


def _run(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["resources", *args])
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("recipe", ["sa_proj", "full"])
@pytest.mark.parametrize("bf16", [False, True])
def test_adamw_state_and_grad_bytes_equal_the_formula(recipe, bf16):
    """One real AdamW step on the tiny default model (bf16: CPU autocast, what the Trainer's bf16
    is without DeepSpeed): its gradients and exp_avg/exp_avg_sq are exactly the formula's bytes."""
    from PIL import Image

    from lmmcl import recipes
    from lmmcl.models.tiny import TinySpec, build_tiny_llava

    cfg = _default_cfg()
    family = get_family("tiny_llava")
    counts = est.count_job(est.meta_model(family, cfg["model"]), family, Plan(cfg), recipe, 1)
    model, processor = build_tiny_llava(TinySpec.from_dict(cfg["model"]["tiny"]), seed=0)
    recipes.apply(model, recipe)
    batch = processor(images=[Image.new("RGB", (32, 32))], text=["<image>\nwhat color is it? red"], return_tensors="pt")
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, foreach=True)
    opt.step()

    assert counts.trained == sum(p.numel() for p in model.parameters() if p.requires_grad)
    # CLIP's post_layernorm is not on LLaVA's path (it reads a hidden state): trainable under `full`
    # but without a gradient, so torch AdamW gives it no state either
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == ([] if recipe == "sa_proj" else ["model.vision_tower.post_layernorm.weight",
                                                      "model.vision_tower.post_layernorm.bias"])
    with_grad = counts.trained - sum(model.get_parameter(n).numel() for n in unused)
    prec = est.precision(bf16, zero=None)
    assert prec.grads == prec.adam / 2 == 4  # lmmcl loads fp32; autocast leaves grads and states fp32
    assert _bytes(p.grad for p in model.parameters() if p.grad is not None) == est.grad_bytes(with_grad, prec, None, 1)
    states = [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
    assert _bytes(v for v in states if v.dim()) == est.adam_bytes(with_grad, prec, None, 1)
    steps = [v for v in states if not v.dim()]  # AdamW's step counters: 0-dim CPU tensors, not GPU memory
    assert len(steps) == len(opt.state) and all(v.device.type == "cpu" for v in steps)


METHODS = {"lora": {"method": "lora", "recipe": "projector", "r": 8}, "moe": {"method": "moe", "expert_per_task": True},
           "mlp": {"recipe": "mlp"}, "projector": {"recipe": "projector"}, "vision_tower": {"recipe": "vision_tower"}}


def _saved_per_layer(model, batch, stacks: dict) -> tuple[dict, int]:
    """Bytes autograd keeps (saved_tensors_hooks, storages counted once, parameters left out) per
    (stack, layer), and those shared by several layers (the rotary cos/sin)."""
    current, saved = [None], {}
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if current[0] is not None and ptr not in params:
            saved.setdefault(current[0], {})[ptr] = t.untyped_storage().nbytes()
        return t

    for name, layers in stacks.items():
        for i, layer in enumerate(layers):
            layer.register_forward_pre_hook(lambda m, a, k=(name, i): current.__setitem__(0, k))
            layer.register_forward_hook(lambda m, a, o: current.__setitem__(0, None))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**batch, labels=batch["input_ids"])
    seen = collections.Counter(ptr for d in saved.values() for ptr in d)
    per_layer = {k: sum(b for ptr, b in d.items() if seen[ptr] == 1) for k, d in saved.items()}
    return per_layer, sum({ptr: b for d in saved.values() for ptr, b in d.items() if seen[ptr] > 1}.values())


@pytest.mark.parametrize("method", ["sa_proj", "mlp", "projector", "vision_tower", "full", "lora", "moe"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_activation_formula_equals_what_autograd_keeps(method, dtype):
    """Per layer, the bytes autograd keeps for backward in the tiny model (its recipe / LoRA / MoE
    applied, cast to bf16 as DeepSpeed does, or fp32) equal `layer_bytes` exactly; layers before
    the first trained one keep nothing; the vision tower keeps nothing unless it trains."""
    from PIL import Image

    from lmmcl import recipes
    from lmmcl.models.tiny import TinySpec, build_tiny_llava
    from lmmcl.train.methods import freeze_all, get_hook, unwrap

    cfg = _default_cfg(**METHODS)
    plan, family = Plan(cfg), get_family("tiny_llava")
    meta = est.meta_model(family, cfg["model"])
    counts, geom = est.count_job(meta, family, plan, method, 1), est.geometry(meta.config)
    model, processor = build_tiny_llava(TinySpec.from_dict(cfg["model"]["tiny"]), seed=0)
    freeze_all(model) if plan.recipe(method) == "none" else recipes.apply(model, plan.recipe(method))
    model = get_hook(plan.method_spec(method)).prepare(model).to(dtype).train()
    batch = processor(images=[Image.new("RGB", (32, 32))], text=["<image>\n" + "red " * 40], return_tensors="pt")
    batch["pixel_values"] = batch["pixel_values"].to(dtype)
    inner = unwrap(model).model
    per_layer, shared = _saved_per_layer(model, batch, {"llm": inner.language_model.layers,
                                                        "vision": inner.vision_tower.encoder.layers})
    a, tokens, patches = (2 if dtype == torch.bfloat16 else 4), batch["input_ids"].shape[1], batch["pixel_values"].shape[0] * 17
    # on CPU the dropout mask has the input's dtype and bf16 LayerNorm keeps bf16 mean/rstd (CUDA: 1 byte, fp32)
    cpu = {"mask_bytes": a, "ln_stat_bytes": a}
    lora = {"lora_r": counts.lora["r"], "lora_dropout": counts.lora["dropout"] > 0} if counts.lora else {}
    for i, flags in enumerate(counts.llm_flags):
        expected = 0 if flags is None else tokens * est.layer_bytes(geom.llm, flags, a, a, **cpu, **lora)
        assert per_layer.get(("llm", i), 0) == expected, (i, flags)
    for i in range(geom.vision.layers):
        expected = patches * est.layer_bytes(geom.vision, est.ALL_TRAIN, a, a, **cpu) if counts.vision_trained else 0
        assert per_layer.get(("vision", i), 0) == expected, i
    assert shared == tokens * 2 * geom.llm.head_dim * a  # the rotary cos and sin, once for all layers
    assert (method == "moe") == (counts.llm_flags[0].experts == 2)


class _KeepWorkDir:
    """shutil for lmmcl.train.stage, except that the in-stage checkpoints are kept for measuring."""

    def __getattr__(self, name):
        return getattr(shutil, name)

    @staticmethod
    def rmtree(*args, **kwargs):
        pass


@pytest.mark.parametrize("method", ["sa_proj", "lora", "moe"])
def test_a_trained_stage_holds_what_the_estimate_counts(tmp_path, monkeypatch, method):
    """A real one-step stage (lmmcl train-stage's code) per kind: the trainable parameters, the
    trainer's gradient and optimizer-state record (metrics.memory) and the delta's bytes equal the
    estimate's; LoRA's adapters and MoE's experts + routers are counted on the meta device. The
    in-stage checkpoint (save_steps) holds the estimate's bytes, safetensors/pickle headers aside."""
    from lmmcl.data.synthetic import write_skill
    from lmmcl.train import stage as stage_mod
    from lmmcl.train.stage import build_base, train_stage

    monkeypatch.setattr(stage_mod, "shutil", _KeepWorkDir())

    cfg = _default_cfg(lora={"method": "lora", "recipe": "projector", "r": 8},
                       moe={"method": "moe", "expert_per_task": True})
    plan, family = Plan(cfg), get_family("tiny_llava")
    data = write_skill("syn_birds", "train", 8, 0, tmp_path / "birds.parquet")
    build_base(model_cfg={**cfg["model"], "base_training": {"skills": []}}, experiment="t",
               out_manifest=tmp_path / "base/manifest.json", data=[], hparams={}, tracking={"report_to": []})
    with contextlib.redirect_stdout(io.StringIO()):
        m = train_stage(parent_manifest=tmp_path / "base/manifest.json", data=[data], method=method,
                        recipe=plan.recipe(method), method_spec=plan.method_spec(method), stage=1, task="syn_birds",
                        hparams={"lr": 1e-3, "steps": 1, "batch_size": 2, "warmup_ratio": 0.0, "role_lr": {},
                                 "save_steps": 1},
                        tracking={"report_to": []}, out_manifest=tmp_path / method / "manifest.json")
    counts = est.count_job(est.meta_model(family, cfg["model"]), family, plan, method, 1)
    prec, mem = est.precision(False, None), m["metrics"]["memory"]
    assert m["trainable"]["trainable_params"] == counts.trained
    assert mem["grad_bytes"] == est.grad_bytes(counts.trained, prec, None, 1)
    # the trainer's record counts AdamW's 0-dim step counters too (4 bytes per trained tensor)
    assert mem["optimizer_state_bytes"] == est.adam_bytes(counts.trained, prec, None, 1) + 4 * mem["grad_tensors"]
    ckpt = est.checkpoint_bytes(counts, complete({"save_steps": 1}), _setup(zero=None), plan.method_kind(method))
    if method == "moe":  # a new structure: the whole model, experts included
        assert m["checkpoint_storage"]["format"] == ckpt["format"] == "full"
        written = (tmp_path / method / "model/model.safetensors").stat().st_size
        assert written == pytest.approx(ckpt["stage"], rel=0.01)
    else:  # sa_proj: the trained tensors; lora: the merged target weights (+ the projector)
        assert m["checkpoint_storage"]["changed_bytes"] == ckpt["stage"]
    saved = tmp_path / method / "trainer/checkpoint-1"  # whole model (LoRA: adapters + projector) + AdamW
    measured = sum(f.stat().st_size for f in [*saved.glob("*.safetensors"), saved / "optimizer.pt"])
    assert measured == pytest.approx(ckpt["in_stage"], rel=0.03), (measured, ckpt["in_stage"])


def _setup(zero, world=1, fmt="delta"):
    return types.SimpleNamespace(zero=zero, world=world, fmt=fmt, offload=False)


def test_zero_partitioning_matches_the_measured_per_rank_state():
    """docs/cluster.md measured torch AdamW state per rank (benchmarks/zero_memory.py: tiny LLaVA,
    hidden 512, recipe full, 2 processes): DDP 174.7 MiB, ZeRO-2 and ZeRO-3 87.3 MiB."""
    cfg = _default_cfg()
    # the measured model: the word tokenizer of then (217 words), so a base of the former prior
    cfg["model"]["tiny"] = {"hidden_size": 512, "intermediate_size": 2048, "num_layers": 4,
                            "vision_hidden_size": 512, "vision_intermediate_size": 2048, "tokenizer": "word"}
    cfg["model"]["base_training"]["skills"] = ["syn_color", "syn_shape", "syn_position", "syn_prior"]
    family = get_family("tiny_llava")
    n = est.count_job(est.meta_model(family, cfg["model"]), family, Plan(cfg), "full", 1).trained
    assert round(n / 1e6, 1) == 22.9
    for zero, measured in ((None, 174.7), (2, 87.3), (3, 87.3)):
        formula = est.adam_bytes(n, est.precision(False, zero), zero, 2) / MiB
        assert formula == pytest.approx(measured, rel=0.01), (zero, formula)
    # what the measurement leaves out: DeepSpeed's fp32 copy of the partition (ZeRO-2 clones it
    # even in fp32; ZeRO-3 steps the fp32 partition itself) and, under bf16, a 2-byte model
    assert est.master_bytes(n, est.precision(False, 2), 2, 2) == n * 4 / 2
    assert est.master_bytes(n, est.precision(False, 3), 3, 2) == 0
    bf16 = est.precision(True, 2)
    assert (bf16.weights, bf16.grads, bf16.adam + bf16.master) == (2, 2, 12)  # ZeRO paper's 2 + 2 + 12 bytes
    assert est.weight_bytes(n, bf16, 3, 4) == n * 2 / 4 and est.weight_bytes(n, bf16, 2, 4) == n * 2
    assert est.grad_bytes(n, bf16, 2, 4) == n * 2 / 4 and est.grad_bytes(n, bf16, 1, 4) == n * 2
    assert est.grad_bytes(n, est.precision(True, None), None, 4) == n * 4 * 2  # DDP: grads + buckets


@pytest.mark.parametrize("size", [(480, 640), (375, 500), (1920, 768), (768, 1920), (2304, 2304), (1000, 30),
                                  (4000, 3000)])
def test_image_tokens_equal_the_processors(size):
    """The image-token counts equal transformers' own processor arithmetic (called without a
    tokenizer or weights): LLaVA-OneVision anyres_max_9, LLaVA-NeXT anyres, Qwen2.5-VL and Qwen3-VL smart_resize."""
    from transformers.models.llava_next.processing_llava_next import LlavaNextProcessor
    from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    from lmmcl import registry

    def reference(cls, pins, tile, **attrs):
        ns = types.SimpleNamespace(image_processor=types.SimpleNamespace(image_grid_pinpoints=pins), **attrs)
        ns._get_unpadded_features = types.MethodType(cls._get_unpadded_features, ns)
        return cls._get_number_of_features(ns, *size, tile, tile)

    ov = registry.hf_config("llava-onevision-qwen2-7b-ov-hf.json")["image_grid_pinpoints"]
    nx = registry.hf_config("llama3-llava-next-8b-hf.json")["image_grid_pinpoints"]
    assert est.anyres_tokens(size, ov, 384, 14, 9, 0)[0] == reference(
        LlavaOnevisionProcessor, ov, 384, num_image_tokens=729, vision_aspect_ratio="anyres_max_9")
    assert est.anyres_tokens(size, nx, 336, 14, None, 1)[0] == reference(
        LlavaNextProcessor, nx, 336, patch_size=14, num_additional_image_tokens=1) - 1  # "default": no CLS
    h, w = smart_resize(*size, 28, est.QWEN_MIN_PIXELS, est.QWEN_MAX_PIXELS)
    assert est.qwen_tokens(size)[0] == h * w // 28 ** 2
    # Qwen3-VL: Qwen2-VL's image processor with 16 px patches and its own pixel bounds
    h, w = smart_resize(*size, 32, est.QWEN3_MIN_PIXELS, est.QWEN3_MAX_PIXELS)
    assert est.qwen_tokens(size, 16, 2, est.QWEN3_MIN_PIXELS, est.QWEN3_MAX_PIXELS) == (h * w // 32 ** 2, h * w // 16 ** 2)


@pytest.mark.parametrize("config", PAPER)
def test_resources_on_the_paper_configs(config):
    """A row per method, fast, no weights; the bf16 weights under ZeRO-2 are 2 bytes x the
    meta-device parameter count (to the GiB shown, and exactly in --json)."""
    from lmmcl.models.meta import build_meta

    t0 = time.perf_counter()
    code, out, _ = _run("--configfile", f"config/{config}.yaml")
    assert code == 0 and time.perf_counter() - t0 < 30
    cfg = yaml.safe_load((ROOT / f"config/{config}.yaml").read_text())
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0] in cfg["methods"]}
    assert set(rows) == set(cfg["methods"]), out
    n = sum(p.numel() for p in build_meta(cfg["model"]["family"]).parameters())
    for cells in rows.values():
        assert float(cells[3]) == pytest.approx(2 * n / 2 ** 30, rel=0.01)  # weights (GiB)
    code, out, _ = _run("--configfile", f"config/{config}.yaml", "--json")
    jobs = json.loads(out)["jobs"]
    assert len(jobs) == 5 * len(cfg["methods"]) and all(j["memory"]["weights"] == 2 * n for j in jobs)


def test_a_small_gpu_warns_and_strict_fails():
    args = ["--configfile", "config/paper_llava_onevision.yaml", "--gpu-memory-gib", "1"]
    code, out, _ = _run(*args)
    warnings = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert code == 0 and len(warnings) == 9
    assert "WARNING: full stages 1-5: " in out and "exceeds --gpu-memory-gib 1 by " in out
    code, out, _ = _run(*args, "--strict")
    assert code == 1 and out.count("WARNING") == 9
    code, out, _ = _run("--configfile", "config/paper_llava_onevision.yaml", "--strict")
    assert code == 0 and "WARNING" not in out


def test_bad_input_is_named(tmp_path):
    code, _, err = _run("--configfile", "config/nope.yaml")
    assert code == 2 and "'config/nope.yaml': no such file" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "config/paper_llava_onevision.yaml").read_text().replace("family: llava_onevision",
                                                                                    "family: llava_nine"))
    code, _, err = _run("--configfile", str(bad))
    assert code == 2 and "unknown model family 'llava_nine'" in err and "llava_onevision" in err
    code, _, err = _run("--configfile", "config/paper_llava_onevision.yaml", "--image-size", "big")
    assert code == 2 and "image size 'big'" in err
    code, _, err = _run("--configfile", "config/paper_llava_onevision.yaml", "--train-examples", "cub200")
    assert code == 2 and "--train-examples 'cub200'" in err

"""Know before you submit: GPU memory, checkpoint bytes and GPU-hours of every training job of a
config, from parameter counts on the meta device (no weights are loaded). `lmmcl resources`
prints them; docs/resources.md explains every formula and how it was validated.

The formulas are pure functions of parameter counts, byte sizes, the ZeRO stage and the world
size (first section); `estimate(plan, ...)` builds one row per training job from a `Plan`
(second section); `format_text` renders them as a table (`lmmcl resources --json` prints the dict).
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

GiB = 2 ** 30
DEFAULT_GPU_MEMORY_GIB = 80.0
DEFAULT_PEAK_TFLOPS = 989.0   # H100 SXM, dense bf16 (no sparsity)
DEFAULT_MFU = 0.35            # model FLOPs utilisation assumed for training
DEFAULT_TEXT_TOKENS = 512     # prompt + answer + chat template per example (CUB's 26 options ~ 250)
TINY_TEXT_TOKENS = 32         # the tiny default's word-level questions and answers
MEAN_IMAGE = (480, 640)       # (height, width) of the typical image behind the GPU-hours
# Qwen2.5-VL has no grid in its config: the peak image is LLaVA-OneVision's largest pinpoint side,
# so the families compare at one image size; the checkpoint's processor (preprocessor_config.json,
# min/max_pixels) caps an image at 12,845,056 pixels = 16,384 tokens (--image-size 3584x3584).
QWEN_PEAK_IMAGE = (2304, 2304)
QWEN_MIN_PIXELS, QWEN_MAX_PIXELS = 3136, 12845056
# Qwen3-VL's processor (Qwen2-VL's image processor with 16 px patches): `size` shortest_edge 65,536
# and longest_edge 16,777,216 pixels in Qwen/Qwen3-VL-8B-Instruct's preprocessor_config.json,
# i.e. [64, 16,384] tokens of 32² px
QWEN3_MIN_PIXELS, QWEN3_MAX_PIXELS = 65536, 16777216
QWEN_KINDS = ("qwen2_5_vl", "qwen3_vl")  # smart_resize images, the merger after the 2x2 merge
# Train-split sizes where neither the converted parquet nor --train-examples says: the sources'
# published counts (upper bounds: the converters skip unusable rows). timeclock is built here
# (a partition of its hub set), so it has none.
PUBLISHED_TRAIN_EXAMPLES = {
    "cub200": 5994,       # CUB-200-2011 train_test_split.txt (docs/data.md)
    "pixmocount": 36916,  # allenai/pixmo-count train rows, before cleaning (docs/data.md: ~36.9k)
    "pathvqa": 19654,     # flaviagiammarino/path-vqa train split
    "textvqa": 34602,     # lmms-lab/textvqa train split
}


# ============================ formulas (bytes per GPU) =====================================

@dataclass(frozen=True)
class Precision:
    """Bytes per parameter (weights, grads, adam, master, step_grads) and per activation."""
    weights: int      # every parameter, as held in GPU memory
    grads: int        # per trained parameter
    adam: int         # torch AdamW: exp_avg + exp_avg_sq per trained parameter
    master: int       # DeepSpeed's fp32 copy of the trained weights (its partition), stepped by AdamW
    step_grads: int   # DeepSpeed's fp32 gradient partition, made at the optimizer step
    activations: int


def precision(bf16: bool, zero: int | None) -> Precision:
    """What the code holds. zero None = no DeepSpeed: lmmcl loads the model in float32 and the
    Trainer's `bf16` is autocast, so weights, grads and AdamW states stay fp32 and only the
    activations are bf16. DeepSpeed with bf16 casts the whole module to bf16 and keeps fp32
    master weights of the trained partition (ZeRO-1/2: `single_partition_of_fp32_groups`, ZeRO-3:
    `fp32_partitioned_groups_flat`); AdamW steps those, so its states are fp32. In fp32, ZeRO-1/2
    still clone the partition (stage_1_and_2.py), ZeRO-3 reuses it (stage3.py)."""
    if zero is None:
        return Precision(4, 4, 8, 0, 0, 2 if bf16 else 4)
    if bf16:
        return Precision(2, 2, 8, 4, 4, 2)
    return Precision(4, 4, 8, 0 if zero == 3 else 4, 4, 4)


def _share(nbytes: float, partitioned: bool, world: int) -> float:
    return nbytes / world if partitioned else nbytes


def weight_bytes(n_total: int, prec: Precision, zero: int | None, world: int) -> float:
    """All parameters; ZeRO-3 partitions them over the ranks."""
    return _share(n_total * prec.weights, zero == 3, world)


def grad_bytes(n_trained: int, prec: Precision, zero: int | None, world: int) -> float:
    """Gradients of the trained parameters; ZeRO-2/3 partition them. Plain DDP (world > 1) holds
    them twice: torch DDP's allreduce buckets are copies (gradient_as_bucket_view=False)."""
    g = n_trained * prec.grads
    if zero is None:
        return g * (2 if world > 1 else 1)
    return _share(g, zero >= 2, world)


def adam_bytes(n_trained: int, prec: Precision, zero: int | None, world: int) -> float:
    """torch AdamW's exp_avg + exp_avg_sq (its per-tensor `step` counters are 0-dim CPU tensors,
    not GPU memory); every ZeRO stage partitions them."""
    return _share(n_trained * prec.adam, zero is not None and zero >= 1, world)


def master_bytes(n_trained: int, prec: Precision, zero: int | None, world: int) -> float:
    """DeepSpeed's fp32 master weights of the trained parameters, partitioned like the states."""
    return _share(n_trained * prec.master, zero is not None and zero >= 1, world)


def optimizer_bytes(n_trained: int, prec: Precision, zero: int | None, world: int) -> float:
    """What the optimizer column shows: AdamW states + master weights."""
    return adam_bytes(n_trained, prec, zero, world) + master_bytes(n_trained, prec, zero, world)


def step_grad_bytes(n_trained: int, prec: Precision, zero: int | None, world: int) -> float:
    """DeepSpeed's fp32 gradient partition, alive at the optimizer step (not during backward)."""
    return _share(n_trained * prec.step_grads, zero is not None and zero >= 1, world)


@dataclass(frozen=True)
class Tower:
    """A transformer stack: what its per-token activations depend on."""
    layers: int
    hidden: int
    kv_hidden: int       # key/value width (GQA: hidden x kv_heads / heads)
    intermediate: int
    heads: int
    gated: bool          # SwiGLU MLP (gate, up, down) vs fc1 -> activation -> fc2
    rms_norm: bool       # RMSNorm (computed in fp32) vs LayerNorm
    act_saves: int = 1   # width-I tensors a plain MLP's activation keeps: gelu 1, quick_gelu 2 (x, sigmoid)
    head_dim: int = 0    # rotary embedding width (LLM): cos and sin are kept once per stack


@dataclass(frozen=True)
class LayerTrain:
    """What trains in one layer: it decides which inputs autograd keeps for weight gradients."""
    norm1: bool = False
    qkv: bool = False
    norm2: bool = False
    mlp_in: bool = False        # gate/up (fc1); MoE: the router or any expert
    mlp_out: bool = False       # down (fc2)
    experts: int = 1            # MLP experts (MoE baseline: the frozen original + the added ones)
    experts_trained: int = 0    # MoE: experts whose weights train
    lora: tuple = ()            # (in_features, out_features) of the layer's LoRA targets
    input_grad: bool = True     # the layer's input needs a gradient (something before it trains)


ALL_TRAIN = LayerTrain(True, True, True, True, True)


def layer_bytes(t: Tower, f: LayerTrain, act: int, residual: int, *, gqa_native: bool = True,
                lora_r: int = 0, lora_dropout: bool = False, mask_bytes: int = 1, ln_stat_bytes: int = 4) -> float:
    """Bytes per token autograd keeps in one layer that takes part in backward, as counted with
    torch.autograd.graph.saved_tensors_hooks (tests/test_resources_estimate.py). `act`: bytes of
    an activation (2 under bf16), `residual`: of the residual stream (the weights' dtype).

    A linear layer keeps its input only when its weight trains; an op keeps anything only when
    some input needs a gradient, so in a layer whose input needs none (nothing trains before it)
    saving starts at its first trained part. SDPA/flash attention keeps q, k, v, its output (also
    o_proj's input) and an fp32 logsumexp per head, no s² scores (Korthikanti et al. 2022's count
    without those). gqa_native: k and v at their GQA width (SDPA without a mask: batch 1, no
    padding; transformers repeats them to full width otherwise). CUDA's dropout mask is 1 byte and
    its LayerNorm statistics fp32 (`mask_bytes`, `ln_stat_bytes`: CPU's differ, see the tests)."""
    h, i = t.hidden, t.intermediate
    kv = t.kv_hidden if gqa_native else h
    g_attn = f.input_grad or f.norm1 or f.qkv        # attention's inputs need a gradient
    g_h2 = g_attn or f.norm2                          # the MLP's input needs a gradient
    g_mlp = g_h2 or f.mlp_in                          # the MLP's hidden (an expert's: if it trains)
    if t.rms_norm:  # x.float() kept for pow and the rsqrt, in fp32; the normed x when the weight trains
        norm = (h + 1) * 4
        norms = (f.input_grad + g_attn) * norm + (f.norm1 + f.norm2) * h * act
    else:  # LayerNorm: its input and its mean and rstd
        norms = (f.input_grad + g_attn) * (h * residual + 2 * ln_stat_bytes)
    attn = f.qkv * h * act + g_attn * ((h + 2 * kv + h) * act + t.heads * 4)
    if t.gated:  # per expert: the SiLU input, its output and up's output (the product's operands)
        moe = f.experts > 1
        hidden = (f.experts if g_h2 else f.experts_trained) if moe else g_mlp
        mlp = (f.mlp_in * h + hidden * 3 * i + (f.experts_trained if moe else f.mlp_out) * i) * act
    else:
        mlp = (f.mlp_in * h + g_mlp * t.act_saves * i + f.mlp_out * i) * act
    if f.experts > 1 and g_mlp:  # each expert's output and router weight; the router's fp32 softmax
        mlp += f.experts * (h * act + 4 + (act if act != 4 else 0))  # (its cast to act is a copy in bf16)
    if lora_dropout:  # per target: the dropout's mask and output (lora_A's input), lora_A's output
        lora = sum(d_in * (mask_bytes + act) + lora_r * act for d_in, _ in f.lora)
    else:  # lora_A keeps the target's input: one tensor per distinct input width (approximately)
        lora = sum({d_in for d_in, _ in f.lora}) * act + len(f.lora) * lora_r * act
    return norms + attn + mlp + lora


def stack_bytes(t: Tower, flags: list, tokens: int, act: int, residual: int, checkpointing: bool, *,
                head_bytes: float = 0.0, **layer_kw) -> float:
    """Peak activations of a stack for `tokens` tokens (batch x sequence); `flags`: a LayerTrain
    per layer, None where nothing needs a gradient (nothing trains at or before it: autograd keeps
    nothing). With gradient checkpointing: the input of every such layer (one hidden state at the
    residual dtype) plus one layer's full activations (recomputed in backward), or the head's
    (`head_bytes`: final norm, logits and loss) if larger, since those are freed before backward
    reaches the layers. Without: every layer's plus the head's. Rotary cos/sin: once."""
    per_layer = [tokens * layer_bytes(t, f, act, residual, **layer_kw) for f in flags if f is not None]
    if not per_layer:
        return 0.0
    rope = tokens * 2 * t.head_dim * act
    if checkpointing:
        return len(per_layer) * tokens * t.hidden * residual + max(max(per_layer), head_bytes) + rope
    return sum(per_layer) + head_bytes + rope


def head_bytes(tokens: int, hidden: int, vocab: int, bf16: bool) -> float:
    """The final RMSNorm's fp32 input and the logits and loss: bf16 logits + the log-softmax of
    their fp32 copy + its fp32 gradient (HF ForCausalLMLoss upcasts) = 10 bytes per logit; fp32: 12."""
    return tokens * ((hidden + 1) * 4 + vocab * (10 if bf16 else 12))


def lora_params(targets: list[tuple[int, int]], r: int) -> int:
    """Adapter parameters: lora_A (r x in) + lora_B (out x r) per target nn.Linear (bias none)."""
    return sum(r * (i + o) for i, o in targets)


@dataclass(frozen=True)
class Component:
    """A part of the forward pass, in order (vision tower, projector, LLM)."""
    name: str
    tokens: int              # tokens it processes per example
    params: int              # matmul parameters (the LLM's input embedding, a lookup, left out)
    trained: int
    attn_flops: float = 0.0  # attention FLOPs per token, forward (no parameters)


def example_flops(parts: list[Component], checkpointing: bool, teacher: bool = False) -> float:
    """Training FLOPs of one example. Per component and token: forward 2·N (+ attention A);
    backward through the activations 2·N (+ 2·A) wherever a trained parameter lies at or before
    the component (the gradient must reach it); weight gradients 2·N_trained; gradient
    checkpointing recomputes the forward (2·N + A) where backward runs; an LwF teacher adds a
    forward (2·N + A). Full training without checkpointing: the familiar 6·N per token."""
    flops, upstream_trained = 0.0, False
    for c in parts:
        upstream_trained = upstream_trained or c.trained > 0
        back = 1 if upstream_trained else 0
        recompute = back if checkpointing else 0
        fwd = 2 * c.params + c.attn_flops
        per_token = fwd * (1 + recompute) + back * (2 * c.params + 2 * c.attn_flops) + 2 * c.trained
        flops += c.tokens * (per_token + (fwd if teacher else 0))
    return flops


def gpu_hours(flops: float, peak_tflops: float, mfu: float) -> float:
    """GPU-hours (summed over the job's GPUs) = FLOPs / (peak FLOP/s x MFU) / 3600."""
    return flops / (peak_tflops * 1e12 * mfu) / 3600


# ============================ image tokens of each family =================================

def select_best_resolution(size: tuple[int, int], pinpoints) -> tuple[int, int]:
    """transformers.image_processing_utils.select_best_resolution: the pinpoint (h, w) keeping
    the most of the image, then wasting the least."""
    h, w = size
    best, best_eff, best_waste = None, 0, float("inf")
    for ph, pw in pinpoints:
        scale = min(pw / w, ph / h)
        eff = min(int(w * scale) * int(h * scale), w * h)
        waste = ph * pw - eff
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (ph, pw), eff, waste
    return best


def anyres_tokens(size: tuple[int, int], pinpoints, tile: int, patch: int, max_tiles: int | None,
                  cls: int) -> tuple[int, int]:
    """(LLM image tokens, vision-tower patches) of an image under LLaVA-NeXT / OneVision anyres:
    the image is tiled at its best pinpoint, the tiles' features unpadded to the image's aspect,
    one newline token per row, plus the base tile; OneVision's anyres_max_N shrinks the grid to
    about N tiles' worth when it exceeds 1.1x that (processing_llava_{next,onevision}.py)."""
    h, w = size
    bh, bw = select_best_resolution(size, pinpoints)
    side = tile // patch
    sh, sw = bh // tile, bw // tile
    ch, cw = side * sh, side * sw
    if w / h > cw / ch:
        ch -= 2 * ((ch - int(round(h * (cw / w), 7))) // 2)
    else:
        cw -= 2 * ((cw - int(round(w * (ch / h), 7))) // 2)
    features, newlines = ch * cw, ch
    if max_tiles:
        ratio = math.sqrt(ch * cw / (max_tiles * side ** 2))
        if ratio > 1.1:
            features, newlines = int(ch // ratio) * int(cw // ratio), int(ch // ratio)
    return features + newlines + side * side, (1 + sh * sw) * (side * side + cls)


def qwen_tokens(size: tuple[int, int], patch: int = 14, merge: int = 2, min_pixels: int = QWEN_MIN_PIXELS,
                max_pixels: int = QWEN_MAX_PIXELS) -> tuple[int, int]:
    """(LLM image tokens, vision patches) of Qwen2.5-VL (Qwen3-VL: 16 px patches and its own
    pixel bounds): smart_resize to multiples of patch x merge (28) within [min_pixels, max_pixels],
    2x2 patches merged into one token."""
    h, w = size
    f = patch * merge
    hb, wb = round(h / f) * f, round(w / f) * f
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb, wb = max(f, math.floor(h / beta / f) * f), max(f, math.floor(w / beta / f) * f)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb, wb = math.ceil(h * beta / f) * f, math.ceil(w * beta / f) * f
    patches = (hb // patch) * (wb // patch)
    return patches // merge ** 2, patches


@dataclass(frozen=True)
class Geometry:
    """What the estimate needs of a family's architecture, read from its config."""
    kind: str                  # llava | llava_next | llava_onevision | qwen2_5_vl | qwen3_vl
    llm: Tower
    vision: Tower
    vocab: int
    vision_cfg: dict = field(default_factory=dict)
    pinpoints: tuple = ()

    def image(self, size: tuple[int, int] | None) -> tuple[int, int]:
        """(LLM image tokens, vision patches) of an image of `size` (h, w)."""
        v = self.vision_cfg
        if self.kind == "llava":  # resized to one tile; "default" strategy drops CLS
            side = v["image_size"] // v["patch_size"]
            return side * side, side * side + 1
        if self.kind in ("llava_next", "llava_onevision"):
            max_tiles = int(v["max_tiles"]) if v.get("max_tiles") else None
            return anyres_tokens(size, self.pinpoints, v["image_size"], v["patch_size"], max_tiles, v["cls"])
        return qwen_tokens(size, v["patch_size"], v["merge"], v["min_pixels"], v["max_pixels"])

    def peak_images(self) -> list[tuple[int, int]]:
        """Image sizes whose memory is the peak candidate: every pinpoint (the processor caps any
        image at one of them), Qwen's QWEN_PEAK_IMAGE, the tiny model's one tile."""
        if self.kind in ("llava_next", "llava_onevision"):
            return [tuple(p) for p in self.pinpoints]
        if self.kind in QWEN_KINDS:
            return [QWEN_PEAK_IMAGE]
        return [(self.vision_cfg["image_size"],) * 2]

    def vision_attn_flops(self, patches: int) -> float:
        """Vision attention FLOPs per patch, forward: 4·span·h per layer, span = the patches one
        attends to (a tile; Qwen: its window in most layers, the whole image in fullatt layers)."""
        v, h = self.vision_cfg, self.vision.hidden
        if self.kind == "qwen2_5_vl":
            full = len(v["fullatt"])
            window = (v["window"] // v["patch_size"]) ** 2
            return 4 * h * (full * patches + (self.vision.layers - full) * min(window, patches))
        if self.kind == "qwen3_vl":  # every block attends to the whole image
            return 4 * h * patches * self.vision.layers
        tile = patches if self.kind == "llava" else (v["image_size"] // v["patch_size"]) ** 2 + v["cls"]
        return 4 * h * tile * self.vision.layers


def _get(cfg, *names, default=None):
    for n in names:
        v = cfg.get(n) if isinstance(cfg, dict) else getattr(cfg, n, None)
        if v is not None:
            return v
    return default


def llm_tower(text) -> Tower:
    """Llama / Qwen2 decoder: RMSNorm, SwiGLU MLP, GQA, rotary embeddings."""
    h, heads = _get(text, "hidden_size"), _get(text, "num_attention_heads")
    kv = _get(text, "num_key_value_heads", default=heads)
    return Tower(layers=_get(text, "num_hidden_layers"), hidden=h, kv_hidden=h * kv // heads,
                 intermediate=_get(text, "intermediate_size"), heads=heads, gated=True, rms_norm=True,
                 head_dim=_get(text, "head_dim", default=h // heads))


# width-I tensors a plain MLP activation keeps: gelu(x) keeps x; quick_gelu x * sigmoid(1.702 x) keeps both
_ACT_SAVES = {"quick_gelu": 2}


def geometry(model_config) -> Geometry:
    """The Geometry of a transformers config object (the meta model's `.config`)."""
    kind = model_config.model_type
    text = model_config.text_config
    vocab = _get(text, "vocab_size")
    vc = model_config.vision_config
    if kind == "qwen2_5_vl":  # vision blocks: RMSNorm, SwiGLU MLP, full-width heads
        vision = Tower(layers=vc.depth, hidden=vc.hidden_size, kv_hidden=vc.hidden_size,
                       intermediate=vc.intermediate_size, heads=vc.num_heads, gated=True, rms_norm=True)
        v = {"patch_size": vc.patch_size, "merge": vc.spatial_merge_size, "window": vc.window_size,
             "fullatt": list(vc.fullatt_block_indexes), "min_pixels": QWEN_MIN_PIXELS, "max_pixels": QWEN_MAX_PIXELS}
        return Geometry(kind, llm_tower(text), vision, vocab, v)
    if kind == "qwen3_vl":  # vision blocks: LayerNorm, fc1 -> gelu -> fc2, full-width heads, no windows
        vision = Tower(layers=vc.depth, hidden=vc.hidden_size, kv_hidden=vc.hidden_size,
                       intermediate=vc.intermediate_size, heads=vc.num_heads, gated=False, rms_norm=False,
                       act_saves=_ACT_SAVES.get(vc.hidden_act, 1))
        v = {"patch_size": vc.patch_size, "merge": vc.spatial_merge_size,
             "min_pixels": QWEN3_MIN_PIXELS, "max_pixels": QWEN3_MAX_PIXELS}
        return Geometry(kind, llm_tower(text), vision, vocab, v)
    if kind not in ("llava", "llava_next", "llava_onevision"):
        raise ValueError(f"model type {kind!r} has no resource model; allowed: llava, llava_next, "
                         f"llava_onevision, qwen2_5_vl, qwen3_vl")
    # CLIP / SigLIP encoder layers: LayerNorm, fc1 -> activation -> fc2, full-width heads
    vision = Tower(layers=vc.num_hidden_layers, hidden=vc.hidden_size, kv_hidden=vc.hidden_size,
                   intermediate=vc.intermediate_size, heads=vc.num_attention_heads, gated=False, rms_norm=False,
                   act_saves=_ACT_SAVES.get(vc.hidden_act, 1))
    v = {"image_size": vc.image_size, "patch_size": vc.patch_size,
         "cls": 1 if vc.model_type == "clip_vision_model" else 0,
         "max_tiles": str(getattr(model_config, "vision_aspect_ratio", "") or "").replace("anyres_max_", "") or None}
    pins = tuple(tuple(p) for p in getattr(model_config, "image_grid_pinpoints", None) or ())
    return Geometry(kind, llm_tower(text), vision, vocab, v, pins)


# ============================ rows from a Plan ==============================================

@dataclass
class Options:
    gpu_memory_gib: float = DEFAULT_GPU_MEMORY_GIB
    peak_tflops: float = DEFAULT_PEAK_TFLOPS
    mfu: float = DEFAULT_MFU
    text_tokens: int | None = None                # None: DEFAULT_TEXT_TOKENS (tiny_llava: TINY_TEXT_TOKENS)
    image_size: tuple[int, int] | None = None     # peak image; None: the family's candidates
    mean_image_size: tuple[int, int] = MEAN_IMAGE
    train_examples: dict = field(default_factory=dict)  # task -> examples (--train-examples)

    def __post_init__(self):
        for name, ok, allowed in (("gpu_memory_gib", self.gpu_memory_gib > 0, "> 0"),
                                  ("peak_tflops", self.peak_tflops > 0, "> 0"),
                                  ("mfu", 0 < self.mfu <= 1, "in (0, 1]"),
                                  ("text_tokens", self.text_tokens is None or self.text_tokens >= 0, ">= 0")):
            if not ok:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)!r}: allowed {allowed}")


@dataclass
class Counts:
    """Parameter counts of one job's model, from the meta device."""
    total: int
    trained: int
    by_component: dict            # name -> (params, trained) for vision_tower, projector, llm
    embeddings: int               # the LLM's input embedding table (a lookup: no FLOPs)
    saved_delta: int              # parameters a delta checkpoint stores (trained; LoRA: merged targets)
    saved_full: int               # parameters of a full save (the whole model)
    llm_flags: list = field(default_factory=list)   # LayerTrain (or None) per LLM layer
    vision_trained: bool = False
    experts: int = 1              # MLP experts per layer (MoE baseline)
    lora: dict = field(default_factory=dict)
    always_full: bool = False     # the stage is written in full (MoE: a new structure; the base)


def _component_counts(model, family, trained_names: set, extra: dict | None = None) -> dict:
    roles = family.roles
    out = {"vision_tower": [0, 0], "projector": [0, 0], "llm": [0, 0], "embeddings": [0, 0]}
    for name, p in model.named_parameters():
        part = next((r for r in ("vision_tower", "projector", "embeddings") if re.search(roles[r], name)), "llm")
        out[part][0] += p.numel()
        out[part][1] += p.numel() if name in trained_names else 0
    for part, (n, t) in (extra or {}).items():
        out[part][0] += n
        out[part][1] += t
    return out


_PART = [("norm1", r"input_layernorm\."), ("norm2", r"post_attention_layernorm\."),
         ("qkv", r"self_attn\.[qkv]_proj\."), ("mlp_in", r"mlp\.((gate|up)_proj|moe_router|moe_experts)\."),
         ("mlp_out", r"mlp\.down_proj\.")]


def llm_layer_flags(model, family, trained: set, upstream: bool, lora: dict | None = None) -> list:
    """A LayerTrain per LLM decoder layer from the parameter names (None: nothing at or before the
    layer trains, so autograd keeps nothing there). `upstream`: the vision tower, projector or
    embeddings train; `lora`: {layer index: [(in, out), ...]} of the LoRA targets."""
    layer = re.compile("(?:" + family.roles["llm_layers"] + r")\.(\d+)\.(.+)$")
    parts: dict = {}
    for name, _ in model.named_parameters():
        m = layer.search(name)
        if not m:
            continue
        d = parts.setdefault(int(m.group(1)), {"experts": set(), "trained_experts": set()})
        e = re.match(r"mlp\.moe_experts\.(\d+)\.", m.group(2))
        if e:
            d["experts"].add(e.group(1))
        if name in trained:
            d.update({k: True for k, pat in _PART if re.match(pat, m.group(2))})
            if e:
                d["trained_experts"].add(e.group(1))
    flags, seen = [], upstream
    for i in sorted(parts):
        d, targets = parts[i], tuple((lora or {}).get(i, ()))
        here = any(d.get(k) for k, _ in _PART) or bool(targets)
        if not (seen or here):
            flags.append(None)
            continue
        flags.append(LayerTrain(**{k: bool(d.get(k)) for k, _ in _PART}, experts=1 + len(d["experts"]),
                                experts_trained=len(d["trained_experts"]), lora=targets, input_grad=seen))
        seen = True
    return flags


def _counts(model, family, trained: set, extra: dict | None = None, lora_layers: dict | None = None,
            **kw) -> Counts:
    comp = _component_counts(model, family, trained, extra)
    total = sum(v[0] for v in comp.values())
    kw.setdefault("saved_full", total)
    vision = comp["vision_tower"][1] > 0
    upstream = vision or comp["projector"][1] > 0 or comp["embeddings"][1] > 0
    return Counts(total=total, trained=sum(v[1] for v in comp.values()),
                  by_component={c: tuple(comp[c]) for c in ("vision_tower", "projector", "llm")},
                  embeddings=comp["embeddings"][0], vision_trained=vision,
                  llm_flags=llm_layer_flags(model, family, trained, upstream, lora_layers), **kw)


def count_job(model, family, plan, method: str, k: int) -> Counts:
    """Parameter counts of `method`'s stage k, on a meta `model` (its requires_grad flags are
    set; MoE converts a copy). Mirrors lmmcl.train.stage: the recipe first, then the method's hook."""
    from . import recipes
    from .train.methods import NO_RECIPE, freeze_all

    kind, recipe, spec = plan.method_kind(method), plan.recipe(method), plan.method_spec(method)
    if kind == "moe":
        model = copy.deepcopy(model)
    if recipe == NO_RECIPE:
        freeze_all(model)
    else:
        recipes.apply(model, recipe, family=family, extra=plan.extra_recipes)
    if kind == "moe":
        return _count_moe(model, family, spec, k)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    saved = sum(p.numel() for n, p in model.named_parameters() if n in trained)
    if kind != "lora":
        return _counts(model, family, trained, saved_delta=saved)
    lora = _lora(model, family, spec)
    # merge_and_unload folds the adapters into the target weights: those are what the stage writes
    c = _counts(model, family, trained, {"llm": (lora["params"], lora["params"])}, lora.pop("layers"),
                saved_delta=saved + lora.pop("merged"), lora=lora)
    c.saved_full = c.total - lora["params"]
    return c


def _lora(model, family, spec: dict) -> dict:
    """LoRA's adapters on the meta model: the target nn.Linear modules (lmmcl.train.methods.lora)."""
    from .train.methods.lora import target_modules

    names = target_modules(model, spec["targets"])
    layer = re.compile("(?:" + family.roles["llm_layers"] + r")\.(\d+)\.")
    layers: dict = {}
    merged = 0
    for n in names:
        m = model.get_submodule(n)
        layers.setdefault(int(layer.search(n).group(1)), []).append((m.in_features, m.out_features))
        merged += m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
    shapes = [s for v in layers.values() for s in v]
    return {"r": int(spec["r"]), "dropout": float(spec["lora_dropout"]), "modules": len(names),
            "params": lora_params(shapes, int(spec["r"])), "merged": merged, "layers": layers}


def _count_moe(model, family, spec: dict, k: int) -> Counts:
    """The MoE baseline at stage k: every LLM MLP gets `experts` trainable copies and a router;
    with expert_per_task each stage adds `experts` more and trains only its own."""
    from .models.moe import add_experts, convert, moe_layers
    from .train.methods.moe import set_trainable

    n, per_task = int(spec["experts"]), bool(spec["expert_per_task"])
    convert(model, n, spec["top_k"], per_task)
    for _ in range(k - 1 if per_task else 0):
        add_experts(model, n)
    set_trainable(model, last_n=n if per_task else None)
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    return _counts(model, family, trained, saved_delta=0, experts=moe_layers(model)[0].num_experts,
                   always_full=True)


def train_examples(plan, task: str, hp: dict, opts: Options) -> tuple[int | None, str]:
    """(examples of the train split, where the number comes from): --train-examples, the
    converted parquet (data.root), the config (synthetic skills), the published size, else None."""
    from . import registry

    if task in opts.train_examples:
        n, src = int(opts.train_examples[task]), "option"
    else:
        root = Path(((plan.cfg.get("data") or {}).get("root")) or "data")
        parquet = root / task / "train.parquet"
        if parquet.is_file():
            import pyarrow.parquet as pq

            n, src = pq.ParquetFile(parquet).metadata.num_rows, "parquet"
        elif (registry.datasets().get(task) or {}).get("source") == "synthetic":
            syn = ((plan.cfg.get("data") or {}).get("synthetic") or {})
            n, src = int((syn.get("train_sizes") or {}).get(task, syn.get("train_size", 2000))), "config"
        elif task in PUBLISHED_TRAIN_EXAMPLES:
            n, src = PUBLISHED_TRAIN_EXAMPLES[task], "published"
        else:
            return None, "unknown"
        if (plan.cfg.get("data") or {}).get("limit") and src != "config":  # the converters keep the first N
            n = min(n, int(plan.cfg["data"]["limit"]))
    if hp.get("limit"):
        n = min(n, int(hp["limit"]))
    return n, src


def examples_trained(n: int | None, hp: dict, world: int) -> int | None:
    """Examples one stage trains on (lmmcl.train.trainer.ordered_examples): steps x batch x
    grad_accum x processes, else epochs x split size (at least one optimizer step)."""
    per_step = int(hp["batch_size"]) * int(hp["grad_accum"]) * world
    if hp.get("steps"):
        return int(hp["steps"]) * per_step
    return None if n is None else max(per_step, round(float(hp["epochs"]) * n))


@dataclass
class Setup:
    """What every job of the plan shares: model, launch, sequence."""
    family: str
    checkpoint: str | None
    geometry: Geometry
    world: int
    zero: int | None
    offload: bool
    fmt: str
    text_tokens: int
    mean: dict        # the image behind the GPU-hours: size, image tokens, vision patches, sequence


def _deepspeed(plan) -> tuple[int | None, bool]:
    from .train import dsconfig

    path = plan.deepspeed_config()
    if path is None:
        return None, False
    ds = dsconfig.load(path)
    zero = ds.get("zero_optimization") or {}
    offload = (zero.get("offload_optimizer") or {}).get("device", "none") not in (None, "none")
    return dsconfig.zero_stage(ds), offload


def _image(geom: Geometry, size, text_tokens: int) -> dict:
    if geom.kind == "llava":  # plain LLaVA resizes every image to its one tile
        size = geom.peak_images()[0]
    tokens, patches = geom.image(size)
    return {"image_size": list(size) if size else None, "image_tokens": tokens, "vision_patches": patches,
            "text_tokens": text_tokens, "sequence": tokens + text_tokens}


def memory(counts: Counts, hp: dict, setup: Setup, kind: str, img: dict) -> dict:
    """Bytes per GPU of one job for one image size, by part; `total` is the peak."""
    bf16, gc, b = bool(hp["bf16"]), bool(hp["gradient_checkpointing"]), int(hp["batch_size"])
    prec = precision(bf16, setup.zero)
    g, zero, world = setup.geometry, setup.zero, setup.world
    seq = b * img["sequence"]
    a, r = prec.activations, prec.weights  # the residual stream has the weights' dtype
    lora = {"lora_r": counts.lora["r"], "lora_dropout": counts.lora["dropout"] > 0} if counts.lora else {}
    act = stack_bytes(g.llm, counts.llm_flags, seq, a, r, gc, head_bytes=head_bytes(seq, g.llm.hidden, g.vocab, bf16),
                      gqa_native=b == 1, **lora)
    if counts.vision_trained:  # frozen and first: autograd keeps nothing there; trained: its
        # activations wait through the whole LLM backward (recipes train it whole: every layer)
        act += stack_bytes(g.vision, [ALL_TRAIN] * g.vision.layers, b * img["vision_patches"], a, r, gc)
    opt = 0.0 if setup.offload else optimizer_bytes(counts.trained, prec, zero, world)
    step = 0.0 if setup.offload else step_grad_bytes(counts.trained, prec, zero, world)
    # LwF: lwf.py loads the parent a second time with load_model's default dtype, float32, whole on
    # every rank (not part of the DeepSpeed engine), and holds its fp32 logits
    teacher = counts.total * 4 + seq * g.vocab * 4 if kind == "lwf" else 0.0
    parts = {"weights": weight_bytes(counts.total, prec, zero, world),
             "grads": grad_bytes(counts.trained, prec, zero, world), "optimizer": opt,
             "activations": act, "teacher": teacher, "step_grads": step}
    # backward holds grads + activations; the step holds DeepSpeed's fp32 gradient partition instead
    parts["total"] = parts["weights"] + teacher + opt + max(parts["grads"] + act, step)
    return parts


def checkpoint_bytes(counts: Counts, hp: dict, setup: Setup, kind: str) -> dict:
    """Bytes a stage writes: its checkpoint (delta: the trained tensors, LoRA's merged targets,
    at the dtype the model trains in; full / MoE: the whole model) and, with save_steps, each
    in-stage checkpoint: the Trainer's model save + optimizer (torch: optimizer.pt; DeepSpeed:
    its module states, whole unless ZeRO-3, + fp32 master and AdamW partitions of every rank)."""
    prec = precision(bool(hp["bf16"]), setup.zero)
    full = setup.fmt == "full" or counts.always_full
    stage = (counts.saved_full if full else counts.saved_delta) * prec.weights
    if kind == "wise_ft":  # the merge job writes a second stage of the same tensors
        stage *= 2
    in_stage = None
    if hp.get("save_steps"):
        # a PEFT model's save holds the adapters + the parameters trained in full next to them
        model_bytes = (counts.trained if counts.lora else counts.total) * prec.weights
        if setup.zero is None:
            in_stage = model_bytes + counts.trained * prec.adam
        else:
            module = 0 if setup.zero == 3 else model_bytes
            in_stage = model_bytes + module + counts.trained * (prec.adam + 4)
    return {"stage": stage, "format": "full" if full else "delta", "in_stage": in_stage}


def components(counts: Counts, setup: Setup, img: dict) -> list[Component]:
    g = setup.geometry
    vt, pj, llm = (counts.by_component[c] for c in ("vision_tower", "projector", "llm"))
    seq = img["sequence"]
    proj_tokens = img["image_tokens"] if g.kind in QWEN_KINDS else img["vision_patches"]
    return [Component("vision_tower", img["vision_patches"], vt[0], vt[1], g.vision_attn_flops(img["vision_patches"])),
            Component("projector", proj_tokens, pj[0], pj[1]),
            # causal attention: q·k and attn·v over seq/2 keys on average = 2·seq·h per layer
            Component("llm", seq, llm[0], llm[1], 2 * seq * g.llm.hidden * g.llm.layers)]


def _peak_memory(counts, hp, setup, kind, opts) -> tuple[dict, dict]:
    sizes = [opts.image_size] if opts.image_size else setup.geometry.peak_images()
    best = None
    for size in sizes:
        img = _image(setup.geometry, size, setup.text_tokens)
        mem = memory(counts, hp, setup, kind, img)
        if best is None or mem["total"] > best[0]["total"]:
            best = (mem, img)
    return best


def setup_of(plan, opts: Options) -> tuple[Setup, object, object]:
    """The plan's shared setup, its family and a meta model of it (no weights)."""
    from .models.families import get_family

    model_cfg = plan.cfg.get("model") or {}
    family = get_family(model_cfg.get("family"))
    model = meta_model(family, model_cfg)
    geom = geometry(model.config)
    zero, offload = _deepspeed(plan)
    fmt = ((plan.cfg.get("checkpoints") or {}).get("format")) or "delta"
    text = opts.text_tokens if opts.text_tokens is not None else (DEFAULT_TEXT_TOKENS if family.hf_config
                                                                  else TINY_TEXT_TOKENS)
    mean = _image(geom, opts.mean_image_size, text)
    setup = Setup(family.name, model_cfg.get("checkpoint"), geom, plan.world_size, zero, offload, fmt, text, mean)
    return setup, family, model


def meta_model(family, model_cfg: dict):
    """The family's model on the meta device: the shipped config.json of its default checkpoint,
    or for tiny_llava the config's `model.tiny` sizes."""
    import torch

    from .models.meta import build_meta

    if family.hf_config:
        return build_meta(family.name)
    from .models.tiny import TinySpec, build_tiny_llava

    with torch.device("meta"):
        model, _ = build_tiny_llava(TinySpec.from_dict(model_cfg.get("tiny")), seed=0)
    return model


@dataclass(frozen=True)
class JobSpec:
    """One training job to estimate."""
    method: str         # the config's method name; BASE for the tiny base's pre-training
    kind: str           # sft, lora, lwf, wise_ft, moe
    recipe: str
    stage: int          # 0: the base
    task: str           # the stage's task ("" for the base)
    hparams: dict
    examples: tuple     # (train-split examples or None, where the number comes from)
    world: int
    zero: int | None


BASE = "(base)"


def job(spec: JobSpec, counts: Counts, setup: Setup, opts: Options) -> dict:
    """One training job: memory per GPU, checkpoint bytes, data and GPU-hours."""
    hp = spec.hparams
    js = Setup(**{**setup.__dict__, "world": spec.world, "zero": spec.zero,
                  "offload": setup.offload and spec.zero is not None})
    mem, img = _peak_memory(counts, hp, js, spec.kind, opts)
    n, source = spec.examples
    examples = examples_trained(n, hp, js.world)
    flops = example_flops(components(counts, js, js.mean), bool(hp["gradient_checkpointing"]),
                          teacher=spec.kind == "lwf")
    return {"method": spec.method, "kind": spec.kind, "recipe": spec.recipe, "stage": spec.stage, "task": spec.task,
            "world_size": js.world, "zero": js.zero,
            "params": {"total": counts.total, "trained": counts.trained, "experts": counts.experts,
                       **({"lora": counts.lora} if counts.lora else {})},
            "memory": mem, "peak_image": img, "checkpoint": checkpoint_bytes(counts, hp, js, spec.kind),
            "data": {"examples": n, "source": source, "examples_trained": examples},
            "flops_per_example": flops, "tokens": None if examples is None else examples * js.mean["sequence"],
            "gpu_hours": None if examples is None else gpu_hours(examples * flops, opts.peak_tflops, opts.mfu),
            "hparams": {k: hp[k] for k in ("batch_size", "grad_accum", "steps", "epochs", "bf16",
                                             "gradient_checkpointing", "save_steps", "limit")}}


def _count_base(model, family) -> Counts:
    """The tiny base's pre-training: recipe full, written in full (lmmcl.train.stage.build_base)."""
    names = {n for n, _ in model.named_parameters()}
    return _counts(model, family, names, saved_delta=model_params(model), always_full=True)


def _base_job(plan, opts: Options) -> JobSpec:
    """The tiny base's pre-training on model.base_training: one process, no DeepSpeed."""
    from .train.hparams import complete

    hp = complete(plan.base_training["hparams"])
    sizes = [train_examples(plan, t, {}, opts) for t in plan.base_training["skills"]]
    n = None if any(s is None for s, _ in sizes) else sum(s for s, _ in sizes)
    if n is not None and hp.get("limit"):
        n = min(n, int(hp["limit"]))
    return JobSpec(BASE, "sft", "full", 0, "", hp, (n, "config"), 1, None)


def job_specs(plan, setup: Setup, opts: Options, trains_base: bool) -> list[JobSpec]:
    specs = [_base_job(plan, opts)] if trains_base else []
    for m in plan.methods:
        for s in plan.stages(m):
            hp = plan.hparams(m, s.task)
            specs.append(JobSpec(m, plan.method_kind(m), plan.recipe(m), s.k, s.task, hp,
                                 train_examples(plan, s.task, hp, opts), setup.world, setup.zero))
    return specs


def estimate(plan, opts: Options | None = None) -> dict:
    """Every training job of the plan (per method and stage; the tiny base's pre-training too),
    for one seed, plus the totals over the DAG (all seeds) and the warnings."""
    opts = opts or Options()
    setup, family, model = setup_of(plan, opts)
    trains_base = not family.hf_config and bool(plan.base_training["skills"])
    jobs = []
    for spec in job_specs(plan, setup, opts, trains_base):
        counts = (_count_base(model, family) if spec.method == BASE
                  else count_job(model, family, plan, spec.method, spec.stage))
        jobs.append(job(spec, counts, setup, opts))
    budget = opts.gpu_memory_gib * GiB
    rows = group_rows(jobs)
    warnings = [f"WARNING: {r['label']}: {r['memory']['total'] / GiB:.1f} GiB per GPU exceeds --gpu-memory-gib "
                f"{opts.gpu_memory_gib:g} by {(r['memory']['total'] - budget) / GiB:.1f} GiB"
                for r in rows if r["memory"]["total"] > budget]
    known = [j["gpu_hours"] for j in jobs if j["gpu_hours"] is not None]
    unknown = sorted({j["task"] or BASE for j in jobs if j["gpu_hours"] is None})
    return {"setup": {**{k: v for k, v in setup.__dict__.items() if k != "geometry"},
                      "geometry": asdict(setup.geometry), "total_params": model_params(model)},
            "options": asdict(opts), "seeds": len(plan.seeds), "jobs": jobs, "rows": rows, "warnings": warnings,
            "total_gpu_hours": sum(known) * len(plan.seeds), "unknown_tasks": unknown,
            "evaluation": "not estimated (lmms-eval generation over every checkpoint and benchmark)"}


def model_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


_SAME = ("kind", "recipe", "params", "memory", "checkpoint", "world_size")


def group_rows(jobs: list[dict]) -> list[dict]:
    """Consecutive stages of one method with identical hyperparameters (seed aside), counts,
    memory and checkpoints share a row; GPU-hours are summed over its stages."""
    rows: list[dict] = []
    for j in jobs:
        last = rows[-1] if rows else None
        if last and last["method"] == j["method"] and last["hparams"] == j["hparams"] \
                and all(last[k] == j[k] for k in _SAME):
            last["stages"].append(j["stage"])
            last["tasks"].append(j["task"])
            last["_hours"].append(j["gpu_hours"])
        else:
            rows.append({**{k: j[k] for k in ("method", "hparams", "peak_image", *_SAME)},
                         "stages": [j["stage"]], "tasks": [j["task"]], "_hours": [j["gpu_hours"]]})
    for r in rows:
        hours = r.pop("_hours")
        r["gpu_hours"] = sum(h for h in hours if h is not None)
        r["unknown_stages"] = [t for t, h in zip(r["tasks"], hours) if h is None]
        st = r["stages"]
        r["stage_label"] = str(st[0]) if len(st) == 1 else f"{st[0]}-{st[-1]}"
        r["label"] = f"{r['method']} stage{'s' if len(st) > 1 else ''} {r['stage_label']}"
    return rows


# ============================ rendering ======================================================

def _small(v: float) -> str:
    """One decimal, or two significant digits below 0.05 (the tiny model's bytes and hours)."""
    return "0" if v == 0 else f"{v:,.1f}" if v >= 0.05 else f"{v:.2g}"


def _gib(x) -> str:
    return "—" if x is None else _small(x / GiB)


def _params(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n:,}"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(l) for l in lines)]


def _mode(zero, world) -> str:
    if zero is None:
        return "DDP" if world > 1 else "1 process"
    return f"DeepSpeed ZeRO-{zero}"


def _values(jobs: list[dict], fn) -> str:
    """One value when every stage job agrees, else each value (they differ by method/stage)."""
    vals = list(dict.fromkeys(fn(j) for j in jobs if j["stage"] > 0))
    return vals[0] if len(vals) == 1 else " / ".join(vals) + " (by job, see --json)"


def format_text(est: dict, config_name: str) -> str:
    """The report: setup and assumptions, one row per job group, data per stage, totals, warnings."""
    s, o, jobs = est["setup"], est["options"], est["jobs"]
    mean = s["mean"]
    out = [f"lmmcl resources: {config_name}",
           f"model: {s['family']} ({s['checkpoint'] or 'built in code'}), {s['total_params']:,} parameters "
           f"(counted on the meta device, no weights loaded)",
           f"training jobs: {s['world']} GPU(s) each, {_mode(s['zero'], s['world'])}"
           f"{' (optimizer offloaded to CPU)' if s['offload'] else ''}, "
           + _values(jobs, lambda j: "bf16" if j["hparams"]["bf16"] else "fp32") + ", gradient checkpointing "
           + _values(jobs, lambda j: "on" if j["hparams"]["gradient_checkpointing"] else "off") + ", batch "
           + _values(jobs, lambda j: str(j["hparams"]["batch_size"])) + f" per GPU; checkpoints: {s['fmt']}; "
           f"{est['seeds']} seed(s)",
           f"memory: GiB per GPU at the peak sequence (image tokens of the largest image + {s['text_tokens']} text "
           f"tokens); budget {o['gpu_memory_gib']:g} GiB",
           f"GPU-h: {mean['image_size'][0]}x{mean['image_size'][1]} images ({mean['image_tokens']:,} image + "
           f"{s['text_tokens']} text tokens, {mean['vision_patches']:,} vision patches per example) at "
           f"{o['peak_tflops']:g} TFLOP/s x MFU {o['mfu']:g}, summed over each job's GPUs and the row's stages", ""]
    header = ["method", "stages", "trained", "weights", "grads", "optim", "activ", "teacher", "total",
              "peak seq (image)", "ckpt/stage", "in-stage", "GPU-h"]
    lines = []
    for r in est["rows"]:
        m, c, img = r["memory"], r["checkpoint"], r["peak_image"]
        size = "x".join(map(str, img["image_size"]))
        hours = (f"{r['gpu_hours']:,.1f}" if r["gpu_hours"] >= 0.05 else _small(r["gpu_hours"])) \
            + ("*" if r["unknown_stages"] else "")
        lines.append([r["method"], r["stage_label"], _params(r["params"]["trained"]), _gib(m["weights"]),
                      _gib(m["grads"]), _gib(m["optimizer"]), _gib(m["activations"]), _gib(m["teacher"] or None),
                      _gib(m["total"]), f"{img['sequence']:,} ({size})", _gib(c["stage"]), _gib(c["in_stage"]), hours])
    out += _table(header, lines)
    out += ["", "data per stage (train examples, where the count comes from, tokens trained per seed):"]
    seen = {}
    for j in jobs:
        seen.setdefault(j["task"] or "base pre-training", j)
    out += [f"  {t}: {j['data']['examples']:,} ({j['data']['source']}), {_count(j['tokens'])} tokens"
            if j["data"]["examples"] is not None else f"  {t}: unknown size (no converted parquet, no published count)"
            for t, j in seen.items()]
    unknown = est["unknown_tasks"]
    out.append(f"whole DAG: {_small(est['total_gpu_hours'])} GPU-h of training over {est['seeds']} seed(s)"
               + (f"; * leaves out the stages of unknown size ({', '.join(unknown)}: give --train-examples TASK=N)"
                  if unknown else ""))
    out.append(f"evaluation: {est['evaluation']}")
    out += est["warnings"]
    return "\n".join(out)


def _count(n) -> str:
    return "unknown" if n is None else f"{n:,}"


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' -> (h, w); ValueError naming the value."""
    try:
        h, w = (int(x) for x in text.lower().split("x"))
        if h > 0 and w > 0:
            return h, w
    except ValueError:
        pass
    raise ValueError(f"image size {text!r}: allowed HEIGHTxWIDTH in pixels, e.g. 480x640")


def parse_examples(items: list[str] | None) -> dict:
    """['cub200=5994', ...] -> {'cub200': 5994}; ValueError naming a bad item."""
    out = {}
    for item in items or []:
        task, _, n = item.partition("=")
        if not task or not n.isdigit() or int(n) < 1:
            raise ValueError(f"--train-examples {item!r}: allowed TASK=N with N a positive integer, "
                             f"e.g. timeclock=11500")
        out[task] = int(n)
    return out



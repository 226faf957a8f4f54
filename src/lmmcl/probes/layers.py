"""Layer-contribution probe, with the position bug of the study's fixed (its
``scripts/analysis/layer_contribution_delta_analysis.py`` in jessemelpolio/LMM_CL).

Forward hooks on every decoder layer's ``self_attn`` (output[0]) and ``mlp`` record the residual
branch outputs h.  Base and tuned model run the same teacher-forced batch (question + gold answer,
:class:`lmmcl.train.collate.AnswerOnlyCollator`); per layer and token the delta is
``‖W_t·h_t − W_b·h_b‖₂`` with W each model's own ``lm_head`` weight (no final norm).  It is averaged
over the **answer** positions (labels != -100 of the collator, which are aligned to the
image-expanded sequence, not the unexpanded prompt of the reference), then over samples.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_json
from ..models.io import resolve_checkpoint
from .common import decoder_layers, load_samples

__all__ = ["capture_branches", "layer_deltas", "probe_layers", "plot_layers"]


def capture_branches(model, batch) -> tuple[list, list]:
    """Run ``model`` on ``batch``; returns (attn outputs, mlp outputs), one [B, S, d] tensor per layer."""
    import torch

    layers = decoder_layers(model)
    attn, mlp, hooks = [None] * len(layers), [None] * len(layers), []

    def keep(store, i, is_attn):
        def hook(_module, _inp, out):
            store[i] = (out[0] if is_attn else out).detach()
        return hook

    try:
        for i, layer in enumerate(layers):
            hooks.append(layer.self_attn.register_forward_hook(keep(attn, i, True)))
            hooks.append(layer.mlp.register_forward_hook(keep(mlp, i, False)))
        with torch.no_grad():
            model(**{k: v for k, v in batch.items() if k != "labels"})
    finally:
        for h in hooks:
            h.remove()
    return attn, mlp


def _lm_head_weight(model):
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else model.lm_head
    return head.weight.detach().float(), (head.bias.detach().float() if getattr(head, "bias", None) is not None else None)


def layer_deltas(tuned, base, processor, samples: list[dict], device: str = "cpu") -> dict:
    """Per layer (1-based) mean over samples of the mean over answer positions of
    ‖W_t·h_t − W_b·h_b‖ for the attention (``sa_mean``) and MLP (``mlp_mean``) branches."""
    from ..train.collate import IGNORE_INDEX, AnswerOnlyCollator

    tuned.eval()
    base.eval()
    collate = AnswerOnlyCollator(processor)
    W_t, b_t = _lm_head_weight(tuned)
    W_b, b_b = _lm_head_weight(base)
    n_layers = len(decoder_layers(base))
    if len(decoder_layers(tuned)) != n_layers:
        raise ValueError("tuned and base model have a different number of decoder layers")
    sa, mlp = [[] for _ in range(n_layers)], [[] for _ in range(n_layers)]
    n_positions = 0
    for row in samples:
        if not row.get("answer"):
            raise ValueError("layer probe samples need a non-empty `answer` (teacher-forced)")
        batch = {k: v.to(device) for k, v in collate([row]).items()}
        pos = (batch["labels"][0] != IGNORE_INDEX) & (batch["attention_mask"][0] > 0)
        if not pos.any():
            continue
        n_positions += int(pos.sum())
        at_t, ml_t = capture_branches(tuned, batch)
        at_b, ml_b = capture_branches(base, batch)
        for li in range(n_layers):
            for store, ht, hb in ((sa, at_t[li], at_b[li]), (mlp, ml_t[li], ml_b[li])):
                lt = ht[0][pos].float() @ W_t.T
                lb = hb[0][pos].float() @ W_b.T
                if b_t is not None:
                    lt = lt + b_t
                if b_b is not None:
                    lb = lb + b_b
                store[li].append(float((lt - lb).norm(dim=-1).mean()))
    return {
        "layers": list(range(1, n_layers + 1)),
        "sa_mean": [float(np.mean(v)) if v else float("nan") for v in sa],
        "mlp_mean": [float(np.mean(v)) if v else float("nan") for v in mlp],
        "sample_count": len(sa[0]),
        "answer_positions": n_positions,
        "positions": "answer tokens of the image-expanded sequence (AnswerOnlyCollator labels)",
    }


def probe_layers(base: str, checkpoints: Mapping[str, str], data: str, out_json, out_png, *,
                 n: int = 32, device: str = "cpu") -> dict:
    """Layer deltas of every checkpoint (manifest or folder) vs. the base; writes JSON + PNG."""
    from ..models.io import load_model

    if not checkpoints:
        raise ValueError("no checkpoints to compare with the base")
    samples = load_samples(data, n)
    base_model, processor = load_model(resolve_checkpoint(base), device=device)
    results = {}
    for label, path in checkpoints.items():
        tuned, _ = load_model(resolve_checkpoint(path), device=device)
        results[label] = {"checkpoint": str(path), **layer_deltas(tuned, base_model, processor, samples, device)}
        del tuned
    payload = {"config": {"base": str(base), "data": str(data), "num_samples": n,
                          "delta": "||W_t h_t - W_b h_b||_2 per token, W = each model's lm_head, no final norm"},
               "checkpoints": results}
    atomic_write_json(out_json, payload, default=float)
    plot_layers(payload, out_png)
    return payload


def plot_layers(payload: Mapping, path: str | os.PathLike) -> Path:
    """Two panels (attention, MLP): delta per layer, one line per checkpoint."""
    from ..report.figures import method_colors, new_figure, save_figure

    res = payload["checkpoints"]
    colors = method_colors(list(res))
    fig = new_figure(11.0, 4.6)
    for j, (key, name) in enumerate([("sa_mean", "self-attention branch"), ("mlp_mean", "MLP branch")]):
        ax = fig.add_subplot(1, 2, j + 1)
        for label, r in res.items():
            ax.plot(r["layers"], r[key], marker="o", ms=4, lw=1.8, color=colors[label], label=label)
        ax.set_xlabel("decoder layer")
        ax.set_ylabel("‖W_t·h_t − W_b·h_b‖ (logit space), mean over answer tokens")
        ax.set_title(name, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Layer contribution vs. base model", fontsize=11)
    return save_figure(fig, path)

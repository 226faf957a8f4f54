"""Number-token probe (counting bias; the study's
``scripts/analysis/output_logit_single_model_inference.py`` in jessemelpolio/LMM_CL).

For each checkpoint and each prompt set (counting prompts = ``target``, held-out prompts =
``heldout``), the first ``n`` samples are decoded greedily; at every generated step the softmax
over the full vocabulary gives (a) the total probability mass on number tokens and (b) the
largest probability of a single number token.  Per sample these are averaged over its steps;
the JSON holds the mean/std over samples, the mean per step, and the change vs. the base.

Number tokens are found in the tokenizer's vocabulary (after stripping whitespace, "▁", "Ġ"):
ASCII-digit tokens (any length, optionally with st/nd/rd/th), single-token decimals and comma
thousands, and number words (zero..twenty, thirty..ninety, hundred, thousand, million, billion,
any case).  A byte-level tokenizer (the tiny default) has only the ten single-digit tokens;
a BPE tokenizer also has multi-digit tokens and words — both are handled.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_json
from ..models.io import resolve_checkpoint
from .common import load_samples, prompt_inputs

__all__ = ["NUMBER_WORDS", "is_number_text", "number_token_ids", "number_probe", "probe_numbers", "plot_numbers"]

NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
    "hundred thousand million billion".split()
)
_NUM_RE = re.compile(r"^(?:[0-9]+(?:st|nd|rd|th)?|[0-9]+\.[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)$")
STATS = ("total_number_prob", "max_number_prob")


def is_number_text(text: str) -> bool:
    t = text.strip().strip("▁Ġ").strip()
    return bool(t) and (bool(_NUM_RE.match(t)) or t.lower() in NUMBER_WORDS)


def number_token_ids(tokenizer) -> list[int]:
    """Ids of the number tokens of ``tokenizer`` (special tokens excluded); error if none."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = [i for i in range(len(tokenizer)) if i not in special]
    texts = tokenizer.batch_decode([[i] for i in ids])
    found = [i for i, t in zip(ids, texts) if is_number_text(t)]
    if not found:
        raise ValueError("the tokenizer has no number token (digits or number words)")
    return found


def _generate_stats(model, processor, sample: dict, number_ids, max_new_tokens: int, device: str) -> dict:
    import torch

    inputs = prompt_inputs(processor, sample["question"], sample["image"], device)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                             return_dict_in_generate=True, output_logits=True)
    idx = torch.as_tensor(number_ids, device=device)
    mass, mx = [], []
    for logits in out.logits:  # one [1, vocab] tensor per generated step
        p = torch.softmax(logits[0].float(), dim=-1)[idx]
        mass.append(float(p.sum()))
        mx.append(float(p.max()))
    gen = out.sequences[0, inputs["input_ids"].shape[1]:]
    return {"total_number_prob": mass, "max_number_prob": mx,
            "text": processor.tokenizer.decode(gen, skip_special_tokens=True)}


def _aggregate(per_sample: list[dict], max_new_tokens: int) -> dict:
    res: dict = {"count": len(per_sample)}
    steps = [len(s["total_number_prob"]) for s in per_sample]
    res["num_steps_mean"] = float(np.mean(steps)) if steps else float("nan")
    for key in STATS:
        avg = np.array([np.mean(s[key]) if s[key] else np.nan for s in per_sample], dtype=float)
        res[f"avg_{key}_mean"] = float(np.nanmean(avg)) if np.isfinite(avg).any() else float("nan")
        res[f"avg_{key}_std"] = float(np.nanstd(avg)) if np.isfinite(avg).any() else float("nan")
        per_step = []
        for k in range(max_new_tokens):
            vals = [s[key][k] for s in per_sample if len(s[key]) > k]
            if not vals:
                break
            per_step.append(float(np.mean(vals)))
        res[f"{key}_per_step"] = per_step
    res["examples"] = [s["text"] for s in per_sample[:3]]
    return res


def number_probe(model, processor, samples: Mapping[str, list[dict]], *, number_ids=None,
                 max_new_tokens: int = 16, device: str = "cpu") -> dict:
    """Stats of one loaded model: ``{role: aggregate}`` for each prompt set in ``samples``."""
    model.eval()
    number_ids = number_ids if number_ids is not None else number_token_ids(processor.tokenizer)
    return {
        role: _aggregate([_generate_stats(model, processor, s, number_ids, max_new_tokens, device)
                          for s in rows], max_new_tokens)
        for role, rows in samples.items()
    }


def deltas_vs_base(results: Mapping[str, dict], base_label: str = "base") -> dict:
    """``{label: {role: {avg_<stat>_mean: checkpoint − base}}}`` for every non-base checkpoint."""
    base = results[base_label]
    out = {}
    for label, res in results.items():
        if label == base_label:
            continue
        out[label] = {role: {f"avg_{k}_mean": res[role][f"avg_{k}_mean"] - base[role][f"avg_{k}_mean"]
                             for k in STATS} for role in res}
    return out


def probe_numbers(base: str, checkpoints: Mapping[str, str], data: Mapping[str, str], out_json, out_png, *,
                  n: int = 32, max_new_tokens: int = 16, device: str = "cpu") -> dict:
    """Run the probe on the base and every checkpoint (manifest or folder); write JSON + PNG."""
    from ..models.io import load_model

    if "base" in checkpoints:
        raise ValueError("checkpoint label 'base' is reserved for the base model")
    samples = {role: load_samples(path, n) for role, path in data.items()}
    results, number_info = {}, None
    for label, path in {"base": base, **checkpoints}.items():
        ckpt = resolve_checkpoint(path)
        model, processor = load_model(ckpt, device=device)
        ids = number_token_ids(processor.tokenizer)
        if number_info is None:
            toks = processor.tokenizer.batch_decode([[i] for i in ids])
            number_info = {"count": len(ids), "examples": toks[:30]}
        results[label] = number_probe(model, processor, samples, number_ids=ids,
                                      max_new_tokens=max_new_tokens, device=device)
        results[label]["checkpoint"] = str(path)
        del model
    payload = {
        "config": {"num_samples": n, "max_new_tokens": max_new_tokens, "data": dict(data),
                   "decoding": "greedy", "number_tokens": number_info},
        "checkpoints": results,
        "delta_vs_base": deltas_vs_base({k: {r: v for r, v in res.items() if r != "checkpoint"}
                                         for k, res in results.items()}),
    }
    atomic_write_json(out_json, payload, default=float)
    plot_numbers(payload, out_png)
    return payload


def plot_numbers(payload: Mapping, path: str | os.PathLike) -> Path:
    """Per prompt set: mean number-token mass per checkpoint (bars, base dashed) and per step (lines)."""
    from ..report.figures import method_colors, new_figure, save_figure

    res = payload["checkpoints"]
    labels = list(res)
    roles = [r for r in res[labels[0]] if r != "checkpoint"]
    colors = method_colors(labels)
    fig = new_figure(max(7.0, 4.2 * len(roles)), 7.5)
    for j, role in enumerate(roles):
        ax = fig.add_subplot(2, len(roles), j + 1)
        vals = [100 * res[lab][role]["avg_total_number_prob_mean"] for lab in labels]
        ax.bar(range(len(labels)), vals, color=[colors[lab] for lab in labels], edgecolor="black", lw=0.4)
        ax.axhline(vals[0], color="black", ls="--", lw=1.2, label=f"base ({vals[0]:.1f}%)")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("number-token mass per step [%]")
        ax.set_title(f"{role} prompts ({payload['config']['data'].get(role, '')})", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        ax2 = fig.add_subplot(2, len(roles), len(roles) + j + 1)
        for lab in labels:
            ys = [100 * v for v in res[lab][role]["total_number_prob_per_step"]]
            ax2.plot(range(1, len(ys) + 1), ys, marker="o", ms=3, color=colors[lab], label=lab,
                     ls="--" if lab == "base" else "-")
        ax2.set_xlabel("generated step")
        ax2.set_ylabel("number-token mass [%]")
        ax2.grid(True, alpha=0.3)
        ax2.legend(fontsize=7)
    fig.suptitle("Number-token probe: probability mass on number tokens (greedy decoding)", fontsize=11)
    return save_figure(fig, path)

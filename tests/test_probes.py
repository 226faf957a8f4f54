"""Probes on the tiny model with known planted shifts: number-token mass up when the lm_head
favours digits; only the modified layer's MLP branch moves in the layer probe."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from lmmcl.cli import main
from lmmcl.probes.common import load_samples
from lmmcl.probes.layers import layer_deltas
from lmmcl.probes.numbers import is_number_text, number_probe, number_token_ids

DIGITS = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def tiny():
    from lmmcl.models.tiny import TinySpec, build_tiny_llava

    torch.set_num_threads(1)
    return build_tiny_llava(TinySpec(), seed=0)


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    from lmmcl.data.synthetic import write_skill

    return write_skill("syn_count", "test", 4, 0, tmp_path_factory.mktemp("data") / "test.parquet")


def shifted_mlp_copy(model, layer: int, seed: int = 1):
    """A copy whose MLP of decoder `layer` (0-based) has perturbed down_proj weights."""
    other = copy.deepcopy(model)
    down = other.model.language_model.layers[layer].mlp.down_proj
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        down.weight.add_(0.5 * torch.randn(down.weight.shape, generator=g))
    return other


def test_number_tokens_from_tokenizer(tiny):
    _, proc = tiny
    ids = number_token_ids(proc.tokenizer)
    # word-level tiny tokenizer: numbers are split into digits, each with or without its leading space
    assert sorted(proc.tokenizer.batch_decode([[i] for i in ids])) == sorted(DIGITS + [" " + d for d in DIGITS])
    for t in ["7", "Ġ12", "▁twenty", "Seven", "3rd", "1,000", "2.5"]:
        assert is_number_text(t), t
    for t in ["a", "x1", "٣", "", " ", "one2"]:
        assert not is_number_text(t), t


def test_number_probe_detects_planted_lm_head_shift(tiny, parquet):
    model, proc = tiny
    samples = {"target": load_samples(parquet, 2)}
    ids = number_token_ids(proc.tokenizer)
    shifted = copy.deepcopy(model)
    head = shifted.lm_head
    new = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        new.weight.copy_(head.weight)
        new.bias.zero_()
        new.bias[ids] = 10.0  # planted: every step favours number tokens
    shifted.lm_head = new
    base = number_probe(model, proc, samples, number_ids=ids, max_new_tokens=4)["target"]
    tuned = number_probe(shifted, proc, samples, number_ids=ids, max_new_tokens=4)["target"]
    assert base["count"] == tuned["count"] == 2
    assert base["avg_total_number_prob_mean"] < 0.2
    assert tuned["avg_total_number_prob_mean"] > 0.9
    assert tuned["avg_max_number_prob_mean"] > base["avg_max_number_prob_mean"]
    assert 0 < tuned["avg_max_number_prob_mean"] <= tuned["avg_total_number_prob_mean"] + 1e-9
    assert len(tuned["total_number_prob_per_step"]) == 4
    assert all(any(ch.isdigit() for ch in text) for text in tuned["examples"])


def test_layer_probe_planted_mlp_shift_only_in_that_layer(tiny, parquet):
    from lmmcl.train.collate import IGNORE_INDEX, AnswerOnlyCollator

    model, proc = tiny
    samples = load_samples(parquet, 3)
    last = len(model.model.language_model.layers) - 1
    out = layer_deltas(shifted_mlp_copy(model, last), model, proc, samples)
    assert out["layers"] == [1, 2] and out["sample_count"] == 3
    # positions = the collator's answer labels on the image-expanded sequence: they decode to the answer
    col, n_pos = AnswerOnlyCollator(proc), 0
    for s in samples:
        b = col([s])
        pos = b["labels"][0] != IGNORE_INDEX
        assert s["answer"] in proc.tokenizer.decode(b["input_ids"][0][pos])
        assert pos.sum() < b["input_ids"].shape[1] // 2  # not the image tokens
        n_pos += int(pos.sum())
    assert out["answer_positions"] == n_pos
    assert out["mlp_mean"][last] > 1e-2
    others = out["sa_mean"] + out["mlp_mean"][:last]
    assert max(others) < 1e-5, out
    # identical models: every delta 0
    same = layer_deltas(copy.deepcopy(model), model, proc, samples[:1])
    assert max(same["sa_mean"] + same["mlp_mean"]) < 1e-6


def test_cli_probes_write_json_and_png(tiny, parquet, tmp_path):
    model, proc = tiny
    base_dir, tuned_dir = tmp_path / "base", tmp_path / "tuned"
    for d, m in [(base_dir, model), (tuned_dir, shifted_mlp_copy(model, 0))]:
        m.save_pretrained(d)
        proc.save_pretrained(d)

    lj, lp = tmp_path / "p" / "layers.json", tmp_path / "p" / "layers.png"
    main(["probe-layers", "--base", str(base_dir), "--checkpoints", f"m/stage1={tuned_dir}",
          "--data", str(parquet), "--n", "2", "--out-json", str(lj), "--out-png", str(lp)])
    r = json.loads(lj.read_text())["checkpoints"]["m/stage1"]
    assert r["mlp_mean"][0] > 1e-2 and r["sa_mean"][0] < 1e-5  # layer 1 MLP planted, its attention not
    assert r["sa_mean"][1] > 1e-4  # layer 2 sees a changed input
    assert lp.read_bytes()[:4] == b"\x89PNG" and lp.stat().st_size > 1024

    nj, npng = tmp_path / "p" / "numbers.json", tmp_path / "p" / "numbers.png"
    main(["probe-numbers", "--base", str(base_dir), "--checkpoints", f"same={base_dir}",
          "--target", str(parquet), "--heldout", str(parquet), "--n", "1", "--max-new-tokens", "3",
          "--out-json", str(nj), "--out-png", str(npng)])
    payload = json.loads(nj.read_text())
    assert payload["config"]["number_tokens"]["count"] == 20
    assert set(payload["checkpoints"]) == {"base", "same"}
    for role in ("target", "heldout"):
        assert payload["delta_vs_base"]["same"][role]["avg_total_number_prob_mean"] == pytest.approx(0, abs=1e-7)
    assert npng.read_bytes()[:4] == b"\x89PNG" and npng.stat().st_size > 1024
    assert not [p for p in (tmp_path / "p").iterdir() if p.name.startswith(".")]  # atomic, no leftovers


def test_cli_probe_rejects_bad_checkpoint(tmp_path, parquet):
    with pytest.raises(SystemExit):
        main(["probe-layers", "--base", str(tmp_path / "nope"), "--checkpoints", str(tmp_path),
              "--data", str(parquet), "--out-json", str(tmp_path / "a.json"), "--out-png", str(tmp_path / "a.png")])

"""Training: loss only on answer tokens, recipe-frozen tensors unchanged, stages chain."""
import json

import pytest
import torch

from lmmcl.data.synthetic import write_skill
from lmmcl.models.io import checkpoint_of, load_model
from lmmcl.train.collate import IGNORE_INDEX, AnswerOnlyCollator
from lmmcl.train.stage import build_base, train_stage

TINY = {"family": "tiny_llava", "tiny": {"hidden_size": 32, "intermediate_size": 64}}
HP = {"lr": 1e-3, "steps": 3, "batch_size": 4, "warmup_ratio": 0.0}


def test_labels_cover_only_the_answer(tiny_model):
    from lmmcl.data.synthetic import generate

    _, processor = tiny_model
    rows = generate("syn_count", "train", 3, seed=0)
    batch = AnswerOnlyCollator(processor)(rows)
    tok = processor.tokenizer
    for i, row in enumerate(rows):
        labelled = batch["labels"][i][batch["labels"][i] != IGNORE_INDEX]
        # the answer, the end-of-sequence token and the template's trailing newline
        assert tok.decode(labelled) == f" {row['answer']}</s>\n"
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_cached_examples_give_the_processors_batches(tiny_model, tmp_path):
    """The collator's per-example cache (pad and stack) builds exactly the processor's batch, for
    rows of several lengths, repeated rows, decoded or still-encoded images (training data)."""
    from lmmcl.data.synthetic import generate
    from lmmcl.train.stage import load_training_data

    _, processor = tiny_model
    rows = generate("syn_prior", "train", 12, seed=1) + generate("syn_count", "train", 6, seed=1)
    cached, plain = AnswerOnlyCollator(processor), AnswerOnlyCollator(processor, cache_examples=False)
    for batch_rows in (rows[:7], rows[5:18], rows[:7] + rows[:3]):
        got, want = cached(batch_rows), plain(batch_rows)
        assert set(got) == set(want) == {"input_ids", "attention_mask", "pixel_values", "labels"}
        for k in want:
            assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
    assert len(cached._examples) == 18
    split = write_skill("syn_words", "train", 8, 0, tmp_path / "words.parquet")
    encoded = [load_training_data([split])[i] for i in range(8)]
    assert isinstance(encoded[0]["image"], dict)  # decoded by the collator, once per example
    assert all(torch.equal(a, b) for a, b in zip(cached(encoded).values(), plain(generate("syn_words", "train", 8, 0)).values()))


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    data = {s: write_skill(s, "train", 16, 0, root / f"data/{s}/train.parquet")
            for s in ["syn_color", "syn_birds", "syn_count"]}
    base = build_base(model_cfg=TINY, experiment="t", out_manifest=root / "base/manifest.json",
                      data=[data["syn_color"]], hparams=HP)
    s1 = train_stage(parent_manifest=root / "base/manifest.json", data=[data["syn_birds"]],
                     out_manifest=root / "m/stage1_syn_birds/manifest.json", method="m", recipe="sa_proj",
                     hparams=HP, stage=1, task="syn_birds")
    s2 = train_stage(parent_manifest=root / "m/stage1_syn_birds/manifest.json", data=[data["syn_count"]],
                     out_manifest=root / "m/stage2_syn_count/manifest.json", method="m", recipe="sa_proj",
                     hparams=HP, stage=2, task="syn_count")
    return root, base, s1, s2


def test_stage_manifests_chain(chain):
    root, base, s1, s2 = chain
    assert base["kind"] == "base" and base["stage"] == 0
    assert s1["parent"] == str(root / "base/manifest.json")
    assert s2["parent"] == str(root / "m/stage1_syn_birds/manifest.json") and s2["parent_stage"] == 1
    on_disk = json.loads((root / "m/stage2_syn_count/manifest.json").read_text())
    assert on_disk["recipe"] == "sa_proj" and on_disk["trainable"]["trainable_tensors"] == 8
    assert on_disk["metrics"]["steps"] == 3 and on_disk["hashes"]["delta.safetensors"] and on_disk["checkpoint_storage"]["format"] == "delta"
    assert on_disk["data"][0]["sha256"]


def test_stage_changes_only_recipe_tensors(chain):
    root, *_ = chain
    before, _ = load_model(checkpoint_of(root / "m/stage1_syn_birds/manifest.json"))
    after, _ = load_model(checkpoint_of(root / "m/stage2_syn_count/manifest.json"))
    b, a = dict(before.named_parameters()), dict(after.named_parameters())
    changed = {n for n in b if not torch.equal(b[n], a[n])}
    assert changed and all(".self_attn." in n and "language_model" in n for n in changed)


def test_role_lr_unknown_role_errors(chain):
    root, *_ = chain
    with pytest.raises(ValueError, match="role_lr names unknown role"):
        train_stage(parent_manifest=root / "base/manifest.json", data=[root / "data/syn_birds/train.parquet"],
                    out_manifest=root / "x/manifest.json", method="m", recipe="full",
                    hparams={**HP, "role_lr": {"vision": 1e-5}})
    assert not (root / "x/manifest.json").exists()


def test_frozen_tensors_get_no_grads_or_optimizer_state(chain):
    _, _, s1, _ = chain
    mem, n = s1["metrics"]["memory"], s1["trainable"]["trainable_params"]
    assert mem["frozen_with_grad"] == 0 and mem["grad_tensors"] == s1["trainable"]["trainable_tensors"] == 8
    assert mem["grad_bytes"] == 4 * n
    # AdamW: exp_avg + exp_avg_sq per trainable value, plus one scalar step per tensor
    assert 8 * n <= mem["optimizer_state_bytes"] <= 8 * n + 8 * 8

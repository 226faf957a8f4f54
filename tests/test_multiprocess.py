"""The multi-process path on CPU (gloo): one tiny stage under `torchrun --nproc_per_node=2` and one
evaluation under `accelerate launch --num_processes 2`, as the rules launch them with
`resources.processes: 2`. Rank 0 alone writes (the manifest, the delta, the curves, the scores);
the other rank writes nothing (an audit hook records every write of each rank); the results equal
a one-process run's (same effective batch)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmmcl.data.synthetic import write_skill
from lmmcl.train.stage import build_base

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AUDITED = str(ROOT / "tests/fixtures/audited_cli.py")
TINY = {"family": "tiny_llava", "tiny": {"hidden_size": 32, "intermediate_size": 64}}
HP = {"lr": 1e-3, "steps": 4, "warmup_ratio": 0.0, "seed": 0}
BENCHES = ["syn_color", "syn_birds"]

pytestmark = pytest.mark.slow


def launch(cmd: list[str], root: Path, audit: Path, log: Path) -> dict[str, list]:
    """Run `cmd` (a launcher + audited_cli.py args) and return {rank: writes below root}."""
    audit.mkdir()
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               LMMCL_AUDIT_ROOT=str(root), LMMCL_AUDIT_OUT=str(audit))
    p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    log.write_text(p.stdout + p.stderr)
    assert p.returncode == 0, (p.stdout + p.stderr)[-5000:]
    return {f.stem: json.loads(f.read_text()) for f in sorted(audit.glob("rank*.json"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mp")
    work = root / "work"        # everything the runs write lives here (audited)
    for s in BENCHES:
        write_skill(s, "train", 64, 0, work / f"data/{s}/train.parquet")
        write_skill(s, "test", 8, 0, work / f"data/{s}/test.parquet")
    # a base that knows colours (75 % on syn_color), so the scores compare right and wrong answers
    build_base(model_cfg=TINY, experiment="mp", out_manifest=work / "results/mp/base/manifest.json",
               data=[work / "data/syn_color/train.parquet"], tracking={"report_to": []},
               hparams={"lr": 3e-3, "steps": 150, "batch_size": 8, "warmup_ratio": 0.0, "role_lr": {}})
    base = work / "results/mp/base/manifest.json"
    # one process, batch 8 (through the CLI, as the workflow runs it: under `numerics: portable`, like
    # the two ranks; this pytest process runs torch's native CPU kernels, which differ by machine) ...
    one = subprocess.run(
        [str(BIN / "lmmcl"), "train-stage", "--parent", str(base), "--data", str(work / "data/syn_birds/train.parquet"),
         "--method", "one", "--recipe", "sa_proj", "--hparams", json.dumps({**HP, "batch_size": 8}), "--stage", "1",
         "--task", "syn_birds", "--threads", "1", "--tracking", '{"report_to": []}',
         "--out", str(work / "results/mp/one/stage1_syn_birds/manifest.json")],
        env=dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-4000:]
    # ... and two processes of batch 4: the same 8 examples per optimizer step
    stage2 = work / "results/mp/two/stage1_syn_birds/manifest.json"
    train_writes = launch(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", AUDITED, "train-stage",
         "--parent", str(base), "--data", str(work / "data/syn_birds/train.parquet"), "--method", "two",
         "--recipe", "sa_proj", "--hparams", json.dumps({**HP, "batch_size": 4}), "--stage", "1",
         "--task", "syn_birds", "--threads", "1", "--out", str(stage2)],
        work, root / "audit_train", root / "train.log")
    # evaluation of the two-process stage: one process (lmmcl evaluate: portable numerics, like the
    # ranks) and two (accelerate launch)
    for manifest, out in ((stage2, "two_1proc"), (work / "results/mp/one/stage1_syn_birds/manifest.json", "one_1proc")):
        ev = subprocess.run([str(BIN / "lmmcl"), "evaluate", "--manifest", str(manifest), "--benchmarks", *BENCHES,
                             "--data-root", str(work / "data"), "--out-dir", str(work / "results/mp/evals" / out),
                             "--threads", "1"], env=dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"),
                            capture_output=True, text=True, timeout=300)
        assert ev.returncode == 0, ev.stderr[-4000:]
    eval_writes = launch(
        [str(BIN / "accelerate"), "launch", "--multi_gpu", "--main_process_port", "0", "--num_processes", "2",
         AUDITED, "evaluate", "--manifest", str(stage2), "--benchmarks", *BENCHES, "--data-root",
         str(work / "data"), "--out-dir", str(work / "results/mp/evals/two_2proc"), "--threads", "1"],
        work, root / "audit_eval", root / "eval.log")
    return work / "results/mp", train_writes, eval_writes, root


def test_two_process_stage_rank0_alone_writes(runs):
    res, train_writes, _, root = runs
    assert set(train_writes) == {"rank0", "rank1"}, f"not two ranks: {sorted(train_writes)} ({root / 'train.log'})"
    assert train_writes["rank1"] == [], train_writes["rank1"][:10]
    rank0 = [p for _, p in train_writes["rank0"]]
    assert any(p.endswith("two/stage1_syn_birds/manifest.json") for p in rank0)
    assert any("two/stage1_syn_birds/model" in p for p in rank0)
    assert any("tfevents" in p for p in rank0)
    stage = res / "two/stage1_syn_birds"
    assert sorted(p.name for p in (stage / "tensorboard").iterdir())[0].startswith("events.out.tfevents.")
    assert len(list((stage / "tensorboard").iterdir())) == 1            # one run, rank 0's
    assert not (stage / "trainer").exists()
    m = json.loads((stage / "manifest.json").read_text())
    assert m["metrics"]["steps"] == 4 and m["metrics"]["examples_seen"] == 32   # 4 steps x 4 x 2 ranks


def test_two_process_stage_equals_one_process_stage(runs):
    res, *_ = runs
    from safetensors.torch import load_file

    one = load_file(str(res / "one/stage1_syn_birds/model/delta.safetensors"))
    two = load_file(str(res / "two/stage1_syn_birds/model/delta.safetensors"))
    assert sorted(one) == sorted(two) and len(one) == 8
    diff = max((one[k] - two[k]).abs().max().item() for k in one)
    print(f"\nmax |w_2proc - w_1proc| = {diff:.2e}")
    # Not bit-equal by construction (two ranks average half-batch gradients, one process sums the
    # batch in one chain): bounded by AdamW's arithmetic, 2 * R * lr * steps with R = 3.16, and
    # within that by 1e-6 here, a value that is the same on every machine passing the fingerprint
    # gate, since both sides run under numerics: portable (tests/test_deepspeed.py, TOLERANCE).
    assert diff <= 2 * (1 - 0.9) / (1 - 0.999) ** 0.5 * HP["lr"] * HP["steps"] and diff < 1e-6
    m1, m2 = (json.loads((res / f"{m}/stage1_syn_birds/manifest.json").read_text())["metrics"] for m in ("one", "two"))
    assert m2["loss_first_log"] == pytest.approx(m1["loss_first_log"], rel=1e-5)
    assert m2["loss_last_log"] == pytest.approx(m1["loss_last_log"], rel=1e-5)


def test_two_process_evaluation_rank0_alone_writes_same_scores(runs):
    res, _, eval_writes, root = runs
    assert set(eval_writes) == {"rank0", "rank1"}, f"not two ranks: {sorted(eval_writes)} ({root / 'eval.log'})"
    assert eval_writes["rank1"] == [], eval_writes["rank1"][:10]
    assert any(p.endswith("syn_birds.json") for _, p in eval_writes["rank0"])
    # the documents were sharded: each rank answered half of each benchmark
    assert "0/4" in (root / "eval.log").read_text()
    scores = {}
    for run in ("two_2proc", "two_1proc", "one_1proc"):
        for b in BENCHES:
            doc = json.loads((res / f"evals/{run}/{b}.json").read_text())
            rows = [json.loads(l) for l in (res / f"evals/{run}/{b}.samples.jsonl").read_text().splitlines()]
            scores[run, b] = (doc["score"], doc["n"], [(r["doc_id"], r["response"]) for r in sorted(rows, key=lambda r: r["doc_id"])])
    print("\nscores (2 processes / 1 process / 1-process-trained stage):",
          {b: [scores[r, b][0] for r in ("two_2proc", "two_1proc", "one_1proc")] for b in BENCHES})
    for b in BENCHES:
        assert scores["two_2proc", b] == scores["two_1proc", b], b      # same answers, same score
        assert scores["two_2proc", b] == scores["one_1proc", b], b      # = the one-process-trained stage
        assert scores["two_2proc", b][1] == 8
    assert scores["two_2proc", "syn_color"][0] > 25                      # right and wrong answers compared

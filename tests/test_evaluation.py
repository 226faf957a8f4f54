"""Evaluation through lmms-eval: task generation, the `lmmcl` model wrapper, run.evaluate, and
the normalisation of lmms-eval's results dict. Runs in-process, offline, on a tiny model."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from lmmcl.evaluation import normalize, taskgen

BENCHES = ["syn_color", "syn_count"]
N_ROWS = 8
DOC_KEYS = {"benchmark", "task", "metric", "score", "scores", "n", "n_empty", "checkpoint",
            "lmms_eval_version", "task_hash", "seconds", "samples"}


def _rows(bench: str):
    from PIL import Image

    colors = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 230, 20)}
    rows = []
    for i in range(N_ROWS):
        name, rgb = list(colors.items())[i % 4]
        img = Image.new("RGB", (32, 32), (255, 255, 255))
        img.paste(rgb, (8, 8, 24, 24))
        row = {"id": f"{bench}_test_{i:05d}", "image": img, "task": bench}
        if bench == "syn_count":
            n = i % 4 + 1
            row.update(question="How many squares are in this image?", count=n,
                       answer=f"There {'is' if n == 1 else 'are'} {n} square{'' if n == 1 else 's'} in this image.")
        else:
            row.update(question="What color is the square?", answer=name)
        rows.append(row)
    return rows


def _write_parquet(path: Path, rows: list[dict]):
    from datasets import Dataset, Features, Image, Value

    feats = {"id": Value("string"), "image": Image(), "question": Value("string"),
             "answer": Value("string"), "task": Value("string")}
    if "count" in rows[0]:
        feats["count"] = Value("int64")
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows, features=Features(feats)).to_parquet(str(path))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Tiny checkpoint + fixture parquets + an isolated, offline HF environment.

    Non-empty answers: the checkpoint is built with a fixed seed (`save_tiny_llava(seed=0)`)
    and decoding is greedy (and lmms-eval seeds torch too), so the responses are deterministic;
    with this seed the random model does not emit EOS first on these prompts. We chose this
    over forcing `min_new_tokens`, which would change what is evaluated: a trained model that
    answers with an immediate EOS must show up as an empty answer, not be hidden.
    """
    import torch

    from lmmcl.models.tiny import TinySpec, save_tiny_llava

    root = tmp_path_factory.mktemp("evaluation")
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    mp.setenv("HF_HOME", str(root / "hf_home"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: extra threads only add contention (25x slower on 2 busy cores)
    ckpt = save_tiny_llava(root / "ckpt", TinySpec(), seed=0)
    data = root / "data"
    for b in BENCHES:
        _write_parquet(data / b / "test.parquet", _rows(b))
    yield {"root": root, "ckpt": ckpt, "data": data}
    torch.set_num_threads(threads)
    mp.undo()


# ------------------------------------------------------------------------------- taskgen
def test_write_tasks(env, tmp_path):
    tasks = taskgen.write_tasks(BENCHES, env["data"], tmp_path)
    assert tasks == {b: f"lmmcl_{b}" for b in BENCHES}
    assert (tmp_path / "utils.py").is_file()
    text = (tmp_path / "lmmcl_syn_count.yaml").read_text()
    assert "!function utils.doc_to_text" in text
    assert "process_results: !function utils.process_results__count__count_acc" in text

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: f"fn:{node.value}")
    cfg = yaml.load(text, Loader=Loader)
    data_file = Path(cfg["dataset_kwargs"]["data_files"]["test"])
    assert data_file.is_absolute() and data_file == (env["data"] / "syn_count" / "test.parquet").resolve()
    assert cfg["task"] == "lmmcl_syn_count" and cfg["test_split"] == "test"
    assert cfg["output_type"] == "generate_until" and cfg["dataset_path"] == "parquet"
    assert cfg["generation_kwargs"] == {"max_new_tokens": 40, "do_sample": False, "temperature": 0, "num_beams": 1}
    assert cfg["metric_list"] == [{"metric": "count_acc", "aggregation": "mean", "higher_is_better": True}]
    assert cfg["lmms_eval_specific_kwargs"] == {"default": {"pre_prompt": "", "post_prompt": ""}}


def test_write_tasks_errors(env, tmp_path):
    with pytest.raises(ValueError, match=r"syn_nope.*allowed.*syn_color"):
        taskgen.write_tasks(["syn_color", "syn_nope"], env["data"], tmp_path)
    with pytest.raises(FileNotFoundError, match=r"syn_shape/test\.parquet"):
        taskgen.write_tasks(["syn_shape"], env["data"], tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written on error


def test_task_hooks():
    from lmmcl.evaluation.tasks import utils as hooks  # package file, same code that is copied

    doc = {"question": "How many?", "answer": "There are 3 squares.", "count": 3, "task": "syn_count"}
    kwargs = {"default": {"pre_prompt": "", "post_prompt": ""}, "pre_prompt": "P: ", "post_prompt": "\nAnswer."}
    assert hooks.doc_to_text(doc, kwargs) == "P: How many?\nAnswer."
    assert hooks.doc_to_text(doc, {"default": {"pre_prompt": "<", "post_prompt": ">"}}) == "<How many?>"
    assert hooks.doc_to_text(doc) == "How many?"
    assert "{" not in hooks.doc_to_text(doc, kwargs)  # the study pasted the kwargs dict into the prompt
    assert hooks.process_results__count__count_acc(doc, ["three"]) == {"count_acc": 1.0}
    assert hooks.process_results__count__count_acc(doc, ["4"]) == {"count_acc": 0.0}
    with pytest.raises(AttributeError):
        hooks.not_a_hook


# ---------------------------------------------------------------------------- normalize
STORED_RESULTS = {  # lmms-eval 0.7.3's simple_evaluate output / results.json layout (docs/evaluation.md)
    "results": {
        "lmmcl_syn_color": {"alias": "lmmcl_syn_color", "exact_match,none": 0.75,
                            "exact_match_stderr,none": "N/A", "exact_match_stderr_clt,none": 0.1},
        "lmmcl_syn_clock": {"alias": "lmmcl_syn_clock", "both_acc,none": 0.5, "both_acc_stderr,none": "N/A",
                            "hour_acc,none": 1.0, "hour_acc_stderr,none": "N/A",
                            "minute_acc,none": 0.5, "minute_acc_stderr,none": "N/A"},
        "ai2d_local": {"alias": " - ai2d_local", "exact_match,flexible-extract": 0.25,
                       "exact_match_stderr,flexible-extract": 0.0866},
        "bench8": {"alias": "bench8", "exact_match,none": 0.5, "exact_match_stderr,none": "N/A"},
    },
    "groups": {"bench8": {"alias": "bench8", "exact_match,none": 0.5}},
    "group_subtasks": {"bench8": ["ai2d_local"]},
    "configs": {"ai2d_local": {"task": "ai2d_local", "metric_list": [{"metric": "exact_match"}]}},
    "versions": {"lmmcl_syn_color": 0.0, "ai2d_local": 0.0},
    "n-samples": {"lmmcl_syn_color": {"original": 8, "effective": 4},
                  "lmmcl_syn_clock": {"original": 2, "effective": 2},
                  "ai2d_local": {"original": 4, "effective": 4}},
    "lmms_eval_version": "main@12345678",
    "task_hashes": {"ai2d_local": "abc"},
    "samples": {
        "lmmcl_syn_color": [
            {"doc_id": i, "doc": {"id": f"c{i}", "question": "What color?"}, "target": "red",
             "resps": [[r]], "filtered_resps": [r], "doc_hash": "h", "exact_match": float(r.strip() == "red")}
            for i, r in enumerate([" red", "red", "", "red"])
        ],
    },
}


def test_normalize_results_stored_dict():
    task_map = {"lmmcl_syn_color": "syn_color", "lmmcl_syn_clock": "syn_clock", "ai2d_local": "ai2d"}
    out = normalize.normalize_results(STORED_RESULTS, task_map, None, task_hashes={"lmmcl_syn_color": "xyz"})
    color, clock, ai2d = out["syn_color"], out["syn_clock"], out["ai2d"]
    assert color["metric"] == "exact_match" and color["score"] == pytest.approx(75.0)
    assert color["scores"] == {"exact_match": pytest.approx(75.0)}
    assert color["n"] == 4 and color["n_empty"] == 1
    assert color["task_hash"] == "xyz" and color["samples"] == "syn_color.samples.jsonl"
    assert clock["metric"] == "both_acc" and clock["score"] == pytest.approx(50.0)
    assert clock["scores"] == {"both_acc": 50.0, "hour_acc": 100.0, "minute_acc": 50.0}
    assert clock["n_empty"] is None and clock["samples"] is None
    # built-in task, not in the registry: metric from its config, filter dropped (the only one)
    assert ai2d["metric"] == "exact_match" and ai2d["score"] == pytest.approx(25.0)
    assert ai2d["task_hash"] == "abc" and ai2d["n"] == 4
    assert color["lmms_eval_version"] == normalize.lmms_eval_version() != "main@12345678"

    rows = normalize.sample_rows(STORED_RESULTS["samples"]["lmmcl_syn_color"], "exact_match")
    assert [r["response"] for r in rows] == [" red", "red", "", "red"]
    assert rows[0] == {"doc_id": 0, "id": "c0", "item": "c0", "question": "What color?", "target": "red",
                       "response": " red", "score": 1.0}

    with pytest.raises(KeyError, match="lmmcl_missing"):
        normalize.normalize_results(STORED_RESULTS, {"lmmcl_missing": "syn_shape"})


def test_sample_rows_keep_a_stable_item_id_and_the_items_score():
    """Every row pairs across checkpoints by `item` (the doc's id, else a built-in dataset's id
    column, else its position) and keeps the item's score of the primary metric, also where a
    built-in task logs a dict for its own aggregation (lmms-eval 0.7.3 tasks/<task>/utils.py)."""
    logged = [
        {"doc_id": 0, "doc": {"id": "x0"}, "acc": True},                                   # bool -> 1.0
        {"doc_id": 1, "doc": {"question_id": 17}, "acc": 0.5},                             # partial credit
        {"doc_id": 2, "doc": {"questionId": "q2"}, "acc": {"question_type": "t", "score": 1}},  # ocrbench
        {"doc_id": 3, "doc": {"index": 5}, "acc": {"pred": " B", "answer": "b"}},          # seedbench
        {"doc_id": 4, "doc": {}, "acc": {"questionId": 4, "answer": "x"}},                 # no score in it
        {"doc_id": 5, "doc": {}, "acc": float("nan")},
    ]
    rows = normalize.sample_rows(logged, "acc,none")
    assert [r["item"] for r in rows] == ["x0", "17", "q2", "5", "doc_id:4", "doc_id:5"]
    assert [r["score"] for r in rows] == [1.0, 0.5, 1.0, 1.0, None, None]
    assert normalize.item_score({"average": 0.25}, "average") == 0.25
    assert normalize.item_id({"doc": {}}) is None


def test_parse_metrics_several_filters():
    got = normalize.parse_metrics({"alias": "x", "acc,none": 0.5, "acc,strict": 0.25,
                                   "acc_stderr,none": 0.1, "f1,flex": "N/A"})
    assert got == {"acc": 50.0, "acc,strict": 25.0}


# ------------------------------------------------------------------------------ run.evaluate
def test_model_entry_point():
    from lmms_eval.models import get_model

    from lmmcl.evaluation.model import LmmclModel

    assert get_model("lmmcl") is LmmclModel


def test_entry_point_when_manifest_is_imported_first():
    """Importing our manifest before lmms_eval must not make lmms-eval drop the model."""
    import subprocess
    import sys

    code = ("import lmmcl.evaluation.manifest\n"
            "from lmms_eval.models import get_model\n"
            "assert get_model('lmmcl').__name__ == 'LmmclModel'\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_evaluate_two_benchmarks(env):
    from lmmcl.evaluation.run import evaluate

    out = env["root"] / "out"
    paths = evaluate(str(env["ckpt"]), BENCHES, env["data"], out, limit=4)
    assert [p.name for p in paths] == ["syn_color.json", "syn_count.json"]
    for b in BENCHES:
        rec = json.loads((out / f"{b}.json").read_text())
        assert DOC_KEYS <= set(rec)
        assert rec["benchmark"] == b and rec["task"] == f"lmmcl_{b}"
        assert rec["n"] == 4 and rec["n_empty"] == 0
        assert 0.0 <= rec["score"] <= 100.0
        assert rec["scores"][rec["metric"]] == rec["score"]
        assert rec["checkpoint"] == str(Path(env["ckpt"]).resolve())
        assert rec["lmms_eval_version"] == "0.7.3"
        assert len(rec["task_hash"]) == 64
        from lmmcl.hashing import sha256_file

        parquet = (env["data"] / b / "test.parquet").resolve()       # the data read, by content
        assert rec["data"] == {"source": "parquet", "file": str(parquet), "sha256": sha256_file(parquet)}
        lines = (out / rec["samples"]).read_text().splitlines()
        assert len(lines) == 4
        for line in lines:
            row = json.loads(line)
            assert row["response"].strip(), row
            assert row["question"] and row["target"] and row["score"] in (0.0, 1.0)
            assert row["item"] == row["id"] and row["item"].startswith(f"{b}_test_")  # pairs checkpoints
        rows = [json.loads(x) for x in lines]
        assert sum(r["score"] for r in rows) / len(rows) * 100 == pytest.approx(rec["score"])
    assert json.loads((out / "syn_count.json").read_text())["metric"] == "count_acc"
    h1 = json.loads((out / "syn_color.json").read_text())["task_hash"]
    assert h1 != json.loads((out / "syn_count.json").read_text())["task_hash"]
    assert not list(out.glob(".*.tmp*"))


def test_all_empty_answers_raise(env, monkeypatch):
    from lmmcl.evaluation import model as lmmcl_model
    from lmmcl.evaluation.run import evaluate

    monkeypatch.setattr(lmmcl_model.LmmclModel, "_generate_batch", lambda self, task, texts, *a: [("", 0)] * len(texts))
    out = env["root"] / "out_empty"
    with pytest.raises(RuntimeError, match=rf"syn_color.*{env['ckpt'].name}.*empty.*fail_on_empty"):
        evaluate(str(env["ckpt"]), ["syn_color"], env["data"], out, limit=2, fail_on_empty=True)
    assert not (out / "syn_color.json").exists()


def test_one_benchmark_all_empty_is_a_recorded_zero(env, monkeypatch):
    """A model that forgot a skill may stop at once: that is a real 0, counted in n_empty."""
    from lmmcl.evaluation import model as lmmcl_model
    from lmmcl.evaluation.run import evaluate

    real = lmmcl_model.LmmclModel._generate_batch

    def silent_on_count(self, task, texts, *a):
        return [("", 0)] * len(texts) if task == "lmmcl_syn_count" else real(self, task, texts, *a)

    monkeypatch.setattr(lmmcl_model.LmmclModel, "_generate_batch", silent_on_count)
    out = env["root"] / "out_one_empty"
    evaluate(str(env["ckpt"]), ["syn_color", "syn_count"], env["data"], out, limit=2)
    rec = json.loads((out / "syn_count.json").read_text())
    assert rec["n_empty"] == rec["n"] == 2 and rec["score"] == 0.0
    assert json.loads((out / "syn_color.json").read_text())["n_empty"] == 0


def test_generation_errors_propagate(env, monkeypatch):
    from transformers import LlavaForConditionalGeneration

    from lmmcl.evaluation.run import evaluate

    def boom(self, *a, **k):
        raise ValueError("boom in generate")

    monkeypatch.setattr(LlavaForConditionalGeneration, "generate", boom)
    with pytest.raises(RuntimeError, match=r"lmmcl_syn_color.*doc\(s\) \[0\].*boom in generate"):
        evaluate(str(env["ckpt"]), ["syn_color"], env["data"], env["root"] / "out_err", limit=1)


def test_evaluate_unknown_benchmark(env):
    from lmmcl.evaluation.run import evaluate

    with pytest.raises(ValueError, match="syn_unknown"):
        evaluate(str(env["ckpt"]), ["syn_color", "syn_unknown"], env["data"], env["root"] / "o")
    with pytest.raises(FileNotFoundError, match="config.json"):
        evaluate(str(env["root"]), ["syn_color"], env["data"], env["root"] / "o")


# ------------------------------------------------- the study's tasks in the real data format
REAL = ["cub200", "timeclock", "pathvqa"]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def real(env):
    from fixtures.eval_formats import write_builtin, write_contract

    for b in REAL + ["pixmocount", "countbench"]:
        write_contract(env["data"], b, n=6)
    builtin = {"ai2d": write_builtin(env["root"] / "fake_ai2d.parquet", "ai2d", n=4),
               "ocrbench": write_builtin(env["root"] / "fake_ocrbench.parquet", "ocrbench", n=4)}
    return {**env, "builtin": builtin}


def test_real_task_prompts_and_yaml(real, tmp_path):
    from lmmcl.evaluation.tasks import utils as hooks

    tasks = taskgen.write_tasks(REAL + ["ai2d"], real["data"], tmp_path, clock_exact_hours=True)
    assert tasks == {"cub200": "lmmcl_cub200", "timeclock": "lmmcl_timeclock", "pathvqa": "lmmcl_pathvqa",
                     "ai2d": "ai2d"}  # built-in: its own lmms-eval name, no YAML
    assert not (tmp_path / "lmmcl_ai2d.yaml").exists()

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: f"fn:{node.value}")
    cfg = {b: yaml.load((tmp_path / f"lmmcl_{b}.yaml").read_text(), Loader=Loader) for b in REAL}
    # the study's prompts come from lmms_eval_specific_kwargs, whatever way lmms-eval passes them
    cub_doc = {"question": "What species is the bird in this photo?\n<image>", "options": ["Albatross", "Ani"]}
    kw = cfg["cub200"]["lmms_eval_specific_kwargs"]
    merged = {**kw, **kw["default"]}  # what lmms-eval 0.7.3 passes for a model without its own entry
    assert hooks.doc_to_text(cub_doc, merged) == hooks.doc_to_text(cub_doc, kw) == (
        "What species is the bird in this photo?\nA. Albatross\nB. Ani\n"
        "Answer with the option's letter from the given choices directly.")
    path_doc = {"question": "Is this benign?"}
    assert hooks.doc_to_text(path_doc, cfg["pathvqa"]["lmms_eval_specific_kwargs"]).startswith(
        "Look at the medical image and answer the following question: Is this benign?\nFor questions")
    assert cfg["pathvqa"]["generation_kwargs"]["until"] == ["ASSISTANT:"]
    assert cfg["pathvqa"]["generation_kwargs"]["max_new_tokens"] == 64
    aggs = {m["metric"]: m["aggregation"] for m in cfg["pathvqa"]["metric_list"]}
    assert aggs["pathvqa_binary_accuracy"] == "fn:utils.nanmean" and aggs["pathvqa_f1"] == "mean"
    assert hooks.nanmean([1.0, float("nan"), 0.0]) == 0.5
    # the config switch evaluation.clock_exact_hours selects the study's exact hour comparison
    assert cfg["timeclock"]["process_results"] == "fn:utils.process_results__clock_exact__both_acc"
    clock = {"hour": 12, "minute": 0}
    assert hooks.process_results__clock_exact__both_acc(clock, ["00:00"])["both_acc"] == 0.0
    assert hooks.process_results__clock__both_acc(clock, ["00:00"])["both_acc"] == 1.0
    assert taskgen.task_hash("timeclock", real["data"], clock_exact_hours=True) != taskgen.task_hash(
        "timeclock", real["data"])


def test_real_task_missing_column(real, tmp_path):
    from fixtures.eval_formats import contract_rows

    from lmmcl.data.contract import write_split

    rows = [{k: v for k, v in r.items() if k != "hour"} for r in contract_rows("timeclock", 2)]
    write_split(rows, tmp_path / "data" / "timeclock" / "test.parquet")
    with pytest.raises(ValueError, match=r"timeclock.*lacks column\(s\) \['hour'\]"):
        taskgen.write_tasks(["timeclock"], tmp_path / "data", tmp_path / "tasks")


def test_real_tasks_and_builtins_end_to_end_batched(real):
    """Our real-format tasks and two built-in lmms-eval tasks (ai2d, ocrbench through include:
    wrappers on fake parquet), in one offline run; batch 4 gives the greedy answers of batch 1."""
    from lmmcl.evaluation.run import evaluate

    benches = REAL + ["ai2d", "ocrbench"]
    outs = {}
    for bs in (1, 4):
        out = real["root"] / f"out_real_b{bs}"
        evaluate(str(real["ckpt"]), benches, real["data"], out, batch_size=bs, builtin_data=real["builtin"])
        outs[bs] = out
    expect = {"cub200": ("lmmcl_cub200", "acc", 6), "timeclock": ("lmmcl_timeclock", "both_acc", 6),
              "pathvqa": ("lmmcl_pathvqa", "pathvqa_exact_match", 6),
              "ai2d": ("lmmcl_ai2d_local", "exact_match", 4), "ocrbench": ("lmmcl_ocrbench_local", "ocrbench_accuracy", 4)}
    for b, (task, metric, n) in expect.items():
        rec = json.loads((outs[1] / f"{b}.json").read_text())
        assert (rec["task"], rec["metric"], rec["n"], rec["n_empty"]) == (task, metric, n, 0)
        assert 0.0 <= rec["score"] <= 100.0 and rec["batch_size"] == 1 and len(rec["task_hash"]) == 64
        rows = [json.loads(x) for x in (outs[1] / rec["samples"]).read_text().splitlines()]
        rows4 = [json.loads(x) for x in (outs[4] / rec["samples"]).read_text().splitlines()]
        assert len(rows) == n and all(r["response"].strip() for r in rows)
        assert [r["response"] for r in rows] == [r["response"] for r in rows4], b
    assert json.loads((outs[1] / "ai2d.json").read_text())["metric_key"] == "exact_match,flexible-extract"
    assert (outs[1] / "lmms_eval_files" / "ocrbench_results.txt").is_file()  # not in the CWD
    path = json.loads((outs[1] / "pathvqa.json").read_text())["scores"]
    assert set(path) == {"pathvqa_exact_match", "pathvqa_f1", "pathvqa_bleu1", "pathvqa_bleu2",
                         "pathvqa_bleu3", "pathvqa_binary_accuracy"}
    assert set(json.loads((outs[1] / "timeclock.json").read_text())["scores"]) == {"both_acc", "hour_acc", "minute_acc"}


def test_builtin_data_errors(real, tmp_path):
    with pytest.raises(ValueError, match=r"builtin_data.*cub200"):
        taskgen.write_tasks(["cub200"], real["data"], tmp_path, builtin_data={"cub200": "x.parquet"})


# --------------------------------------------------- normaliser on a stored real results.json
def test_normalize_stored_builtin_results_json():
    """tests/fixtures/lmms_eval_0.7.3_builtin_results.json was written by lmms-eval 0.7.3's CLI
    (tests/fixtures/make_lmms_results.py). Values are set here so the scaling shows."""
    stored = json.loads((FIXTURES / "lmms_eval_0.7.3_builtin_results.json").read_text())
    assert stored["results"]["lmmcl_ai2d_local"]["exact_match,flexible-extract"] == 0.0
    stored["results"]["lmmcl_ai2d_local"]["exact_match,flexible-extract"] = 0.75
    stored["results"]["lmmcl_ocrbench_local"]["ocrbench_accuracy,none"] = 0.002  # 2 right / 1000
    out = normalize.normalize_results(stored, {"lmmcl_ai2d_local": "ai2d", "lmmcl_ocrbench_local": "ocrbench"})
    assert out["ai2d"]["metric"] == "exact_match" and out["ai2d"]["metric_key"] == "exact_match,flexible-extract"
    assert out["ai2d"]["score"] == pytest.approx(75.0) and out["ai2d"]["n"] == 4
    # ocrbench reports correct / 1000 whatever n: 2 of the 4 samples right is 50, not 0.2
    assert out["ocrbench"]["score"] == pytest.approx(50.0) and out["ocrbench"]["n"] == 4
    stored["results"]["lmmcl_ai2d_local"] = {"alias": "x", "exact_match,none": 0.5}
    with pytest.raises(KeyError, match=r"exact_match,flexible-extract.*keys there.*exact_match,none"):
        normalize.normalize_results(stored, {"lmmcl_ai2d_local": "ai2d"})


def test_registry_builtins_match_installed_lmms_eval():
    """Every built-in benchmark names an lmms-eval 0.7.3 task whose YAML declares the metric of
    its registry metric_key (and the filter, where the key has one other than none)."""
    from lmmcl.registry import benchmarks

    reg = benchmarks()
    builtin = {b: s for b, s in reg.items() if s.get("builtin")}
    assert set(builtin) == {"textvqa_val", "ai2d", "chartqa", "docvqa_val", "infovqa_val", "realworldqa",
                            "seedbench", "scienceqa_img", "mmstar", "ocrbench"}
    for b, spec in builtin.items():
        path = taskgen.builtin_yaml_path(spec["task"])
        metric, flt = spec["metric_key"].split(",")
        text = path.read_text() + "".join(p.read_text() for p in path.parent.glob("_default_template*"))
        assert f"metric: {metric}" in text, (b, path)
        assert flt == "none" or f'name: "{flt}"' in text, b
    assert reg["mmstar"]["metric_key"] == "average,none" and reg["ocrbench"]["value_scale"] == "per_1000"
    assert reg["textvqa_val"]["target_of"] == "textvqa"


def test_plan_targets_and_local_benchmarks():
    from lmmcl.config import Plan
    from lmmcl.registry import benchmark_of_task, task_of_benchmark

    assert benchmark_of_task("textvqa") == "textvqa_val" and benchmark_of_task("cub200") == "cub200"
    assert task_of_benchmark("textvqa_val") == "textvqa" and task_of_benchmark("cub200") == "cub200"
    cfg = {"experiment": "x", "sequence": ["cub200", "textvqa"], "methods": {"m": {"recipe": "sa_proj"}},
           "benchmarks": {"held_out": ["ai2d", "mmstar"], "extra": ["countbench"]}}
    plan = Plan(cfg)
    assert plan.target == ["cub200", "textvqa_val"]
    assert plan.report_plan()["stage_targets"] == {"cub200": "cub200", "textvqa": "textvqa_val"}
    assert plan.local_benchmarks == ["cub200", "countbench"]


# ------------------------------------------------------------------ standalone `lmmcl evaluate`
def test_standalone_cli(real, tmp_path, capsys):
    from lmmcl.cli import main
    from lmmcl.evaluation import standalone
    from lmmcl.models.io import resolve_checkpoint

    assert resolve_checkpoint(str(real["ckpt"])) == str(Path(real["ckpt"]).resolve())
    assert resolve_checkpoint("llava-hf/llava-onevision-qwen2-7b-ov-hf") == "llava-hf/llava-onevision-qwen2-7b-ov-hf"
    with pytest.raises(FileNotFoundError, match="neither config.json"):
        resolve_checkpoint(str(tmp_path))
    assert standalone.default_out_dir("a/b/stage3_pathvqa/model").name == "stage3_pathvqa__model"
    assert standalone.parse_builtin_data(["ai2d=/x.parquet"]) == {"ai2d": "/x.parquet"}
    with pytest.raises(ValueError, match="BENCHMARK=PARQUET"):
        standalone.parse_builtin_data(["ai2d"])

    out = tmp_path / "out"
    main(["evaluate", str(real["ckpt"]), "--benchmarks", "countbench", "pixmocount", "--data-root", str(real["data"]),
          "--out-dir", str(out), "--limit", "3", "--batch-size", "3"])
    printed = capsys.readouterr().out
    assert "countbench: countbench_accuracy" in printed and "pixmocount: pixmocount_accuracy" in printed
    rec = json.loads((out / "countbench.json").read_text())
    assert rec["n"] == 3 and rec["batch_size"] == 3 and rec["lmms_eval_version"] == "0.7.3"
    assert (out / "pixmocount.samples.jsonl").is_file()


def _registry_families() -> list[str]:
    """Every family of registry/families.yaml but the default (its own tests above): a new entry is
    evaluated here with no test edit."""
    from lmmcl.models.families import FAMILIES

    return [f for f in FAMILIES if f != "tiny_llava"]


@pytest.mark.parametrize("family", _registry_families())
def test_other_families_tiny_batched(real, family, tmp_path):
    """The one `lmmcl` wrapper evaluates every family's tiny checkpoint; batch 3 == batch 1."""
    from lmmcl.evaluation.run import evaluate
    from lmmcl.models.families import get_family

    model, processor = get_family(family).build_tiny(0)  # its module's, or the generic one (YAML alone)
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    processor.save_pretrained(ckpt)
    answers = {}
    for bs in (1, 3):
        evaluate(str(ckpt), ["cub200"], real["data"], tmp_path / f"o{bs}", limit=3, batch_size=bs)
        rows = [json.loads(x) for x in (tmp_path / f"o{bs}" / "cub200.samples.jsonl").read_text().splitlines()]
        answers[bs] = [r["response"] for r in rows]
    assert len(answers[1]) == 3 and all(a.strip() for a in answers[1])
    assert answers[1] == answers[3]

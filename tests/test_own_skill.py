"""A skill from config alone (lmmcl.data.declared, docs/own_skill.md): every layout on a fixture
written in its real layout, every bad input refused before any training naming file, row and field
(and nothing written), the scorer and its options as the user says, planning's new checks, and
config/example_own_skill.yaml through the real workflow."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from lmmcl.config import ConfigError, Plan, load_configfiles
from lmmcl.data import declared
from lmmcl.data.contract import read_split

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COLOURS = {"red": (215, 30, 30), "green": (30, 165, 45), "blue": (35, 65, 220), "yellow": (240, 220, 30)}
EXACT = {"scorer": "exact", "max_new_tokens": 8}


def _png(path: Path, colour) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return str(path)


def _read(path) -> dict:
    """{column: list of values} of a written split (images as PIL images)."""
    ds = read_split(path)
    return {c: list(ds[c]) for c in ds.column_names}


def _convert_all(decl, out_dir) -> dict:
    return {split: declared.convert(decl, split, out_dir) for split in decl["outputs"]}


# ------------------------------------------------------------------ fixtures in each layout
@pytest.fixture()
def llava(tmp_path):
    """LLaVA's conversation JSON (haotian-liu/LLaVA docs/Finetune_Custom_Data.md): id, image relative
    to the image folder, conversations of human/gpt turns, <image> in the first human turn."""
    rows = []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        _png(tmp_path / "imgs" / f"{i}.png", rgb)
        turns = [{"from": "human", "value": "<image>\nWhat color is the square?"}, {"from": "gpt", "value": name}]
        if i % 2:  # a second turn
            turns += [{"from": "human", "value": "Is it red?"}, {"from": "gpt", "value": "yes" if name == "red" else "no"}]
        rows.append({"id": f"c{i}", "image": f"{i}.png", "conversations": turns})
    (tmp_path / "train.json").write_text(json.dumps(rows))
    test = [{"id": "t0", "image": "0.png", "conversations": [{"from": "human", "value": "What color is the square?\n<image>"},
                                                             {"from": "gpt", "value": "red"}]}]
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps(r) for r in test) + "\n")
    return tmp_path


def test_llava_json_with_a_test_file_and_multi_turn(llava):
    entry = {"format": "llava", "path": str(llava / "train.json"), "test_path": str(llava / "test.jsonl"),
             "image_folder": str(llava / "imgs"), "benchmark": EXACT}
    decl = declared.parse("colors", entry)
    assert decl["outputs"] == ["train", "test"]
    record = _convert_all(decl, llava / "out")
    train = _read(llava / "out/train.parquet")
    # turns: first (default): each conversation's first question and answer; <image> taken out
    assert train["id"] == ["c0", "c1", "c2", "c3"]
    assert set(train["question"]) == {"What color is the square?"} and train["answer"] == list(COLOURS)
    assert train["task"] == ["colors"] * 4 and train["image"][0].getpixel((0, 0)) == COLOURS["red"]
    test = _read(llava / "out/test.parquet")
    assert test["id"] == ["t0"] and test["question"] == ["What color is the square?"]
    saved = json.loads((llava / "out/benchmark.json").read_text())
    assert saved["benchmark"]["scorer"] == "exact" and saved["benchmark"]["metric"] == "exact_match"
    assert saved["data"]["test_split"] == {"held_back": False, "file": str(llava / "test.jsonl")}
    assert json.loads((llava / "out/report.json").read_text())["splits"]["train"] == {"rows": 4, "examples": 4}
    assert record["test"]["source"]["files"][str(llava / "test.jsonl")]  # sha256 of what was read
    # turns: each: every question and answer of a conversation, `#<turn>` ids; the same image
    decl = declared.parse("colors", {**entry, "turns": "each"})
    declared.convert(decl, "train", llava / "each")
    each = _read(llava / "each/train.parquet")
    assert each["id"] == ["c0", "c1#1", "c1#2", "c2", "c3#1", "c3#2"]
    assert each["answer"][1:3] == ["green", "no"] and each["question"][2] == "Is it red?"


def test_messages_layout_of_llama_factory_and_ms_swift(tmp_path):
    """`messages` with role/content and an `images` list (ms-swift's custom dataset JSONL, LLaMA-Factory's
    sharegpt with OpenAI tags); a system turn is left out and noted; rows without an id get their row number."""
    lines = []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        lines.append({"messages": [{"role": "system", "content": "You are helpful."},
                                   {"role": "user", "content": "<image>What color is the square?"},
                                   {"role": "assistant", "content": name}],
                      "images": [_png(tmp_path / f"img{i}.png", rgb)]})  # absolute paths, as ms-swift writes them
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    decl = declared.parse("msg", {"format": "messages", "path": str(tmp_path / "data.jsonl"), "test_fraction": 0.5,
                                  "benchmark": EXACT})
    _convert_all(decl, tmp_path / "out")
    train, test = _read(tmp_path / "out/train.parquet"), _read(tmp_path / "out/test.parquet")
    assert sorted(train["id"] + test["id"]) == [f"msg_{i:05d}" for i in (1, 2, 3, 4)]
    assert set(train["question"]) == {"What color is the square?"}
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert len(report["notes"]) == 4 and "system turn(s) left out" in report["notes"][0]
    # LLaMA-Factory's own tags (dataset_info.json `tags`): e.g. a dataset written with from/value and human/gpt
    alt = [{"conversations": [{"from": "human", "value": "<image>Which?"}, {"from": "gpt", "value": "red"}],
            "images": [str(tmp_path / "img0.png")]}]
    (tmp_path / "alt.json").write_text(json.dumps(alt * 2))
    decl = declared.parse("alt", {"format": "messages", "path": str(tmp_path / "alt.json"),
                                  "columns": {"messages": "conversations"},
                                  "tags": {"role": "from", "content": "value", "user": "human", "assistant": "gpt"},
                                  "benchmark": EXACT})
    declared.convert(decl, "train", tmp_path / "alt")
    assert _read(tmp_path / "alt/train.parquet")["answer"] == ["red"]


def _hf_dataset(n=6, with_choices=False):
    import datasets

    rows = {"image": [Image.new("RGB", (8, 8), rgb) for rgb in list(COLOURS.values()) * 2][:n],
            "q": ["Which color?"] * n, "a": [list(COLOURS)[i % 4] for i in range(n)], "qid": [f"r{i}" for i in range(n)]}
    if with_choices:
        rows["opts"] = [list(COLOURS)] * n
        rows["a"] = ["ABCD"[i % 4] for i in range(n)]
    return datasets.Dataset.from_dict(rows, features=datasets.Features({
        "image": datasets.Image(), "q": datasets.Value("string"), "a": datasets.Value("string"),
        "qid": datasets.Value("string"), **({"opts": datasets.Sequence(datasets.Value("string"))} if with_choices else {})}))


def test_hf_save_to_disk_folder_with_a_column_mapping(tmp_path):
    import datasets

    datasets.DatasetDict({"train": _hf_dataset(6, True), "validation": _hf_dataset(4, True)}).save_to_disk(tmp_path / "ds")
    entry = {"format": "hf", "path": str(tmp_path / "ds"), "splits": {"train": "train", "test": "validation"},
             "columns": {"question": "q", "answer": "a", "id": "qid", "choices": "opts"},
             "benchmark": {"scorer": "mc_letter", "scorer_options": {"letters": "ABCD"}}}
    decl = declared.parse("mc", entry)
    assert decl["benchmark"]["columns"] == ["options"] and decl["benchmark"]["metric"] == "acc"
    _convert_all(decl, tmp_path / "out")
    test = _read(tmp_path / "out/test.parquet")
    assert test["id"] == ["r0", "r1", "r2", "r3"] and test["answer"] == ["A", "B", "C", "D"]
    # the choices: an `options` column (the mc_letter scorer's) and 'A. ...' lines in the question,
    # as the evaluation's prompt writes them
    assert json.loads(test["options"][0]) == list(COLOURS)
    assert test["question"][0] == "Which color?\nA. red\nB. green\nC. blue\nD. yellow"
    assert test["image"][0].getpixel((0, 0)) == COLOURS["red"]


def test_hf_parquet_folder_and_a_hub_id_at_its_revision(tmp_path, monkeypatch):
    (tmp_path / "pq/data").mkdir(parents=True)
    _hf_dataset(6).to_parquet(tmp_path / "pq/data/train-00000-of-00001.parquet")  # the hub's file layout
    entry = {"format": "hf", "path": str(tmp_path / "pq"), "columns": {"question": "q", "answer": "a"},
             "benchmark": EXACT}
    decl = declared.parse("pq", entry)
    _convert_all(decl, tmp_path / "out")
    assert len(_read(tmp_path / "out/train.parquet")["id"]) == 5 and len(_read(tmp_path / "out/test.parquet")["id"]) == 1
    # a hub id: loaded through datasets at the pinned revision (the network is never reached in tests)
    import datasets

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or _hf_dataset(4))
    hub = declared.parse("hub", {**entry, "path": "someone/colors", "revision": "abc123"})
    assert hub["hub"] and hub["revision"] == "abc123" and declared.source_files(hub) == []
    declared.convert(hub, "train", tmp_path / "hub")
    assert calls[0][0] == ("someone/colors",) and calls[0][1]["split"] == "train" and calls[0][1]["revision"] == "abc123"
    with pytest.raises(declared.SkillError, match=r"skills.hub.revision: required for the hub dataset 'someone/colors'"):
        declared.parse("hub", {**entry, "path": "someone/colors"})


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_folder_of_images_with_a_csv_or_jsonl_of_rows(tmp_path, kind):
    rows = [{"file_name": Path(_png(tmp_path / "pics" / f"{i}.png", rgb)).name, "question": "How many squares?",
             "answer": str(i + 1)} for i, rgb in enumerate(COLOURS.values())]
    meta = tmp_path / "pics" / f"metadata.{kind}"  # the `datasets` ImageFolder metadata file: file_name column
    if kind == "csv":
        meta.write_text("file_name,question,answer\n" + "".join(f"{r['file_name']},{r['question']},{r['answer']}\n" for r in rows))
    else:
        meta.write_text("".join(json.dumps(r) + "\n" for r in rows))
    decl = declared.parse("cnt", {"format": "folder", "path": str(meta), "test_fraction": 0.25,
                                  "benchmark": {"scorer": "count", "scorer_options": {"tolerance": 1}}})
    records = _convert_all(decl, tmp_path / "out")
    test = _read(tmp_path / "out/test.parquet")
    assert len(test["id"]) == 1 and len(_read(tmp_path / "out/train.parquet")["id"]) == 3
    held = records["test"]["test_split"]
    assert held["held_back"] and held["fraction"] == 0.25 and held["seed"] == 0 and test["id"] == [f"cnt_{held['test_rows'][0]:05d}"]


def test_held_back_test_split_is_seeded_whole_conversations_and_recorded(llava):
    entry = {"format": "llava", "path": str(llava / "train.json"), "image_folder": str(llava / "imgs"),
             "turns": "each", "test_fraction": 0.5, "benchmark": EXACT}
    a = declared.parse("s", entry)
    first = _convert_all(a, llava / "a")
    again = _convert_all(declared.parse("s", entry), llava / "b")
    other = _convert_all(declared.parse("s", {**entry, "seed": 5}), llava / "c")
    assert (llava / "a/test.parquet").read_bytes() == (llava / "b/test.parquet").read_bytes()
    assert first["test"]["test_split"]["test_rows"] == again["test"]["test_split"]["test_rows"]
    assert other["test"]["test_split"]["test_rows"] != first["test"]["test_split"]["test_rows"]
    train, test = _read(llava / "a/train.parquet"), _read(llava / "a/test.parquet")
    # a conversation is in one split only: no question of a test picture is trained on
    assert not {i.split("#")[0] for i in train["id"]} & {i.split("#")[0] for i in test["id"]}
    assert json.loads((llava / "a/report.json").read_text())["test_split"] == first["train"]["test_split"]
    with pytest.raises(declared.SkillError, match="test_fraction: a test split is given"):
        declared.parse("s", {**entry, "test_path": str(llava / "test.jsonl")})


# ------------------------------------------------------------------ bad inputs: refused, naming file/row/field
def _bad(tmp_path, rows, **entry):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rows))
    return declared.parse("bad", {"format": "llava", "path": str(path), "image_folder": str(tmp_path),
                                  "benchmark": EXACT, **entry})


def _row(i, answer="red", image=None, question="<image>\nWhat color?"):
    return {"id": f"r{i}", "image": image or "ok.png",
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}


@pytest.mark.parametrize("rows, entry, expected", [
    ([_row(0), _row(1, answer="  ")], {}, "bad.json: row 2 (id 'r1'), field 'conversations[1].value': empty answer"),
    ([_row(0), _row(1, image="gone.png")], {}, "bad.json: row 2 (id 'r1'), field 'image': image file 'gone.png' not found"),
    ([_row(0), _row(0)], {}, "bad.json: rows 1 and 2 have the same id 'r0'"),
    ([_row(0, answer="3"), _row(1, answer="blue")], {"benchmark": {"scorer": "count"}},
     "row 2 (id 'r1'), field 'conversations[1].value': answer 'blue' has no number; scorer count needs one"),
    ([_row(0, answer="yes"), _row(1, answer="maybe")], {"benchmark": {"scorer": "yesno"}},
     "row 2 (id 'r1'), field 'conversations[1].value': answer 'maybe' does not start with yes or no"),
    ([_row(0, answer="A"), _row(1, answer="robin")], {"benchmark": {"scorer": "mc_letter", "scorer_options": {"letters": "AB"}}},
     "answer 'robin' names no option letter (A-B); scorer mc_letter needs one"),
    ([{"id": "r0", "image": "ok.png", "conversations": [{"from": "human", "value": "<image>Q"}]}, _row(1)], {},
     "row 1 (id 'r0'), field 'conversations[0].value': the last 'human' turn has no 'gpt' answer"),
    ([{"id": "r0", "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "a"}]}, _row(1)], {},
     "row 1 (id 'r0'), field 'image': missing; the data contract needs one image per example"),
    ([{"id": "r0", "image": "ok.png", "conversations": [{"from": "user", "value": "Q"}, {"from": "gpt", "value": "a"}]},
      _row(1)], {}, "field 'conversations[0].from': 'user'; allowed: 'human', 'gpt', 'system'"),
    ([_row(0, question="<image><image>Q"), _row(1)], {}, "2 <image> tokens for one image"),
])
def test_bad_rows_are_refused_naming_file_row_and_field(tmp_path, rows, entry, expected):
    _png(tmp_path / "ok.png", (1, 2, 3))
    decl = _bad(tmp_path, rows, test_fraction=1.0, **entry)  # every row a test row: what the scorer judges
    with pytest.raises(declared.SkillError) as e:
        declared.convert(decl, "test", tmp_path / "out")
    assert expected in str(e.value), str(e.value)
    assert "skills.bad:" in str(e.value) and "nothing converted" in str(e.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unreadable_image_is_refused_at_conversion_and_every_problem_is_listed(tmp_path):
    _png(tmp_path / "ok.png", (1, 2, 3))
    (tmp_path / "broken.png").write_bytes(Image.new("RGB", (8, 8)).tobytes()[:20])  # no image at all
    good = tmp_path / "ok.png"
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:40])  # a truncated PNG
    decl = _bad(tmp_path, [_row(0), _row(1, image="broken.png"), _row(2, image="cut.png"), _row(3, answer="")],
                test_fraction=0)
    with pytest.raises(declared.SkillError) as e:
        declared.convert(decl, "train", tmp_path / "out")
    text = str(e.value)
    assert "3 problem(s)" in text
    assert "row 2 (id 'r1'), field 'image': image 'broken.png'" in text and "corrupt image" in text
    assert "row 3 (id 'r2'), field 'image': image 'cut.png'" in text
    assert "row 4 (id 'r3'), field 'conversations[1].value': empty answer" in text
    assert not (tmp_path / "out").exists()


def test_missing_column_of_a_folder_csv_and_of_a_hf_dataset(tmp_path):
    _png(tmp_path / "a.png", (1, 2, 3))
    (tmp_path / "rows.csv").write_text("file_name,prompt,answer\na.png,Q?,x\n")
    decl = declared.parse("f", {"format": "folder", "path": str(tmp_path / "rows.csv"), "test_fraction": 0,
                                "benchmark": EXACT})
    with pytest.raises(declared.SkillError, match=r"rows.csv: no column\(s\) \['question'\] \(its columns: "
                                                  r"\['file_name', 'prompt', 'answer'\]\); map them with skills.f.columns"):
        declared.convert(decl, "train", tmp_path / "out")
    (tmp_path / "pq").mkdir()
    _hf_dataset(4).to_parquet(tmp_path / "pq/train.parquet")
    decl = declared.parse("h", {"format": "hf", "path": str(tmp_path / "pq"), "benchmark": EXACT})
    with pytest.raises(declared.SkillError, match=r"split 'train': no column\(s\) \['question', 'answer'\] \(its columns: "
                                                  r"\['image', 'q', 'a', 'qid'\]\)"):
        declared.convert(decl, "train", tmp_path / "out")


@pytest.mark.parametrize("entry, expected", [
    ({"benchmark": {"scorer": "exactly"}}, "skills.x.benchmark.scorer: unknown scorer 'exactly'; allowed: ['clock', "),
    ({"benchmark": {"scorer": "count", "scorer_options": {"tolerence": 1}}},
     "skills.x.benchmark.scorer_options: scorer 'count' has no option 'tolerence'; allowed: ['tolerance']"),
    ({"benchmark": {"scorer": "mc_letter", "scorer_options": {"letters": "abcd"}}},
     "option 'letters': 'abcd' is not allowed; expected a string of distinct capital letters"),
    ({"benchmark": {}}, "skills.x.benchmark.scorer: required"),
    ({"format": "parquet"}, "skills.x.format: 'parquet'; allowed: ['llava', 'messages', 'hf', 'folder']"),
    ({"path": "no/such.json"}, "skills.x.path: 'no/such.json' is not an existing file"),
    ({"test_fraction": 1.5}, "skills.x.test_fraction: 1.5; allowed: a number in [0.0, 1.0]"),
    ({"columns": {"answr": "a"}}, "skills.x.columns: unknown key(s) ['answr']"),
    ({"turns": "all"}, "skills.x.turns: 'all'; allowed: ['first', 'each']"),
    ({"pth": "x"}, "skills.x: unknown key(s) ['pth']"),
])
def test_bad_declaration_is_refused_at_planning(llava, entry, expected):
    base = {"format": "llava", "path": str(llava / "train.json"), "benchmark": EXACT}
    with pytest.raises(declared.SkillError) as e:
        declared.parse("x", {**base, **entry})
    assert expected in str(e.value), str(e.value)


def test_words_the_tiny_tokenizer_does_not_know_are_listed(tmp_path):
    _png(tmp_path / "ok.png", (1, 2, 3))
    tok = ROOT / "pretrained/tiny_default/model/tokenizer.json"
    rows = [_row(0, answer="red"), _row(1, answer="banana", question="<image>\nWhat fruit is this?")]
    decl = _bad(tmp_path, rows, test_fraction=0)
    decl = {**decl, "words": {"tokenizer": str(tok)}}
    with pytest.raises(declared.SkillError) as e:
        declared.read(decl)
    text = str(e.value)
    assert "2 word(s) the tiny model's word-level tokenizer" in text and "would read as <unk>" in text
    assert "'fruit' (" in text and "row 2 (id 'r1'), field 'conversations[0].value')" in text
    assert "'banana' (" in text and "field 'conversations[1].value')" in text
    assert "model.tiny.tokenizer: byte" in text  # the way out
    # the default's own words pass; a byte tokenizer reads anything
    declared.read(_bad(tmp_path, [_row(0), _row(1, answer="blue")], test_fraction=0) | {"words": {"tokenizer": str(tok)}})
    declared.read(decl | {"words": {"tiny_tokenizer": "byte"}})
    assert declared.vocabulary({"tiny_tokenizer": "word_broad_vision"})[0] == set(json.loads(tok.read_text())["model"]["vocab"])


# ------------------------------------------------------------------ the scorer and its options in the evaluation
def test_scorer_options_reach_the_generated_task_and_its_hook(tmp_path):
    from lmmcl.evaluation import scoring, taskgen
    from lmmcl.evaluation.tasks import utils

    spec = {"dataset": "x", "split": "test", "scorer": "count", "metric": "count_acc", "max_new_tokens": 8,
            "scorer_options": {"tolerance": 1}}
    text = taskgen.task_yaml("x", spec, tmp_path / "x.parquet")
    fn_name = text.split("process_results: !function utils.")[1].split("\n")[0]
    assert fn_name.startswith("process_results__count__count_acc__o") and 'scorer_options: {"tolerance": 1}' in text
    fn = getattr(utils, fn_name)
    assert fn({"answer": "3"}, ["4"]) == {"count_acc": 1.0} and fn({"answer": "3"}, ["5"]) == {"count_acc": 0.0}
    assert utils.process_results__count__count_acc({"answer": "3"}, ["4"]) == {"count_acc": 0.0}
    assert scoring.mc_letter("E", {"answer": "E"}) == 1.0 and scoring.mc_letter("E", {"answer": "E"}, letters="ABCD") == 0.0
    assert scoring.score_all("clock", "both_acc", "00:30", {"answer": "12:30"}, {"exact_hours": True})["both_acc"] == 0.0
    assert scoring.score_all("clock", "both_acc", "00:30", {"answer": "12:30"})["both_acc"] == 1.0
    # the options are in the YAML text the task hash covers: other options, another task
    other = taskgen.task_yaml("x", {**spec, "scorer_options": {"tolerance": 2}}, tmp_path / "x.parquet")
    assert other != text and taskgen.task_yaml("x", {**spec, "scorer_options": {}}, tmp_path / "x.parquet") != text


def test_a_declared_benchmark_is_found_from_its_data_root(tmp_path, llava):
    """An evaluation job (or `lmmcl evaluate --data-root`) knows the skill's scorer from the
    benchmark.json its conversion wrote, without the config."""
    from lmmcl import registry
    from lmmcl.data import skills

    entry = {"format": "llava", "path": str(llava / "train.json"), "image_folder": str(llava / "imgs"),
             "test_fraction": 0.5, "benchmark": {"scorer": "vqa", "max_new_tokens": 5}}
    declared.convert(declared.parse("mine", entry), "test", tmp_path / "data/mine")
    skills.declare({})
    assert "mine" not in registry.benchmarks()
    try:
        assert skills.register_saved(tmp_path / "data", ["mine", "syn_birds", "cub200"]) == ["mine"]
        assert registry.benchmarks()["mine"]["scorer"] == "vqa" and registry.datasets()["mine"]["source"] == "declared"
    finally:
        skills.declare({})


# ------------------------------------------------------------------ planning
@pytest.fixture()
def cfg():
    return load_configfiles([str(ROOT / "config/config.yaml"), str(ROOT / "config/example_own_skill.yaml")])


def test_the_example_plans_as_a_stage_and_a_target(cfg):
    plan = Plan(copy.deepcopy(cfg))
    assert plan.sequence[-1] == "color_check" and plan.target[-1] == "color_check"
    assert plan.held_out == ["syn_color", "syn_shape", "syn_position"]
    assert "color_check" in plan.local_benchmarks and plan.report_plan()["chance"]["color_check"] == 50.0
    decl = plan.skills["color_check"]
    assert decl["words"]["tokenizer"].endswith("pretrained/tiny_default/model/tokenizer.json")
    # ... or a held-out benchmark, and a benchmark only
    cfg2 = copy.deepcopy(cfg)
    cfg2["sequence"], cfg2["benchmarks"] = cfg2["sequence"][:-1], {"held_out": ["syn_color", "color_check"]}
    del cfg2["stages"]["color_check"]
    assert Plan(cfg2).held_out == ["syn_color", "color_check"]
    cfg2["skills"]["color_check"]["test_fraction"] = 1.0
    assert Plan(cfg2).skills["color_check"]["outputs"] == ["test"]
    cfg2["sequence"], cfg2["benchmarks"] = cfg["sequence"], {"held_out": ["syn_color"]}
    with pytest.raises(ConfigError, match="skills.color_check: trained on .* but has no train split"):
        Plan(cfg2)
    Plan(yaml.safe_load((ROOT / "config/config.yaml").read_text()))  # the next plan declares nothing
    from lmmcl import registry

    assert "color_check" not in registry.benchmarks()


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["skills"].update(syn_color=c["skills"]["color_check"]), "skills.syn_color: 'syn_color' is already"),
    (lambda c: c["skills"]["color_check"]["benchmark"].update(scorer="count"),
     "field 'conversations\\[1\\].value': answer '(yes|no)' has no number; scorer count needs one"),
    (lambda c: c["skills"]["color_check"].update(path="examples/own_skill/nope.json"), "is not an existing file"),
    (lambda c: c["model"].update(checkpoint=None, tiny={**c["model"]["tiny"], "tokenizer": "byte"}), None),
])
def test_planning_checks_the_skill_and_its_rows(cfg, mutate, message):
    cfg = copy.deepcopy(cfg)
    mutate(cfg)
    if message is None:  # a byte tokenizer reads any word: no vocabulary check
        assert Plan(cfg).skills["color_check"]["words"] is None
        return
    with pytest.raises(ConfigError, match=message):
        Plan(cfg)


def test_planning_catches_a_recipe_a_scorer_and_a_method_default(cfg, monkeypatch):
    """What was caught late (at training or evaluation) is caught at planning."""
    base = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    # a recipe regex that matches no parameter of the family (its meta-device model)
    c = copy.deepcopy(base)
    c["recipes"] = {"my_mlp": {"include": [r"{llm_layers}\.\d+\.mlp\.gate_prj\."]}}
    c["methods"]["mine"] = {"recipe": "my_mlp"}
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"methods.mine.recipe: recipe 'my_mlp' \(recipes.my_mlp: include .*\) "
                                          r"matches no parameter of family tiny_llava"):
        Plan(c)
    print(f"recipe check on the meta device: {time.perf_counter() - t0:.2f} s")
    c["recipes"]["my_mlp"]["include"] = [r"{llm_layers}\.\d+\.mlp\.gate_proj\."]
    Plan(c)
    c["recipes"]["my_mlp"]["include"] = [r"{vision_layers}\.\d+\.mlp\."]
    with pytest.raises(ConfigError, match="methods.mine.recipe: recipe 'my_mlp': pattern .* names role 'vision_layers'"):
        Plan(c)
    # a benchmark whose scorer does not exist
    from lmmcl import registry

    bad = {**registry.benchmarks(), "syn_color": {**registry.benchmarks()["syn_color"], "scorer": "exact_mach"}}
    monkeypatch.setattr(registry, "benchmarks", lambda: bad)
    with pytest.raises(ConfigError, match="benchmarks.held_out: benchmark 'syn_color' \\(registry/benchmarks.yaml\\): "
                                          "unknown scorer 'exact_mach'"):
        Plan(copy.deepcopy(base))
    monkeypatch.undo()
    # a method default without its check
    from lmmcl.train import methods

    monkeypatch.setitem(methods.METHOD_DEFAULTS, "lwf", {**methods.METHOD_DEFAULTS["lwf"], "warmup": 3})
    c = copy.deepcopy(base)
    c["methods"]["lwf"] = {"method": "lwf", "recipe": "mlp"}
    with pytest.raises(ConfigError, match="method lwf: key 'warmup' has a default \\(3\\) in METHOD_DEFAULTS but no check"):
        Plan(c)


# ------------------------------------------------------------------ the example
def test_the_committed_example_is_what_its_script_makes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_example", ROOT / "examples/own_skill/make_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.make(tmp_path)
    assert rows == json.loads((ROOT / "examples/own_skill/llava.json").read_text())
    for r in rows:
        made, committed = Image.open(tmp_path / r["image"]), Image.open(ROOT / "examples/own_skill" / r["image"])
        assert made.tobytes() == committed.tobytes(), r["image"]


def test_cli_check_and_words(capsys):
    from lmmcl.cli import main

    files = ["--configfile", str(ROOT / "config/config.yaml"), str(ROOT / "config/example_own_skill.yaml")]
    main(["skill", "check", *files])
    out = capsys.readouterr().out
    assert "color_check (llava, scorer yesno): train 64 example(s) from 32 row(s); test 16 example(s) from 8 " \
           "row(s); test held back: 0.2 of 40 rows, seed 0: OK" in out
    main(["skill", "words", *files])
    out = capsys.readouterr().out
    assert "tokenizer.json" in out and " circle " in out and " Is " in out


def _env():
    return dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                TOKENIZERS_PARALLELISM="false")


def _smk(wd: Path, *args, config="config.yaml"):
    cmd = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile"), "--directory", str(wd),
           "--configfile", str(wd / config), *args]
    return subprocess.run(cmd, cwd=wd, env=_env(), capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_example_runs_through_the_workflow(tmp_path):
    """config/example_own_skill.yaml over the default, made cheap (one method, 2 steps a stage, 16
    train and 8 test examples per synthetic skill, evaluation.limit 8): the study's five stages and
    the skill's, its conversion rules, the in-job evaluations and the tables."""
    cfg = load_configfiles([str(ROOT / "config/config.yaml"), str(ROOT / "config/example_own_skill.yaml")])
    cfg["methods"] = {"sa_proj": {"recipe": "sa_proj"}}
    cfg["stages"] = {"defaults": {"lr": 1.0e-3, "steps": 2, "batch_size": 4, "role_lr": {}}}
    cfg["data"]["synthetic"].update(train_size=16, train_sizes={}, test_size=8)
    cfg["evaluation"]["limit"] = 8
    cfg["intervals"] = {"resamples": 100}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    t0 = time.time()
    p = _smk(tmp_path, "--cores", "2")
    print(f"example run: {time.time() - t0:.1f} s")
    assert p.returncode == 0, (p.stdout + p.stderr)[-6000:]
    res = tmp_path / "results/example_own_skill"
    table = (res / "tables/learning_forgetting.md").read_text()
    assert "| 6 | color_check | `color_check` | yesno_acc | 50.0 |" in table
    print(table[table.index("## Results"):table.index("## 95 %")])
    r = (res / "tables/R_sa_proj.md").read_text()
    print(r[r.index("| stage"):r.index("## 95 %")])
    import pandas as pd

    scores = pd.read_csv(res / "scores.csv")
    mine = scores[scores["benchmark"] == "color_check"]
    assert len(mine) == 7 and mine["score"].notna().all() and set(mine["metric"]) == {"yesno_acc"}
    assert len(scores) == 7 * 9
    data = tmp_path / "data/color_check"
    assert len(_read(data / "train.parquet")["id"]) == 64 and len(_read(data / "test.parquet")["id"]) == 16
    assert json.loads((data / "report.json").read_text())["test_split"]["of_rows"] == 40
    samples = [json.loads(x) for x in (res / "seed0/evals/sa_proj/stage6_color_check/color_check.samples.jsonl")
               .read_text().splitlines()]
    assert len(samples) == 8 and all(s["id"].startswith("color_check_0") and "#" in s["id"] for s in samples)
    assert {s["target"] for s in samples} == {"yes", "no"}
    # a changed scorer rewrites the test split and reruns what evaluates it, never the train split
    changed = copy.deepcopy(cfg)
    changed["skills"]["color_check"]["benchmark"]["scorer"] = "vqa"
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    out = _smk(tmp_path, "-n", config="changed.yaml")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "benchmark_skill_color_check" in text and "convert_skill_color_check" not in text
    assert "Nothing to be done" in (lambda q: q.stdout + q.stderr)(_smk(tmp_path, "-n"))


def test_a_bad_skill_stops_the_workflow_before_any_training(tmp_path):
    """Through Snakemake: a duplicated id stops planning (`Config error`, no job); a picture that
    is there but does not decode stops the run at the skill's conversion, which runs first (its
    priority), before the base or any stage, and leaves no split behind."""
    smoke = yaml.safe_load((ROOT / "tests/configs/smoke.yaml").read_text())
    (tmp_path / "pics").mkdir()
    _png(tmp_path / "pics/ok.png", (1, 2, 3))
    (tmp_path / "pics/cut.png").write_bytes((tmp_path / "pics/ok.png").read_bytes()[:40])
    rows = [_row(i, answer="red") for i in range(6)]
    rows[1]["id"] = "r0"
    (tmp_path / "pics/data.json").write_text(json.dumps(rows))
    smoke["skills"] = {"mine": {"format": "llava", "path": str(tmp_path / "pics/data.json"), "test_fraction": 0.5,
                                "benchmark": {"scorer": "exact", "max_new_tokens": 4}}}
    smoke["model"]["tiny"]["tokenizer"] = "byte"  # any word (no vocabulary check here)
    smoke["sequence"], smoke["benchmarks"]["target"] = ["mine"], ["mine"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(smoke))
    p = _smk(tmp_path, "-n")
    assert p.returncode != 0 and "Config error: skills.mine: 1 problem(s), nothing converted:" in p.stdout + p.stderr
    assert "data.json: rows 1 and 2 have the same id 'r0'" in p.stdout + p.stderr
    rows[1]["id"], rows[4]["image"] = "r1", "cut.png"
    (tmp_path / "pics/data.json").write_text(json.dumps(rows))
    p = _smk(tmp_path, "--cores", "1")
    assert p.returncode != 0
    logs = "".join(f.read_text() for f in (tmp_path / "data/logs").glob("mine_*.log"))
    assert "lmmcl skill: error: skills.mine: 1 problem(s), nothing converted:" in logs
    assert "row 5 (id 'r4'), field 'image': image 'cut.png'" in logs and "corrupt image" in logs
    assert not (tmp_path / "data/mine").exists() or not any((tmp_path / "data/mine").iterdir())  # neither split
    assert not (tmp_path / "results/smoke/seed0/base/manifest.json").exists()  # nothing trained

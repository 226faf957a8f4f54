"""Answer gallery: fixed examples per benchmark, every method's answer after every stage, wrong
ones marked; standalone HTML (images embedded), JSON and one PNG per benchmark."""
import json
import re

import pytest

from lmmcl.data.synthetic import write_skill
from lmmcl.report.gallery import collect_gallery, pick_doc_ids, verdict, write_gallery

PLAN = {"experiment": "g", "methods": ["sa_proj", "full"], "sequence": ["syn_birds", "syn_count"],
        "target": ["syn_birds", "syn_count"], "held_out": ["syn_color", "textvqa_val"]}
N_DOCS = 10


def answer(method, k, bench, doc):
    """Deterministic fake answers: the base knows colours; `full` forgets them after stage 1."""
    if bench == "syn_color":
        return "red" if (method == "full" and k >= 1 and doc % 2 == 0) else f"gold{doc}"
    return f"{method[0]}{k}-{doc}"


def write_samples(folder, method, k, bench):
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for d in range(N_DOCS):
        resp = answer(method, k, bench, d)
        score = 0.6 if bench == "textvqa_val" and d == 0 else float(resp == f"gold{d}")
        rows.append({"doc_id": d, "id": f"{bench}_test_{d:05d}", "question": f"Q{d} of {bench}?",
                     "target": f"gold{d}", "response": " " + resp, "score": score})
    (folder / f"{bench}.samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery")
    data = root / "data"
    for b in ["syn_birds", "syn_count", "syn_color"]:
        write_skill(b, "test", N_DOCS, 0, data / f"{b}/test.parquet")
    evals = root / "results/g/seed0/evals"
    benches = ["syn_birds", "syn_count", "syn_color", "textvqa_val"]
    for b in benches:
        write_samples(evals / "base", "base", 0, b)
        for m in PLAN["methods"]:
            for k, t in enumerate(PLAN["sequence"], start=1):
                if (m, k, b) == ("full", 2, "syn_count"):
                    continue  # a missing evaluation
                write_samples(evals / m / f"stage{k}_{t}", m, k, b)
    return root


def test_pick_doc_ids_spread_and_fixed():
    assert pick_doc_ids(range(10), 4) == [0, 3, 6, 9]
    assert pick_doc_ids([5, 1, 3], 4) == [1, 3, 5]
    assert pick_doc_ids(range(10), 1) == [0]
    with pytest.raises(ValueError, match="must be >= 1"):
        pick_doc_ids(range(3), 0)
    assert [verdict(s) for s in (1.0, 0.0, 0.5, None, float("nan"))] == ["right", "wrong", "partial", "n/a", "n/a"]


def test_gallery_lists_expected_examples_and_answers(tree):
    g = collect_gallery(tree / "results", PLAN, tree / "data", n=4)
    assert g["stages"] == ["0 base", "1 syn_birds", "2 syn_count"]
    assert list(g["benchmarks"]) == ["syn_birds", "syn_count", "syn_color", "textvqa_val"]
    color = g["benchmarks"]["syn_color"]
    assert color["group"] == "held-out" and color["trained_at"] == []
    assert [e["doc_id"] for e in color["examples"]] == [0, 3, 6, 9]
    ex = color["examples"][0]
    assert ex["id"] == "syn_color_test_00000" and ex["gold"] == "gold0" and ex["has_image"]
    # forgetting you can see: full answers doc 0 right at the base, wrong after stage 1 and 2
    assert [a["verdict"] for a in ex["answers"]["full"]] == ["right", "wrong", "wrong"]
    assert [a["response"].strip() for a in ex["answers"]["full"]] == ["gold0", "red", "red"]
    assert [a["verdict"] for a in ex["answers"]["sa_proj"]] == ["right"] * 3
    # the stage-0 answers are the base's, the same for every method
    assert ex["answers"]["full"][0] == ex["answers"]["sa_proj"][0]
    count = g["benchmarks"]["syn_count"]
    assert count["trained_at"] == [2] and count["group"] == "target"
    assert count["examples"][0]["answers"]["full"][2] == {"stage": 2, "response": None, "score": None, "verdict": "n/a"}
    tv = g["benchmarks"]["textvqa_val"]   # built-in: no local image; VQA partial credit
    assert not tv["examples"][0]["has_image"] and tv["examples"][0]["answers"]["full"][0]["verdict"] == "partial"


def test_gallery_files_html_json_png(tree):
    outs = write_gallery(tree / "results", PLAN, tree / "data", tree / "results/g/gallery", n=3)
    html = outs["html"].read_text()
    assert html.count("<div class='ex'>") == 4 * 3                      # 4 benchmarks x 3 examples
    assert html.count("data:image/png;base64,") == 3 * 3                 # textvqa_val has no local image
    assert "syn_color_test_00009" in html and "gold: <b>gold9</b>" in html
    assert len(re.findall(r"<td class='wrong' title=' red'>✗ red</td>", html)) == 2 * 2   # even docs 0 and 4 x stages 1, 2
    data = json.loads(outs["json"].read_text())
    assert data["benchmarks"]["syn_color"]["examples"][1]["doc_id"] == 4
    for png in outs["png"]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert sorted(p.name for p in outs["png"]) == ["syn_birds.png", "syn_color.png", "syn_count.png", "textvqa_val.png"]
    assert not [p for p in outs["html"].parent.iterdir() if p.name.startswith(".")]   # no temp files left


def test_gallery_without_any_evaluation_says_so(tmp_path):
    g = collect_gallery(tmp_path / "results", PLAN, tmp_path / "data", n=2)
    assert g["benchmarks"]["syn_birds"]["examples"] == []
    assert "no evaluation" in g["benchmarks"]["syn_birds"]["missing"]


def test_corrupt_samples_file_names_the_line(tree, tmp_path):
    import shutil

    root = tmp_path / "r"
    shutil.copytree(tree / "results", root)
    shutil.rmtree(root / "g/gallery", ignore_errors=True)
    f = root / "g/seed0/evals/base/syn_color.samples.jsonl"
    f.write_text(f.read_text() + "{broken\n")
    with pytest.raises(ValueError, match=r"syn_color.samples.jsonl:11: not valid JSON"):
        write_gallery(root, PLAN, tree / "data", root / "g/gallery")
    assert not (root / "g/gallery/gallery.html").exists()

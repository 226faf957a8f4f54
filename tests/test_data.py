"""Tests for the parquet data contract and the synthetic skills."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lmmcl.data import contract, synthetic
from lmmcl.data.contract import REQUIRED_COLUMNS, read_split, validate_split, write_split
from lmmcl.data.skills import SKILLS, generate, write_skill

N = 40


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(i: int = 0, **overrides) -> dict:
    rec = {
        "id": f"r{i}",
        "image": Image.new("RGB", (8, 8), (i, 0, 0)),
        "question": "q?",
        "answer": "a",
        "task": "t",
    }
    rec.update(overrides)
    return rec


# ------------------------------------------------------------------ determinism
def test_same_seed_same_bytes_different_seed_different(tmp_path):
    a = write_skill("syn_count", "train", 30, seed=1, out_path=tmp_path / "a.parquet")
    b = write_skill("syn_count", "train", 30, seed=1, out_path=tmp_path / "b.parquet")
    c = write_skill("syn_count", "train", 30, seed=2, out_path=tmp_path / "c.parquet")
    assert _sha(a) == _sha(b)
    assert _sha(a) != _sha(c)


# ------------------------------------------------------------------ every skill
@pytest.mark.parametrize("skill", list(SKILLS))
@pytest.mark.parametrize("image_size", [32, 48])
def test_skill_records(skill, image_size):
    spec = SKILLS[skill]
    records = generate(skill, "train", N, seed=0, image_size=image_size)
    assert len(records) == N
    extras = set(records[0]) - set(REQUIRED_COLUMNS)
    assert extras, "every skill has task-specific columns"
    for i, rec in enumerate(records):
        assert set(rec) == set(REQUIRED_COLUMNS) | extras
        assert rec["id"] == f"{skill}_train_{i:05d}"
        assert rec["task"] == skill
        assert rec["question"] and rec["answer"]
        assert rec["answer"] in spec.answers
        assert rec["image"].mode == "RGB"
        assert rec["image"].size == (image_size, image_size)
        if "label" in rec:
            assert rec["label"] in spec.classes


@pytest.mark.parametrize("skill", list(SKILLS))
def test_skill_parquet_roundtrip_and_splits_differ(skill, tmp_path):
    train = write_skill(skill, "train", N, seed=0, out_path=tmp_path / "train.parquet")
    test = write_skill(skill, "test", N, seed=0, out_path=tmp_path / "test.parquet")
    validate_split(train)
    ds = read_split(train)
    assert len(ds) == N
    assert set(REQUIRED_COLUMNS) <= set(ds.column_names)
    assert isinstance(ds[0]["image"], Image.Image)
    assert ds[0]["image"].size == (32, 32)
    # What lmms-eval does: load_dataset("parquet") hands the image back as PIL.
    hf = datasets.load_dataset(
        "parquet", data_files=str(train), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert isinstance(hf[0]["image"], Image.Image)
    gen = generate(skill, "train", N, seed=0)
    assert list(hf["answer"]) == [r["answer"] for r in gen]
    assert list(ds[0]["image"].getdata()) == list(gen[0]["image"].getdata())
    # train and test come from different RNG streams
    te = read_split(test)
    assert [im.tobytes() for im in ds["image"]] != [im.tobytes() for im in te["image"]]
    assert gen[0]["image"].tobytes() != generate(skill, "test", 1, seed=0)[0]["image"].tobytes()


def test_generate_errors():
    with pytest.raises(ValueError, match="syn_nope.*syn_birds"):
        generate("syn_nope", "train", 5, 0)
    with pytest.raises(ValueError):
        generate("syn_color", "train", 0, 0)


def test_sizes_48_64():
    for skill in SKILLS:
        for size in (48, 64):
            assert generate(skill, "train", 2, 0, image_size=size)[0]["image"].size == (size, size)


# ------------------------------------------------------------------ skill specifics
@pytest.mark.parametrize("shuffle", [False, True])
def test_birds_options(shuffle):
    records = generate("syn_birds", "train", 200, seed=0, shuffle_options=shuffle)
    letters = Counter()
    for rec in records:
        options = json.loads(rec["options"])
        assert len(options) == 4 and len(set(options)) == 4
        assert set(options) <= set(synthetic.BIRD_NAMES)
        assert rec["answer"] in "ABCD" and len(rec["answer"]) == 1
        assert options["ABCD".index(rec["answer"])] == rec["label"]
        for letter, name in zip("ABCD", options):
            assert f"\n{letter}. {name}\n" in rec["question"]
        letters[rec["answer"]] += 1
    assert set(letters) == set("ABCD")
    assert min(letters.values()) >= 30  # expected 50 each
    if shuffle:  # the study's format: six species, seeded distractors
        assert len({r["label"] for r in records}) == 6
        assert len({r["options"] for r in records}) > 20
    else:  # fixed order over the first four species: the letter names the species
        assert {r["options"] for r in records} == {json.dumps(list(synthetic.BIRD_NAMES[:4]))}


def test_count_answers():
    for rec in generate("syn_count", "train", 200, seed=0):
        n, label = rec["count"], rec["label"]
        assert 1 <= n <= 4
        assert label in ("squares", "circles")
        assert rec["question"] == f"How many {label} are in this image?"
        verb = "is" if n == 1 else "are"
        assert rec["answer"] == f"There {verb} {n} {label} in this image."
    assert {r["count"] for r in generate("syn_count", "train", 200, seed=0)} == {1, 2, 3, 4}


def test_clock_answers():
    records = generate("syn_clock", "train", 200, seed=0)
    for rec in records:
        assert 1 <= rec["hour"] <= 12
        assert rec["minute"] in (0, 30)
        assert rec["answer"] == f"{rec['hour']:02d}:{rec['minute']:02d}"
        assert re.fullmatch(r"\d\d:\d\d", rec["answer"])
    assert {r["minute"] for r in records} == {0, 30}


def test_words_answers():
    for rec in generate("syn_words", "train", N, seed=0):
        assert rec["answers"] == [rec["answer"]] * 10
        assert rec["answer"] in synthetic.WORDS


def test_texture_yes_no_balanced():
    answers = Counter(r["answer"] for r in generate("syn_texture", "train", 200, seed=0))
    assert set(answers) == {"yes", "no"} and min(answers.values()) >= 70


# ------------------------------------------------------------------ contract
def test_contract_missing_column(tmp_path):
    rec = _record()
    del rec["answer"]
    with pytest.raises(ValueError, match="answer"):
        write_split([rec], tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="question"):
        write_split([_record(question="")], tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_contract_duplicate_id(tmp_path):
    with pytest.raises(ValueError, match="dup7"):
        write_split([_record(0, id="dup7"), _record(1, id="dup7")], tmp_path / "x.parquet")


def test_contract_bad_image_names_record(tmp_path):
    with pytest.raises(ValueError, match="r3.*image"):
        write_split([_record(3, image="not an image")], tmp_path / "x.parquet")


def test_contract_failed_write_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "sub" / "x.parquet"

    def boom(self, path, *a, **k):
        with open(path, "wb") as f:  # a partial file exists when the failure hits
            f.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(datasets.Dataset, "to_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        write_split([_record(0), _record(1)], out)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_contract_failed_overwrite_keeps_old_file(tmp_path, monkeypatch):
    out = write_split([_record(0)], tmp_path / "x.parquet")
    before = _sha(out)
    monkeypatch.setattr(datasets.Dataset, "to_parquet", lambda *a, **k: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(OSError):
        write_split([_record(1)], out)
    assert _sha(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.parquet"]


def test_contract_features_and_bytes(tmp_path):
    png = Image.new("RGB", (4, 4), (1, 2, 3))
    import io

    buf = io.BytesIO()
    png.save(buf, format="PNG")
    recs = [_record(0, image=buf.getvalue(), score=[1.0]), _record(1, score=[2.0])]
    out = write_split(recs, tmp_path / "f.parquet", features={"score": datasets.Sequence(datasets.Value("float32"))})
    ds = read_split(out)
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.features["id"] == datasets.Value("string")
    assert ds[0]["image"].getpixel((0, 0)) == (1, 2, 3)
    assert ds[1]["score"] == [2.0]


def test_validate_split_missing_columns(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["a"], "question": ["q"]}), path)
    with pytest.raises(ValueError, match=r"bad\.parquet.*image.*answer.*task"):
        validate_split(path)
    with pytest.raises(ValueError):
        read_split(path)


def test_contract_module_constants():
    assert contract.REQUIRED_COLUMNS == ("id", "image", "question", "answer", "task")


def test_base_only_data_wordings_and_language_prior():
    from lmmcl.data.synthetic import QUESTION_VARIANTS  # the held-out skills' wordings (their SkillSpec.variants)

    # held-out skills: the train split (the base's) asks every wording, the test split the first only
    for skill, wordings in QUESTION_VARIANTS.items():
        train = generate(skill, "train", 200, seed=0)
        assert {r["question"] for r in train} == set(wordings)
        assert {r["question"] for r in generate(skill, "test", 50, seed=0)} == {wordings[0]}
        # the pictures do not depend on the wording: same images as without variants
        assert train[0]["answer"] == generate(skill, "train", 1, seed=0)[0]["answer"]
    # the language prior: each target's own question + a text hint, blank image, the target's answer format
    prior = generate("syn_prior", "train", 100, seed=0)
    assert {r["label"] for r in prior} == {"syn_birds", "syn_count", "syn_texture", "syn_words", "syn_clock"}
    for r in prior:
        question, hint = r["question"].rsplit("\nHint: ", 1)
        assert len(set(r["image"].getdata())) == 1  # one grey: nothing to read from the picture
        if r["label"] == "syn_count":
            assert question.startswith("How many") and f" {hint} " in r["answer"]
        if r["label"] == "syn_clock":
            h, m = hint.split()
            assert r["answer"] == f"{int(h):02d}:{int(m):02d}"
        if r["label"] == "syn_birds":
            options = question.split("\n")[1:5]
            assert f"{r['answer']}. {hint}" in options


# ------------------------------------------------------------------ one home for skills
# Every procedural skill's first 12 records of each split (seed 0, 32 px): pixels and fields, and
# the parquet bytes write_skill makes of them, as they were before the skills moved to
# lmmcl.data.skills (data/draw.py, data/spec.py split out of synthetic.py). The default's numbers
# (benchmarks/reference/tiny_default_scores.csv) depend on these bytes.
RECORD_HASHES = {
    "syn_birds/train": "b1d0badb31d89bde", "syn_birds/test": "f93c68a9989532a8",
    "syn_count/train": "02361d64cdabbea9", "syn_count/test": "7e5033416067bf2e",
    "syn_texture/train": "d9f5e40f09e69466", "syn_texture/test": "8e8754e1e4d5fe66",
    "syn_words/train": "63cb79e56bdaa8fb", "syn_words/test": "ea5748a8a2820dde",
    "syn_clock/train": "32e0b2d893cc04fd", "syn_clock/test": "830818b810564004",
    "syn_color/train": "79cb6a59b6bc0b2e", "syn_color/test": "a0a63bf8de9bb631",
    "syn_shape/train": "0139174e7e823641", "syn_shape/test": "948f53d12afc13e1",
    "syn_position/train": "21e40318776fd223", "syn_position/test": "4aacedfd3f52446c",
    "syn_prior/train": "f20523cd06a195da",
    "syn_broad_bigger/train": "7abab8e9b4d8ef76", "syn_broad_circle_colour/train": "6dd3e3f14b102786",
    "syn_broad_order/train": "404bea01f4279d87", "syn_broad_odd/train": "5462c6e9297f42f3",
    "syn_broad_same/train": "4c619bc6e0bc6532", "syn_broad_fill/train": "c1a4eee6d255bc88",
    "syn_broad_background/train": "f044e0a86ae5c724", "syn_broad_line/train": "1f72dd17794a7bdf",
    "syn_broad_add/train": "95411cda51cc1ec6", "syn_broad_larger/train": "95f7a668245f49d9",
    "syn_broad_spell/train": "07895eb49ea3d369", "syn_broad_next_letter/train": "4d7f644f7c771645",
    "syn_broad_opposite/train": "e69aa0a1158fd36c", "syn_broad_repeat/train": "dbbc0393b917d24e",
    "syn_broad_sort/train": "b587f43e7de8b67d", "syn_broad_last_word/train": "4d083de3a10418ca",
    "syn_vis_fineness/train": "e2db6b289b506f5d", "syn_vis_stripes/train": "841655f606c98d34",
    "syn_vis_letter/train": "8d091e234392fdef", "syn_vis_hand/train": "f67385cee770a19e",
}
PARQUET_HASHES = {  # write_skill(skill, split, 12, 0): the files the workflow writes (same lock)
    "syn_birds/test": "1e1d803119fb11df", "syn_count/train": "5862d77c2f7c1063",
    "syn_words/test": "ade2ac51df00b196", "syn_clock/train": "b7364ca6adc973ba",
    "syn_color/train": "aec92ddc1a85498e", "syn_prior/train": "9458d20393f95541",
    "syn_broad_add/train": "9d7f61ff74399f52", "syn_vis_hand/train": "d97c2bc004286408",
}


def test_every_procedural_skill_keeps_its_bytes(tmp_path):
    procedural = {f"{n}/{s}" for n, spec in SKILLS.items() if spec.make for s in spec.splits}
    assert procedural == set(RECORD_HASHES)
    for key, expected in RECORD_HASHES.items():
        name, split = key.split("/")
        h = hashlib.sha256()
        for rec in generate(name, split, 12, 0):
            h.update(rec["image"].tobytes())
            h.update(json.dumps({k: v for k, v in rec.items() if k != "image"}, sort_keys=True).encode())
        assert h.hexdigest()[:16] == expected, key
    for key, expected in PARQUET_HASHES.items():
        name, split = key.split("/")
        assert _sha(write_skill(name, split, 12, 0, tmp_path / f"{name}_{split}.parquet"))[:16] == expected, key


def _module_imports(path) -> set[str]:
    """The lmmcl.data modules a module of lmmcl.data imports at module level (not inside functions)."""
    import ast

    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            mod = (node.module or "").split(".")[0]
            names |= {mod} if mod else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lmmcl.data."):
            names.add(node.module.split(".")[2])
    return names


def test_data_modules_import_without_a_circle():
    """The three kinds of skills register one way (lmmcl.data.skills imports the modules that define
    them; they import only spec/draw and the study's word lists), so no module imports in a circle."""
    from pathlib import Path

    import lmmcl.data

    folder = Path(lmmcl.data.__file__).parent
    graph = {p.stem: _module_imports(p) & {q.stem for q in folder.glob("*.py")} for p in folder.glob("*.py")}
    assert graph["skills"] >= {"synthetic", "broad_skills", "vision_skills", "spec"}
    assert graph["spec"] == set() and graph["draw"] == set()
    seen, done = set(), set()

    def visit(m, path):
        assert m not in seen or m in done, f"import circle: {' -> '.join(path + [m])}"
        if m in done:
            return
        seen.add(m)
        for n in graph.get(m, ()):
            visit(n, path + [m])
        done.add(m)

    for m in graph:
        visit(m, [])
    # each kind of skill is in the one registry, under its kind
    from lmmcl.data import broad_skills, synthetic, vision_skills

    assert {SKILLS[n].kind for n in synthetic.STUDY_SKILLS} == {"study"}
    assert {SKILLS[n].kind for n in (*broad_skills.BROAD_SKILLS, *vision_skills.VISION_SKILLS)} == {"research"}
    # names kept where they were for existing callers
    assert synthetic.write_skill is write_skill and synthetic.SKILLS is SKILLS

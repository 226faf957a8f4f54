"""Real-dataset converters on miniature fixtures in the real formats (offline, fast)."""
import json
import os
import random

import pytest

from fixtures.source_formats import FEATURES, jpeg, corrupt_jpeg, make_cub_tarball, textvqa_row, write_hub_split
from lmmcl.data.contract import read_split
from lmmcl import registry
from lmmcl.data.sources import convert, cub200
from lmmcl.data.sources.textvqa import majority_answer


def _report(d):
    return json.loads((d / "report.json").read_text())


# --------------------------------------------------------------------------- CUB-200
@pytest.fixture(scope="module")
def cub_tar(tmp_path_factory):
    return make_cub_tarball(tmp_path_factory.mktemp("cub") / "CUB_200_2011.tgz", corrupt=(3,), missing=(6,))


def _md5(path):
    import hashlib
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cub200_official_split_seeded_mc(cub_tar, tmp_path):
    out = tmp_path / "data" / "cub200"
    rep = convert("cub200", out, tarball=str(cub_tar), seed=7, download_dir=str(tmp_path / "dl"), md5=_md5(cub_tar))
    assert rep.source["md5"] == _md5(cub_tar) and rep.source["md5_verified"] is True
    train, test = read_split(out / "train.parquet"), read_split(out / "test.parquet")
    # 30 classes x 2 images: first of each class is train; image 3 is corrupt (train), 6 missing (test)
    assert (len(train), len(test)) == (29, 29)
    r = _report(out)
    assert r["counts"] == {"train": {"seen": 30, "kept": 29, "skipped": 1},
                           "test": {"seen": 30, "kept": 29, "skipped": 1}}
    reasons = {s["id"]: s["reason"] for s in r["skipped"]}
    assert reasons["cub200_00003"].startswith("corrupt image")
    assert reasons["cub200_00006"].startswith("image file unreadable")
    assert len(r["source"]["sha256"]) == 64 and r["seed"] == 7
    ex = train[0]
    lines = ex["question"].split("\n")
    assert lines[0] in cub200.TEMPLATES
    assert lines[1] == "Answer with the option's letter from the given choices directly."
    assert len(lines) == 2 + 26 and [ln[0] for ln in lines[2:]] == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert ex["answer"] in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" and len(ex["answer"]) == 1
    correct = lines[2 + "ABCDEFGHIJKLMNOPQRSTUVWXYZ".index(ex["answer"])]
    assert correct == f"{ex['answer']}. {ex['class_name']}" == f"{ex['answer']}. Class 001 Bird"
    assert len(set(ex["options"])) == 26
    # answers spread over letters (uniform correct position), templates vary
    assert len({e["answer"] for e in train}) > 10 and len({e["question"].split("\n")[0] for e in train}) > 3


def test_cub200_mc_is_seeded_and_independent_of_limit():
    classes = {c: f"Bird {c}" for c in range(1, 201)}
    a = cub200.make_question(42, 5, classes, seed=0)
    assert a == cub200.make_question(42, 5, classes, seed=0)
    assert a != cub200.make_question(42, 5, classes, seed=1)
    assert "Bird 5" in a["options"] and a["options"][ord(a["answer"]) - 65] == "Bird 5"
    letters = [cub200.make_question(i, 5, classes, seed=0)["answer"] for i in range(400)]
    assert len(set(letters)) == 26
    with pytest.raises(ValueError, match="needs >= 26 classes"):
        cub200.make_question(1, 1, {1: "a", 2: "b"}, seed=0)


def test_cub200_clean_class_name():
    assert cub200.clean_class_name("001.Black_footed_Albatross") == "Black footed Albatross"
    assert cub200.clean_class_name("200.Common_Yellowthroat") == "Common Yellowthroat"


def test_cub200_deterministic_and_limit(cub_tar, tmp_path):
    a, b, c = (tmp_path / x for x in "abc")
    convert("cub200", a, tarball=str(cub_tar), seed=3, download_dir=str(tmp_path / "dl"), verify_md5=False)
    convert("cub200", b, tarball=str(cub_tar), seed=3, download_dir=str(tmp_path / "dl"), verify_md5="false")
    assert (a / "train.parquet").read_bytes() == (b / "train.parquet").read_bytes()
    assert (a / "report.json").read_bytes() == (b / "report.json").read_bytes()
    convert("cub200", c, tarball=str(cub_tar), seed=3, limit=4, download_dir=str(tmp_path / "dl"), verify_md5=False)
    full, small = read_split(a / "train.parquet"), read_split(c / "train.parquet")
    assert len(small) == 4 and small["question"] == full["question"][:4]


def test_cub200_truncated_tarball_writes_nothing(tmp_path):
    bad = make_cub_tarball(tmp_path / "CUB_200_2011.tgz", truncate=True)
    out = tmp_path / "data" / "cub200"
    with pytest.raises(ValueError, match="truncated or corrupt"):
        convert("cub200", out, tarball=str(bad), download_dir=str(tmp_path / "dl"), verify_md5=False)
    assert not out.exists() or not any(out.iterdir())
    assert not (tmp_path / "dl" / "extracted").exists()


def test_cub200_missing_metadata_file(tmp_path):
    import io
    import tarfile
    tar = tmp_path / "x.tgz"
    with tarfile.open(tar, "w:gz") as tf:
        data = b"1 001.A/a.jpg\n"
        info = tarfile.TarInfo("CUB_200_2011/images.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match="classes.txt missing"):
        convert("cub200", tmp_path / "out", tarball=str(tar), download_dir=str(tmp_path / "dl"), md5=_md5(tar))
    assert not (tmp_path / "out" / "train.parquet").exists()


# --------------------------------------------------------------------------- hub datasets
def test_pathvqa_skips_empty_answer_and_corrupt_image(tmp_path):
    src = tmp_path / "src"
    rows = [{"image": jpeg(i), "question": f"is there tissue {i}?", "answer": "yes" if i % 2 else "no"} for i in range(5)]
    rows[1]["answer"] = "  "
    rows[2]["image"] = corrupt_jpeg()
    for split in ("train", "validation", "test"):
        write_hub_split(src, split, rows, "pathvqa")
    out = tmp_path / "pathvqa"
    convert("pathvqa", out, path=str(src), cache_dir=str(tmp_path / "cache"))
    ds = read_split(out / "train.parquet")
    assert ds["id"] == ["pathvqa_00000", "pathvqa_00003", "pathvqa_00004"]
    assert ds["answer"] == ["no", "yes", "no"] and ds["task"][0] == "pathvqa"
    r = _report(out)
    assert r["counts"]["test"] == {"seen": 5, "kept": 3, "skipped": 2}
    assert r["skipped_by_reason"] == {"corrupt image": 3, "empty answer": 3}
    assert set(r["source"]["files"]) == {f"data/{s}-00000-of-00001.parquet" for s in ("train", "validation", "test")}


def test_textvqa_keeps_all_answers_and_majority_target(tmp_path):
    src = tmp_path / "src"
    ans = [["a", "b", "b", "c", "b", "a", "a", "b", "d", "e"],   # b wins (4 vs 3)
           ["x", "y", "y", "x", "z", "z", "q", "r", "s", "t"],   # tie x/y/z -> first seen: x
           ["", "", "", "", "", "", "", "", "", ""]]            # nothing -> skipped
    rows = [textvqa_row(i, a) for i, a in enumerate(ans)]
    for split in ("train", "validation"):
        write_hub_split(src, split, rows, "textvqa")
    out = tmp_path / "textvqa"
    convert("textvqa", out, path=str(src), cache_dir=str(tmp_path / "cache"))
    ds = read_split(out / "train.parquet")
    assert ds["answer"] == ["b", "x"]
    assert ds["answers"][0] == ans[0] and len(ds["answers"][1]) == 10
    assert ds["id"] == ["textvqa_1000", "textvqa_1001"]
    assert _report(out)["skipped"][0]["reason"] == "empty answers"
    assert majority_answer(["no", "yes", "yes", "no"]) == "no"


def test_countbench_and_clock_eval_sets(tmp_path):
    src = tmp_path / "cb"
    write_hub_split(src, "test", [{"image": jpeg(i), "text": "t", "question": "How many cats?", "number": n}
                                  for i, n in enumerate([3, 7, -1])], "countbench")
    convert("countbench", tmp_path / "countbench", path=str(src), cache_dir=str(tmp_path / "cache"))
    ds = read_split(tmp_path / "countbench" / "test.parquet")
    assert ds["answer"] == ["3", "7"] and ds["count"] == [3, 7]

    src = tmp_path / "coco"
    write_hub_split(src, "train", [{"image": jpeg(i), "question": "What time?\n<image>", "answer": a}
                                   for i, a in enumerate(["3:05", "12:30", "25:00", "noon"])], "clock")
    convert("cococlock", tmp_path / "cococlock", path=str(src), cache_dir=str(tmp_path / "cache"))
    ds = read_split(tmp_path / "cococlock" / "test.parquet")
    assert ds["answer"] == ["03:05", "12:30"] and ds["hour"] == [3, 12] and ds["minute"] == [5, 30]
    assert ds["question"][0] == "What time?"
    reasons = [s["reason"] for s in _report(tmp_path / "cococlock")["skipped"]]
    assert reasons == ["time out of range: 25:0 in '25:00'", "unparseable time: 'noon'"]


def test_clock_answers_parsed_anywhere_in_the_text_like_the_study(tmp_path):
    """The hub clock sets' `answer` is text; the study's parse_time finds the time anywhere."""
    answers = ["The time is 3:45", "03:45:10", "It shows 10:07 p.m.", "3 45", "25:61, or rather 4:20",
               "half past three", "12:5", "  ", "99 99", "at 7:00."]
    src = tmp_path / "clocks"
    write_hub_split(src, "train", [{"image": jpeg(i), "question": "What time is it?", "answer": a}
                                   for i, a in enumerate(answers)], "clock")
    out = tmp_path / "openimgclock"
    convert("openimgclock", out, path=str(src), cache_dir=str(tmp_path / "cache"))
    ds = read_split(out / "test.parquet")
    assert ds["answer"] == ["03:45", "03:45", "10:07", "03:45", "04:20", "12:05", "07:00"]
    assert ds["hour"] == [3, 3, 10, 3, 4, 12, 7] and ds["minute"] == [45, 45, 7, 45, 20, 5, 0]
    r = _report(out)
    assert r["counts"]["test"] == {"seen": 10, "kept": 7, "skipped": 3}
    assert [s["reason"] for s in r["skipped"]] == [
        "unparseable time: 'half past three'", "unparseable time: no hour/minute columns and no answer",
        "time out of range: 99:99 in '99 99'"]

    from lmmcl.data.sources.clocks import time_from_text
    assert time_from_text("The time is 3:45.") == (3, 45)
    assert time_from_text("x" * 200 + " 1:02") == (1, 2)
    with pytest.raises(Exception, match=r"unparseable time: 'yyyy.*\.\.\.'$"):
        time_from_text("y" * 200)                     # the reason shows the start of the text
    with pytest.raises(Exception, match="unparseable time"):
        time_from_text("9" * 5000 + " " + "9" * 5000)  # no int() of huge digit runs


def test_clock_split_without_any_readable_time_fails_clearly(tmp_path):
    src = tmp_path / "clocks"
    write_hub_split(src, "train", [{"image": jpeg(i), "question": "q", "answer": a}
                                   for i, a in enumerate(["noon", "midnight", "late"])], "clock")
    out = tmp_path / "cococlock"
    with pytest.raises(ValueError, match=r"cococlock: split 'test' has no usable record \(3 row\(s\) read, "
                                         r"skipped by reason: \{'unparseable time': 3\}; e\.g\. "
                                         r"cococlock_00000: unparseable time: 'noon'.*nothing was written"):
        convert("cococlock", out, path=str(src), cache_dir=str(tmp_path / "cache"))
    assert not out.exists() or not any(out.iterdir())
    out = tmp_path / "timeclock"
    with pytest.raises(ValueError, match=r"timeclock: hub split 'train' of .* has no usable row .*'midnight'"):
        convert("timeclock", out, path=str(src), cache_dir=str(tmp_path / "cache"))
    assert not out.exists() or not any(out.iterdir())


def test_timeclock_train_test_partition_is_seeded_and_disjoint(tmp_path):
    src = tmp_path / "time"
    rows = [{"image": jpeg(i), "hour": 1 + i % 12, "minute": (7 * i) % 60} for i in range(20)]
    rows.append({"image": jpeg(0), "hour": 1, "minute": 0})  # same image twice -> dropped
    write_hub_split(src, "train", rows, "clock_hm")
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        convert("timeclock", d, path=str(src), cache_dir=str(tmp_path / "cache"), test_size=5, seed=1)
    train, test = read_split(a / "train.parquet"), read_split(a / "test.parquet")
    assert (len(train), len(test)) == (15, 5)
    assert not set(train["id"]) & set(test["id"])
    assert (a / "test.parquet").read_bytes() == (b / "test.parquet").read_bytes()
    assert all(len(x) == 5 and x[2] == ":" for x in train["answer"])
    r = _report(a)
    assert r["partition"]["test_size"] == 5 and r["skipped_by_reason"] == {"duplicate image": 1}
    convert("timeclock", tmp_path / "c", path=str(src), cache_dir=str(tmp_path / "cache"), test_size=5, seed=2)
    assert set(read_split(tmp_path / "c" / "test.parquet")["id"]) != set(test["id"])


def test_timeclock_train_from_its_about_time_csv(tmp_path):
    src = tmp_path / "time"
    write_hub_split(src, "train", [{"image": jpeg(i), "hour": 2, "minute": i} for i in range(3)], "clock_hm")
    csvdir = tmp_path / "iat"
    (csvdir / "imgs").mkdir(parents=True)
    lines = ["img_id,file_name,hour,minute"]
    for i in range(4):
        (csvdir / "imgs" / f"{i}.jpg").write_bytes(jpeg(100 + i) if i != 2 else corrupt_jpeg())
        lines.append(f"{i},imgs/{i}.jpg,{10 + i},{5 * i}")
    (csvdir / "train.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "timeclock"
    convert("timeclock", out, path=str(src), cache_dir=str(tmp_path / "cache"), train_csv=str(csvdir / "train.csv"))
    train, test = read_split(out / "train.parquet"), read_split(out / "test.parquet")
    assert train["answer"] == ["10:00", "11:05", "13:15"] and len(test) == 3


def test_registry_and_unknown_dataset():
    reg = registry.datasets()
    for name in ("cub200", "pixmocount", "pathvqa", "textvqa", "timeclock"):
        assert "train" in reg[name]["splits"]
    for name in ("cococlock", "openimgclock", "countbench"):
        assert reg[name]["splits"] == ["test"]
    with pytest.raises(ValueError, match="unknown dataset 'cub' for conversion; allowed: \\['cococlock'"):
        convert("cub", "x")


def test_cli_convert_with_limit(tmp_path, capsys):
    from lmmcl.cli import main

    src = tmp_path / "src"
    rows = [{"image": jpeg(i), "question": "q?", "answer": "yes"} for i in range(6)]
    for split in ("train", "validation", "test"):
        write_hub_split(src, split, rows, "pathvqa")
    opts = json.dumps({"path": str(src), "cache_dir": str(tmp_path / "cache")})
    main(["convert", "pathvqa", "--out-dir", str(tmp_path / "pv"), "--limit", "2", "--options", opts])
    assert len(read_split(tmp_path / "pv" / "train.parquet")) == 2
    assert "pathvqa: train: 2 kept, 0 skipped" in capsys.readouterr().out


def test_snakemake_rule_converts_with_limit_and_reruns_on_option_change(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    rows = [{"image": jpeg(i), "question": "q?", "answer": "no"} for i in range(5)]
    for split in ("train", "validation", "test"):
        write_hub_split(src, split, rows, "pathvqa")
    data = tmp_path / "data"
    snake = [sys.executable, "-m", "snakemake", "--nolock", "--cores", "1", str(data / "pathvqa" / "train.parquet")]

    def cfg(limit):
        return ["--config", f"data={{root: {data}, limit: {limit}, sources: {{pathvqa: {{path: {src}, "
                            f"cache_dir: {tmp_path / 'cache'}}}}}}}"]

    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(snake + cfg(2), cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(read_split(data / "pathvqa" / "train.parquet")) == 2
    assert _report(data / "pathvqa")["limit"] == 2
    dry = subprocess.run(snake + ["-n"] + cfg(3), cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert "convert_pathvqa" in dry.stdout and "Params have changed" in dry.stdout, dry.stdout[-1500:]


def test_cub200_download_from_configurable_url(tmp_path):
    from fixtures.source_formats import FlickrServer

    tar = make_cub_tarball(tmp_path / "src.tgz", n_classes=26, per_class=2)
    with FlickrServer() as srv:  # a loopback file server
        srv.files["/files/CUB_200_2011.tgz"] = tar.read_bytes()
        old = {k: os.environ.pop(k) for k in ("http_proxy", "HTTP_PROXY") if k in os.environ}
        try:
            # the official md5 by default: a download that differs is not kept
            with pytest.raises(ValueError, match=f"has md5 {_md5(tar)}, expected 97eceeb196236b17998738112f37df78; "
                                                 "nothing was kept"):
                convert("cub200", tmp_path / "data" / "cub200", url=srv.url("/files/CUB_200_2011.tgz"),
                        download_dir=str(tmp_path / "dl"), limit=3)
            assert not (tmp_path / "dl").exists() or not any((tmp_path / "dl").iterdir())
            rep = convert("cub200", tmp_path / "data" / "cub200", url=srv.url("/files/CUB_200_2011.tgz"),
                          download_dir=str(tmp_path / "dl"), limit=3, md5=_md5(tar).upper())
            with pytest.raises(Exception, match="404"):
                convert("cub200", tmp_path / "x", url=srv.url("/files/missing.tgz"), download_dir=str(tmp_path / "dl2"))
        finally:
            os.environ.update(old)
    assert (tmp_path / "dl" / "CUB_200_2011.tgz").read_bytes() == tar.read_bytes()
    assert rep.source["url"].endswith("/files/CUB_200_2011.tgz") and rep.counts["train"]["kept"] == 3
    assert not (tmp_path / "dl2").exists() or not any((tmp_path / "dl2").iterdir())  # no partial download


def test_cub200_md5_is_verified_by_default(cub_tar, tmp_path):
    from lmmcl.data.sources.cub200 import OFFICIAL_MD5
    assert OFFICIAL_MD5 == "97eceeb196236b17998738112f37df78"
    out, dl = tmp_path / "data" / "cub200", tmp_path / "dl"
    with pytest.raises(ValueError, match=rf"tarball {cub_tar} has md5 {_md5(cub_tar)}, expected {OFFICIAL_MD5} "
                                         r"\(the official CUB_200_2011.tgz\); delete it .*verify_md5: false"):
        convert("cub200", out, tarball=str(cub_tar), download_dir=str(dl))
    assert not out.exists() and not (dl / "extracted").exists()   # checked before extracting
    # a tarball downloaded earlier is checked too (the same error, nothing extracted)
    dl.mkdir()
    (dl / "CUB_200_2011.tgz").write_bytes(cub_tar.read_bytes())
    with pytest.raises(ValueError, match="has md5 .* expected 97ece"):
        convert("cub200", out, download_dir=str(dl))
    assert not (dl / "extracted").exists()
    for bad in ("abc", "g" * 32, ""):
        with pytest.raises(ValueError, match=rf"cub200: md5 '{bad}' is not 32 hex digits"):
            convert("cub200", out, tarball=str(cub_tar), md5=bad)
    rep = convert("cub200", out, download_dir=str(dl), verify_md5=False, limit=1)
    assert rep.source["md5_verified"] is False and rep.source["md5"] == _md5(cub_tar)

"""Same config + seed -> byte-identical data, bit-identical weights, identical CPU scores.

Runs benchmarks/determinism.py's `run()`: two runs in fresh processes with different
PYTHONHASHSEED values (and their own HF_HOME), plus the data of seed + 1.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def det():
    spec = importlib.util.spec_from_file_location("lmmcl_bench_determinism", ROOT / "benchmarks/determinism.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def result(det, tmp_path_factory):
    res = det.run(tmp_path_factory.mktemp("determinism"), steps=120)
    print(res["seconds"])
    return res


def test_same_seed_same_data_bytes(result):
    assert result["data_files"] == 5
    assert len(result["data_identical"]) == 5, result["data_sha256"]


def test_other_seed_other_data(result):
    assert len(result["data_differ_other_seed"]) == 5


def test_same_seed_same_weights(result):
    assert result["base_tensors"] > 50
    assert result["base_max_abs_diff"] == 0.0
    assert result["base_safetensors_identical"]


def test_same_seed_same_cpu_scores(result, det):
    assert result["base_scores_identical"] and result["base_responses_identical"]
    assert result["base_answers"] == 3 * 8
    assert result["base_distinct_answers"] >= 3  # the trained base does not answer everything alike
    assert any(v > 0 for v in result["base_scores"].values()), result["base_scores"]
    assert det.problems(result) == []


def test_comparisons_are_not_vacuous(det):
    a = {"w": __import__("torch").zeros(3)}
    b = {"w": __import__("torch").tensor([0.0, 1e-7, 0.0])}
    assert det.max_abs_diff(a, b) == pytest.approx(1e-7)
    assert det.max_abs_diff(a, {"v": a["w"]}) == float("inf")
    bad = {"data_files": 2, "data_identical": ["x"], "data_differ_other_seed": ["x", "y"],
           "base_max_abs_diff": 0.5, "base_scores_identical": False}
    assert len(det.problems(bad)) == 3

"""Scoring functions: tables of (prediction, doc) -> score, including the study's bugs fixed."""
from __future__ import annotations

import json

import pytest

from lmmcl.evaluation import scoring
from lmmcl.evaluation.scoring import SCORERS, clock, count, exact, mc_letter, vqa, yesno

BIRD_OPTIONS = json.dumps(["sparrow", "eagle", "robin", "owl"])
BIRD = {"answer": "C", "options": BIRD_OPTIONS}


@pytest.mark.parametrize(
    "pred, expected",
    [
        ("C", 1), ("c", 1), ("C.", 1), ("(C)", 1), ("[C]", 1), ("C) robin", 1), ("C. robin", 1),
        ("Answer: C", 1), ("The answer is C", 1), ("The answer is (c).", 1), ("answer: c", 1),
        ("The correct option is C", 1),
        ("I think C", 1),           # study: first standalone letter -> "i"
        ("I think it is C.", 1),
        ("robin", 1), ("Robin.", 1),  # option text -> its letter
        ("B", 0), ("B. eagle", 0), ("I think B", 0), ("eagle", 0),
        ("C or D", 0),              # ambiguous
        ("A or C", 0), ("A and C", 0), ("C or A", 0),   # "A" names option A here, not an article
        ("The answer is C, not D", 0), ("C. D is wrong", 0), ("C) robin, or maybe B", 0),
        ("Option A is wrong; the answer is C", 0), ("A is wrong, C is right", 0),
        ("Answer: C. C is the robin.", 1),   # the same letter twice is one letter
        ("A robin, so C", 1),                 # the article "A"
        ("The answer is a bird", 0),  # article, not option A
        ("I", 0), ("", 0), ("   ", 0), ("Z", 0),
    ],
)
def test_mc_letter(pred, expected):
    assert mc_letter(pred, BIRD) == expected


def test_mc_letter_without_options_and_gold_forms():
    assert mc_letter("A", {"answer": "A"}) == 1
    assert mc_letter("(B)", {"answer": "(B)"}) == 1
    assert mc_letter("E", {"answer": "E"}) == 1  # no options: any letter is valid
    assert mc_letter("D", {"answer": "C", "options": ["x", "y", "z"]}) == 0


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        ("There are 3 squares in this image.", "There are 3 squares in this image.", 1),
        ("3", "There are 3 squares in this image.", 1),
        ("three", "There are 3 squares in this image.", 1),
        ("There are three squares.", "There are 3 squares in this image.", 1),
        ("nineteen", "There are 19 squares in this image.", 1),  # study: "9teen" -> 9
        ("nineteen", "There are 9 squares in this image.", 0),
        ("seventeen", "There are 7 squares in this image.", 0),
        ("none", "There is 1 square in this image.", 0),         # study: "n1" -> 1
        ("None.", "There are 0 squares in this image.", 1),
        ("There is 1 circle in this image.", "There is 1 circle in this image.", 1),
        ("one", "There is 1 circle in this image.", 1),
        ("someone", "There is 1 circle in this image.", 0),      # whole words only
        ("4 squares", "There are 3 squares in this image.", 0),
        ("", "There are 3 squares in this image.", 0),
        ("many", "There are 3 squares in this image.", 0),
    ],
)
def test_count(pred, gold, expected):
    assert count(pred, {"answer": gold}) == expected


def test_count_prefers_count_column():
    assert count("5", {"answer": "There are 3 squares.", "count": 5}) == 1
    assert count("3", {"answer": "There are 3 squares.", "count": 5}) == 0


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        ("yes", "yes", 1), ("Yes.", "yes", 1), ("YES, it is", "yes", 1), (" no", "no", 1),
        ("No!", "no", 1), ("no", "yes", 0), ("maybe yes", "yes", 0), ("", "yes", 0),
        ("yesterday", "yes", 0),
    ],
)
def test_yesno(pred, gold, expected):
    assert yesno(pred, {"answer": gold}) == expected


@pytest.mark.parametrize(
    "pred, answers, expected",
    [
        ("cat", ["cat"] * 10, 1.0),
        ("The Cat.", ["cat"] * 10, 1.0),       # case, punctuation, article
        ("dog", ["cat"] * 10, 0.0),
        ("cat", ["cat"] * 3 + ["dog"] * 7, 0.9),  # 3 of 10 annotators: 7*1 + 3*(2/3) over 10
        ("cat", ["cat"] * 2 + ["dog"] * 8, 0.6),  # 8*(2/3) + 2*(1/3) over 10
        ("cat", ["cat"] + ["dog"] * 9, 0.3),      # 9*(1/3) + 1*0 over 10
        ("two", ["2"] * 10, 1.0),               # number words -> digits
        ("", ["cat"] * 10, 0.0),
    ],
)
def test_vqa(pred, answers, expected):
    assert vqa(pred, {"answer": answers[0], "answers": answers}) == pytest.approx(expected)


def test_vqa_falls_back_to_answer():
    assert vqa("cat", {"answer": "cat"}) == 1.0
    assert vqa("dog", {"answer": "cat"}) == 0.0
    assert vqa("cat", {"answer": "cat", "answers": json.dumps(["cat"] * 10)}) == 1.0


CLOCK_CASES = [
    # pred, (gold hour, gold minute), default score, exact_hours score
    ("3:30", (3, 30), 1, 1),
    ("03:30", (3, 30), 1, 1),
    ("3 30", (3, 30), 1, 1),
    ("The time is 3:30.", (3, 30), 1, 1),
    ("12:00", (0, 0), 1, 0),     # study: 12 != 0
    ("0:00", (12, 0), 1, 0),
    ("15:30", (3, 30), 1, 0),    # study: 15 != 3
    ("3:31", (3, 30), 1, 1),     # minute off by one is allowed
    ("3:29", (3, 30), 1, 1),
    ("3:32", (3, 30), 0, 0),
    ("3:59", (3, 0), 1, 1),      # wrap: 59 vs 0
    ("4:30", (3, 30), 0, 0),
    ("half past three", (3, 30), 0, 0),
    ("", (3, 30), 0, 0),
]


@pytest.mark.parametrize("pred, gold, default, exact_h", CLOCK_CASES)
def test_clock(pred, gold, default, exact_h):
    doc = {"answer": f"{gold[0]:02d}:{gold[1]:02d}", "hour": gold[0], "minute": gold[1]}
    assert clock(pred, doc) == default
    assert clock(pred, doc, exact_hours=True) == exact_h
    doc_answer_only = {"answer": f"{gold[0]}:{gold[1]:02d}"}
    assert clock(pred, doc_answer_only) == default


def test_clock_module_switch(monkeypatch):
    doc = {"answer": "03:30", "hour": 3, "minute": 30}
    assert clock("15:30", doc) == 1
    monkeypatch.setattr(scoring, "EXACT_HOURS", True)
    assert clock("15:30", doc) == 0
    assert clock("15:30", doc, exact_hours=False) == 1


def test_clock_parts():
    parts = scoring.clock_parts("3:45", {"answer": "03:30"})
    assert parts == {"hour": 1.0, "minute": 0.0, "both": 0.0}


@pytest.mark.parametrize(
    "pred, gold, expected",
    [("red", "red", 1), (" Red.", "red", 1), ("red\n", "red", 1), ("dark red", "red", 0),
     ("top left", "top left", 1), ("top-left", "top left", 1), ("", "red", 0), ("blue", "red", 0)],
)
def test_exact(pred, gold, expected):
    assert exact(pred, {"answer": gold}) == expected


def test_registry_and_empty_prediction():
    assert set(SCORERS) == {"mc_letter", "count", "yesno", "vqa", "clock", "clock_exact", "pathvqa", "exact"}
    docs = {
        "mc_letter": BIRD, "count": {"answer": "There are 0 squares.", "count": 0},
        "yesno": {"answer": "no"}, "vqa": {"answer": "", "answers": [""] * 10},
        "clock": {"answer": "00:00"}, "clock_exact": {"answer": "00:00"}, "exact": {"answer": ""},
        "pathvqa": {"question": "is this benign?", "answer": ""},
    }
    for name, fn in SCORERS.items():
        assert fn("", docs[name]) == 0, name
        assert fn(None, docs[name]) == 0, name
    with pytest.raises(ValueError, match="nope"):
        scoring.score("nope", "x", {})
    assert scoring.score_all("clock", "both_acc", "3:30", {"answer": "03:30"}) == {
        "both_acc": 1.0, "hour_acc": 1.0, "minute_acc": 1.0}


# ------------------------------------------------------------------- study tasks (real data)
from lmmcl.evaluation.scoring import clock_exact, is_yes_no_question, pathvqa_parts, score_all  # noqa: E402


@pytest.mark.parametrize("pred,doc,expected", [
    ("19", {"number": 19}, 1.0),                        # CountBenchQA's own column
    ("nineteen", {"count": 19}, 1.0),                   # the study read "nineteen" as 9
    ("nineteen", {"count": 9}, 0.0),
    ("seventeen dogs", {"count": 7}, 0.0),              # the study: 7
    ("None of them.", {"count": 1}, 0.0),               # the study: "n1 of them" -> 1
    ("There are 3 dogs in this image.", {"answer": "There are 3 dogs in this image."}, 1.0),
])
def test_count_real_formats(pred, doc, expected):
    assert count(pred, doc) == expected


@pytest.mark.parametrize("pred,gold,study,fixed", [
    ("12:00", (0, 0), 0.0, 1.0),
    ("3:45", (15, 45), 0.0, 1.0),
    ("03:05", (3, 6), 1.0, 1.0),
    ("2:59", (3, 0), 0.0, 0.0),     # minute within 1 (wrap) but the hour is not carried over
    ("The time is 4:30.", (4, 31), 1.0, 1.0),
])
def test_clock_study_switch(pred, gold, study, fixed):
    doc = {"hour": gold[0], "minute": gold[1]}
    assert clock_exact(pred, doc) == study
    assert clock(pred, doc) == fixed


@pytest.mark.parametrize("pred,answer,question,exact,f1,binary", [
    ("yes", "yes", "Is this benign?", 1.0, 1.0, 1.0),
    ("Yes.", "yes", "is this benign?", 1.0, 1.0, 1.0),          # the study: "Yes." != "yes"
    ("no", "yes", "Does it show necrosis?", 0.0, 0.0, 0.0),
    ("chronic inflammation", "inflammation", "What is shown?", 0.5, 2 / 3, None),
    ("inflammation", "chronic inflammation", "What is shown?", 1.0, 2 / 3, None),
    ("", "yes", "Are these cells?", 0.0, 0.0, 0.0),
])
def test_pathvqa_metrics(pred, answer, question, exact, f1, binary):
    got = pathvqa_parts(pred, {"question": question, "answer": answer})
    assert got["pathvqa_exact_match"] == pytest.approx(exact)
    assert got["pathvqa_f1"] == pytest.approx(f1)
    if binary is None:
        assert got["pathvqa_binary_accuracy"] != got["pathvqa_binary_accuracy"]  # NaN: not a yes/no question
    else:
        assert got["pathvqa_binary_accuracy"] == binary


def test_pathvqa_bleu_and_questions():
    doc = {"question": "What is present?", "answer": "the cells of the liver"}
    got = pathvqa_parts("the cells of the liver", doc)
    assert got["pathvqa_bleu1"] == got["pathvqa_bleu2"] == got["pathvqa_bleu3"] == pytest.approx(1.0)
    short = pathvqa_parts("the liver", doc)   # 2/2 unigrams right, brevity penalty exp(1 - 5/2)
    assert short["pathvqa_bleu1"] == pytest.approx(0.22313, abs=1e-4)
    assert short["pathvqa_bleu3"] == 0.0      # no trigram: 0 (no smoothing)
    assert is_yes_no_question("Were mitoses seen?") and not is_yes_no_question("How many nuclei?")
    assert set(score_all("pathvqa", "pathvqa_exact_match", "yes", {"question": "Is it?", "answer": "yes"})) == {
        "pathvqa_exact_match", "pathvqa_f1", "pathvqa_bleu1", "pathvqa_bleu2", "pathvqa_bleu3",
        "pathvqa_binary_accuracy"}


@pytest.mark.parametrize("pred,expected", [
    ("K", "K"), ("I think C", "C"), ("(B) Laysan Albatross", "B"), ("The answer is d.", "D"),
    ("Answer: C", "C"), ("Laysan Albatross", "B"), ("A", "A"), ("A bird", None), ("i", "I"), ("I am not sure", None),
    ("I or C", None), ("A, B", None), ("I think C or maybe D", None), ("B. Laysan Albatross", "B"),
    ("A Laysan Albatross", None),        # article + a name that is not the exact option text
    ("E. Vitamin C warbler", "E"),       # an option's own capital letter is not a second letter
])
def test_cub_letter_26_options(pred, expected):
    from lmmcl.evaluation.scoring import parse_letter

    options = [f"bird {i}" for i in range(26)]
    options[1] = "Laysan Albatross"
    options[4] = "Vitamin C warbler"
    assert parse_letter(pred, options) == expected


# ------------------------------------------------------------------- never raise, always in [0, 1]
def test_count_long_digit_runs_do_not_raise():
    """int() refuses strings over 4300 digits; such a run is no count (score 0), never an error."""
    assert count("9" * 5000, {"count": 3}) == 0.0
    assert count("7" * 5000 + " dogs", {"answer": "There are 7 dogs."}) == 0.0
    assert count("0" * 5000 + "3", {"count": 3}) == 1.0      # leading zeros are not digits of a count
    assert scoring.parse_count("1" * scoring.MAX_COUNT_DIGITS) == int("1" * scoring.MAX_COUNT_DIGITS)
    assert scoring.parse_count("1" * (scoring.MAX_COUNT_DIGITS + 1)) is None
    assert count("3", {"count": "9" * 5000}) == 0.0


def test_clock_gold_with_nan_columns_falls_back_to_answer():
    assert clock("3:30", {"hour": float("nan"), "minute": float("nan"), "answer": "03:30"}) == 1.0


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

# one doc per scorer in the columns our parquet contract gives it (tests/fixtures/eval_formats.py)
DOCS = {
    "mc_letter": [BIRD, {"answer": "K", "options": [f"Bird {i}" for i in range(26)]}, {"answer": "A"}],
    "count": [{"answer": "There are 3 dogs in this image.", "count": 3}, {"answer": "7", "number": 7},
              {"answer": "There is 1 cat in this image."}],
    "yesno": [{"answer": "yes"}, {"answer": "no"}],
    "vqa": [{"answer": "stop", "answers": ["stop"] * 7 + ["halt"] * 3}, {"answer": "cat"}],
    "clock": [{"answer": "03:30", "hour": 3, "minute": 30}, {"answer": "12:59"}],
    "clock_exact": [{"answer": "15:00", "hour": 15, "minute": 0}, {"answer": "00:01"}],
    "pathvqa": [{"question": "Is this benign?", "answer": "yes"},
                {"question": "What is shown?", "answer": "chronic inflammation"}],
    "exact": [{"answer": "top left"}, {"answer": ""}],
}
# arbitrary text, plus the shapes that break naive parsers: huge digit runs, many letters,
# times and numbers glued together, unicode digits
MODEL_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.text(alphabet="0123456789", min_size=4000, max_size=6000),
    st.text(alphabet="0123456789:. ", min_size=1, max_size=200),
    st.text(alphabet="ABCDIaci().:, \n", max_size=60),
    st.from_regex(r"(The answer is |Answer: )?[A-Z][.)]? ?(or|and|,)? ?[A-Z]?", fullmatch=True),
    st.builds(lambda a, b: f"{a} {b}", st.sampled_from(["There are", "none", "nineteen", "٣", "۱۲:۳۰"]),
              st.text(max_size=40)),
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _in_unit(value: float) -> bool:
    return 0.0 <= value <= 1.0


@pytest.mark.parametrize("name", sorted(SCORERS))
@PROPERTY
@given(pred=MODEL_TEXT, which=st.integers(min_value=0, max_value=2))
def test_every_scorer_never_raises_and_stays_in_unit_interval(name, pred, which):
    doc = DOCS[name][which % len(DOCS[name])]
    assert _in_unit(SCORERS[name](pred, doc))
    metric = {"pathvqa": "pathvqa_exact_match"}.get(name, "primary")
    for key, value in score_all(name, metric, pred, doc).items():
        assert value != value or _in_unit(value), key   # NaN only for "not applicable" metrics
        if value != value:
            assert key in scoring.NAN_METRICS


@pytest.mark.parametrize("name", sorted(SCORERS))
@PROPERTY
@given(pred=MODEL_TEXT, gold=MODEL_TEXT)
def test_every_scorer_takes_any_gold_text(name, pred, gold):
    """Gold text comes from converted datasets; it must not crash a scorer either."""
    doc = {**DOCS[name][0], "answer": gold}
    doc.pop("count", None), doc.pop("hour", None), doc.pop("minute", None)
    assert _in_unit(SCORERS[name](pred, doc))

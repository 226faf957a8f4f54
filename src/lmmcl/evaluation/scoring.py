"""Scoring functions: ``(prediction: str, doc: dict) -> float`` in [0, 1]. Pure Python.

Each scorer mirrors how the original study scored the benchmark its synthetic skill stands in
for (the ``utils.py`` of each task under ``lmms-eval/lmms_eval/tasks/`` in jessemelpolio/LMM_CL,
e.g. ``tasks/timeclock/utils.py``), with the study's parsing bugs fixed:

- ``mc_letter``: the study took the first standalone letter, so "I think C" scored as "i";
  an answer naming two different option letters ("A or C") is wrong here.
- ``count``: the study replaced number words by *substring*, so "nineteen" became 9 and "none" 1.
- ``clock``: the study compared hours exactly (12 != 0, 15 != 3); we compare modulo 12 unless
  ``exact_hours=True`` (the scorer ``clock_exact``, chosen by the config key
  ``evaluation.clock_exact_hours``, or the module switch ``EXACT_HOURS``) asks for the study's
  behaviour.
- ``pathvqa``: the study's metrics (the "official" PathVQA scripts): exact match = distinct
  reference words found in the answer / answer words, token F1, BLEU-1/2/3 and binary accuracy
  on yes/no questions (NaN otherwise, excluded from the mean). The binary comparison ignores
  case, punctuation and surrounding spaces ("Yes." == "yes"; the study compared full strings).

``SCORERS`` maps the registry's ``scorer`` names to these functions. An empty prediction
always scores 0, and no prediction text makes a scorer raise (tests/test_scoring.py feeds them
arbitrary text with hypothesis).

Options (a declared skill's ``benchmark.scorer_options``, docs/own_skill.md; :data:`SCORER_OPTIONS`):
``mc_letter: {letters: "ABCD"}`` (the option letters an answer may name), ``count: {tolerance: 1}``
(a count within ±1 is right), ``clock: {exact_hours: true}`` (the study's exact hours).
:func:`gold_problem` says why a gold answer cannot be judged by a scorer (a count scorer over
"blue"), which a declared skill's conversion refuses.
"""
from __future__ import annotations

import json
import re
import string
from typing import Callable

__all__ = [
    "SCORERS", "EXTRA_METRICS", "EXACT_HOURS", "score", "score_all",
    "SCORER_OPTIONS", "DEFAULT_METRICS", "check_options", "gold_problem",
    "mc_letter", "count", "yesno", "vqa", "clock", "clock_parts", "exact",
    "parse_letter", "parse_count", "parse_time", "normalize_answer",
    "clock_exact", "pathvqa_parts", "pathvqa_exact_match", "is_yes_no_question",
]

# Module-level switch for `clock`: True reproduces the study's exact hour comparison.
EXACT_HOURS = False

_PUNCT_RE = re.compile(f"[{re.escape(string.punctuation)}]")
_WS_RE = re.compile(r"\s+")
_ARTICLES = {"a", "an", "the"}


def _text(prediction) -> str:
    return "" if prediction is None else str(prediction).strip()


def _basic_norm(text: str) -> str:
    """Lowercase, punctuation -> space, collapse whitespace."""
    return _WS_RE.sub(" ", _PUNCT_RE.sub(" ", text.lower())).strip()


# ------------------------------------------------------------------------------ mc_letter
_LETTERS = string.ascii_uppercase


def _options(doc: dict) -> list[str]:
    opts = doc.get("options")
    if opts is None:
        return []
    if isinstance(opts, str):
        try:
            opts = json.loads(opts)
        except json.JSONDecodeError:
            return []
    if isinstance(opts, dict):  # {"A": "robin", ...}
        return [str(opts[k]) for k in sorted(opts)]
    return [str(o) for o in opts]


_LONE_RE = re.compile(r"^[\(\[]?\s*([A-Za-z])\s*[\)\]]?\s*[.:)]?$")
_KEYWORD_RE = re.compile(
    r"\b(?i:answer|option|choice)\b(?:\s+is)?\s*[:\-]?\s*"
    r"(?:[\(\[]?([A-Z])(?![A-Za-z])|[\(\[]([a-z])[\)\]]|([a-z])(?=\s*[.)]?\s*$))"
)
_LEADING_RE = re.compile(r"^[\(\[]?([A-Z])(?:[\)\]][.:]?|[.:])(?:\s|$)")
_STANDALONE_RE = re.compile(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])")
# "A"/"I" followed by one of these words still names an option ("A or C", "A is right")
_LINK_WORDS = {"or", "and", "nor", "is", "was", "vs", "versus", "but", "not"}
_NEXT_WORD_RE = re.compile(r"\s+([A-Za-z]{2,})")


def _mask_options(text: str, options: list[str]) -> str:
    """``text`` with every option's text (2+ characters) replaced by a plain word, so that an
    option's own capital letter ("Vitamin C") is not read as an option letter, while "A" before
    an option's name stays an article."""
    names = sorted({o.strip() for o in options if len(o.strip()) >= 2}, key=len, reverse=True)
    if not names:
        return text
    rx = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)", re.IGNORECASE)
    return rx.sub(" optiontext ", text)


def _named_letters(text: str, options: list[str], valid: set[str]) -> list[str]:
    """Every distinct option letter the answer names, in order of first mention: after a
    keyword ("Answer: C", "option (c)"), a leading "C) ..." / "C. ...", and every standalone
    capital letter, except "I" and "A" used as pronoun / article ("I think", "A bird")."""
    found: list[str] = []

    def add(letter: str | None):
        if letter and letter.upper() in valid and letter.upper() not in found:
            found.append(letter.upper())

    for m in _KEYWORD_RE.finditer(text):
        add(m.group(1) or m.group(2) or m.group(3))
    m = _LEADING_RE.match(text)
    if m:
        add(m.group(1))
    masked = _mask_options(text, options)
    for m in _STANDALONE_RE.finditer(masked):
        letter = m.group(1)
        if letter in ("I", "A"):
            nxt = _NEXT_WORD_RE.match(masked, m.end())
            if nxt and nxt.group(1).lower() not in _LINK_WORDS:
                continue  # pronoun / article ("I think C", "A bird")
        add(letter)
    return found


def parse_letter(prediction: str, options: list[str] | None = None, letters: str | None = None) -> str | None:
    """Return the chosen option letter (upper case) or None.

    A lone letter ("c", "C.", "(C)") or the exact text of an option ("robin" -> its letter)
    is that letter. Otherwise every option letter the answer names counts: after a keyword
    ("Answer: C", "The answer is (C)"), a leading "C) robin", any standalone capital letter
    except the pronoun "I" and the article "A" ("I think C" -> C). Exactly one distinct letter
    -> it; an answer naming two different letters ("A or C", "C, not D") -> None (wrong).
    ``letters`` (the scorer option) limits the letters an answer may name.
    """
    text = _text(prediction)
    if not text:
        return None
    options = options or []
    valid = set(_LETTERS[: len(options)]) if options else set(_LETTERS)
    if letters:
        valid &= set(letters)

    m = _LONE_RE.match(text)
    if m:
        return m.group(1).upper() if m.group(1).upper() in valid else None
    if options:
        norm = _basic_norm(text)
        for i, opt in enumerate(options[: len(_LETTERS)]):
            if norm and norm == _basic_norm(opt):
                return _LETTERS[i]
    found = _named_letters(text, options, valid)
    return found[0] if len(found) == 1 else None


def mc_letter(prediction: str, doc: dict, letters: str | None = None) -> float:
    options = _options(doc)
    pred = parse_letter(prediction, options, letters)
    gold = parse_letter(str(doc.get("answer", "")), options, letters)
    return float(pred is not None and pred == gold)


# ---------------------------------------------------------------------------------- count
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NUMBER_WORDS["none"] = 0  # "How many ...?" -> "None."
_COUNT_RE = re.compile(r"\b(\d+|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")\b")


# A run of digits longer than this (leading zeros aside) is no count: it is read as "no number"
# (score 0) instead of being converted, since int() refuses strings over 4300 digits.
MAX_COUNT_DIGITS = 100


def parse_count(text) -> int | None:
    """First integer in the text: digits or a number word zero..twenty (or "none" = 0),
    matched as a whole word ("nineteen" -> 19, "nonetheless" -> nothing). A first number with
    more than ``MAX_COUNT_DIGITS`` significant digits -> None."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text
    m = _COUNT_RE.search(_text(text).lower())
    if not m:
        return None
    tok = m.group(1)
    if tok in _NUMBER_WORDS:
        return _NUMBER_WORDS[tok]
    digits = tok.lstrip("0") or "0"
    return int(digits) if len(digits) <= MAX_COUNT_DIGITS else None


def _gold_count(doc: dict) -> int | None:
    for key in ("count", "number"):  # `number` is CountBenchQA's own column
        if doc.get(key) is not None:
            return parse_count(doc[key])
    return parse_count(str(doc.get("answer", "")))


def count(prediction: str, doc: dict, tolerance: int = 0) -> float:
    """The first number of the answer equals the gold count (within ±``tolerance``)."""
    pred = parse_count(_text(prediction))
    gold = _gold_count(doc)
    return float(pred is not None and gold is not None and abs(pred - gold) <= tolerance)


# ---------------------------------------------------------------------------------- yesno
def _first_word(text: str) -> str | None:
    m = re.search(r"[a-z]+", text.lower())
    return m.group(0) if m else None


def yesno(prediction: str, doc: dict) -> float:
    pred = _first_word(_text(prediction))
    gold = _first_word(str(doc.get("answer", "")))
    return float(pred in ("yes", "no") and pred == gold)


# ------------------------------------------------------------------------------------ vqa
_DIGITS = {w: str(i) for w, i in _NUMBER_WORDS.items() if i <= 10 and w != "none"}


def normalize_answer(text) -> str:
    """VQA-style normalisation: lowercase, punctuation stripped (apostrophes dropped, other
    marks -> space), articles removed, number words zero..ten -> digits, whitespace collapsed."""
    t = _text(text).lower().replace("'", "").replace("\u2019", "")
    t = _PUNCT_RE.sub(" ", t)
    words = [_DIGITS.get(w, w) for w in t.split() if w not in _ARTICLES]
    return " ".join(words)


def _gold_answers(doc: dict) -> list[str]:
    answers = doc.get("answers")
    if isinstance(answers, str):
        try:
            answers = json.loads(answers)
        except json.JSONDecodeError:
            answers = [answers]
    if answers is None or len(answers) == 0:
        answers = [doc.get("answer", "")]
    return [str(a) for a in answers]


def vqa(prediction: str, doc: dict) -> float:
    """Standard VQA accuracy: for each gold answer i, min(1, matches among the others / 3),
    averaged. With a single gold answer (no ``answers`` column) it is exact match."""
    pred = normalize_answer(prediction)
    if not pred:
        return 0.0
    golds = [normalize_answer(a) for a in _gold_answers(doc)]
    if len(golds) == 1:
        return float(pred == golds[0])
    accs = []
    for i in range(len(golds)):
        others = golds[:i] + golds[i + 1:]
        accs.append(min(1.0, sum(g == pred for g in others) / 3.0))
    return sum(accs) / len(accs)


# ---------------------------------------------------------------------------------- clock
_TIME_COLON_RE = re.compile(r"(?<!\d)(\d{1,2})\s*:\s*(\d{1,2})(?!\d)")
_TIME_SPACE_RE = re.compile(r"(?<!\d)(\d{1,2})\s+(\d{2})(?!\d)")


def parse_time(text) -> tuple[int, int] | None:
    """(hour, minute) from "H:MM" / "HH:MM" (first occurrence) or "H MM"; None if absent or
    out of range (hour 0..24, minute 0..59)."""
    t = _text(text)
    for rx in (_TIME_COLON_RE, _TIME_SPACE_RE):
        for m in rx.finditer(t):
            h, mi = int(m.group(1)), int(m.group(2))
            if 0 <= h <= 24 and 0 <= mi <= 59:
                return h, mi
    return None


def _gold_time(doc: dict) -> tuple[int, int] | None:
    if doc.get("hour") is not None and doc.get("minute") is not None:
        try:
            return int(doc["hour"]), int(doc["minute"])
        except (TypeError, ValueError, OverflowError):  # e.g. NaN in a nullable column
            pass
    return parse_time(doc.get("answer", ""))


def clock_parts(prediction: str, doc: dict, exact_hours: bool | None = None) -> dict[str, float]:
    """{"hour", "minute", "both"} correctness. Hours modulo 12 unless exact_hours (default:
    the module switch EXACT_HOURS); minutes within ±1 with wrap-around (59 vs 0 is correct),
    as in the study (the hour is not carried over on the wrap, also as in the study)."""
    exact_hours = EXACT_HOURS if exact_hours is None else exact_hours
    pred, gold = parse_time(prediction), _gold_time(doc)
    if pred is None or gold is None:
        return {"hour": 0.0, "minute": 0.0, "both": 0.0}
    (ph, pm), (gh, gm) = pred, gold
    hour_ok = ph == gh if exact_hours else ph % 12 == gh % 12
    d = abs(pm - gm)
    minute_ok = d <= 1 or d == 59
    return {"hour": float(hour_ok), "minute": float(minute_ok), "both": float(hour_ok and minute_ok)}


def clock(prediction: str, doc: dict, exact_hours: bool | None = None) -> float:
    return clock_parts(prediction, doc, exact_hours)["both"]


def clock_exact(prediction: str, doc: dict) -> float:
    """The study's comparison: hours must be equal (12 != 0, 15 != 3)."""
    return clock_parts(prediction, doc, exact_hours=True)["both"]


# -------------------------------------------------------------------------------- pathvqa
_YES_NO_STARTS = {
    "is", "are", "was", "were", "am", "does", "do", "did", "can", "could", "would", "should",
    "has", "have", "had", "will", "shall", "may", "might", "must",
}


def _words(text) -> list[str]:
    """PathVQA tokenisation: lowercase, every non-letter becomes a space, split."""
    return re.sub(r"[^a-z]+", " ", _text(text).lower()).split()


def is_yes_no_question(question) -> bool:
    words = _words(question)
    return bool(words) and words[0] in _YES_NO_STARTS


def _ngrams(words: list[str], n: int) -> dict[tuple, int]:
    out: dict[tuple, int] = {}
    for i in range(len(words) - n + 1):
        g = tuple(words[i:i + n])
        out[g] = out.get(g, 0) + 1
    return out


def _bleu(cand: list[str], ref: list[str], max_n: int) -> float:
    """Sentence BLEU with uniform weights 1/max_n, brevity penalty, no smoothing (0 when any
    n-gram order has no match, as nltk's sentence_bleu)."""
    import math

    if not cand or not ref:
        return 0.0
    logs = []
    for n in range(1, max_n + 1):
        c, r = _ngrams(cand, n), _ngrams(ref, n)
        total = sum(c.values())
        match = sum(min(k, r.get(g, 0)) for g, k in c.items())
        if total == 0 or match == 0:
            return 0.0
        logs.append(math.log(match / total))
    bp = 1.0 if len(cand) > len(ref) else math.exp(1 - len(ref) / len(cand))
    return bp * math.exp(sum(logs) / max_n)


def pathvqa_parts(prediction: str, doc: dict) -> dict[str, float]:
    """The study's PathVQA metrics of one answer (each in [0, 1]; binary NaN off yes/no)."""
    cand, ref = _words(prediction), _words(doc.get("answer", ""))
    exact = len({w for w in ref if w in cand}) / len(cand) if cand else 0.0
    common = sum(min(cand.count(w), ref.count(w)) for w in set(cand))
    f1 = 0.0
    if common:
        p, r = common / len(cand), common / len(ref)
        f1 = 2 * p * r / (p + r)
    binary = float("nan")
    if is_yes_no_question(doc.get("question", "")):
        binary = float(bool(cand) and _basic_norm(_text(prediction)) == _basic_norm(str(doc.get("answer", ""))))
    return {
        "pathvqa_exact_match": exact,
        "pathvqa_f1": f1,
        "pathvqa_bleu1": _bleu(cand, ref, 1),
        "pathvqa_bleu2": _bleu(cand, ref, 2),
        "pathvqa_bleu3": _bleu(cand, ref, 3),
        "pathvqa_binary_accuracy": binary,
    }


def pathvqa_exact_match(prediction: str, doc: dict) -> float:
    return pathvqa_parts(prediction, doc)["pathvqa_exact_match"]


# ---------------------------------------------------------------------------------- exact
def exact(prediction: str, doc: dict) -> float:
    """Exact match after lowercasing, dropping punctuation and collapsing whitespace."""
    pred = _basic_norm(_text(prediction))
    return float(bool(pred) and pred == _basic_norm(str(doc.get("answer", ""))))


# ------------------------------------------------------------------------------- registry
SCORERS: dict[str, Callable[[str, dict], float]] = {
    "mc_letter": mc_letter,
    "count": count,
    "yesno": yesno,
    "vqa": vqa,
    "clock": clock,
    "clock_exact": clock_exact,
    "pathvqa": pathvqa_exact_match,
    "exact": exact,
}

# Secondary metrics some scorers report next to the primary one (name -> function).
# Metrics that may be NaN per sample ("not applicable") are averaged ignoring NaN.
EXTRA_METRICS: dict[str, dict[str, Callable[[str, dict], float]]] = {
    "clock": {
        "hour_acc": lambda p, d: clock_parts(p, d)["hour"],
        "minute_acc": lambda p, d: clock_parts(p, d)["minute"],
    },
    "clock_exact": {
        "hour_acc": lambda p, d: clock_parts(p, d, exact_hours=True)["hour"],
        "minute_acc": lambda p, d: clock_parts(p, d, exact_hours=True)["minute"],
    },
    "pathvqa": {
        name: (lambda n: lambda p, d: pathvqa_parts(p, d)[n])(name)
        for name in ("pathvqa_f1", "pathvqa_bleu1", "pathvqa_bleu2", "pathvqa_bleu3",
                     "pathvqa_binary_accuracy")
    },
}
NAN_METRICS = {"pathvqa_binary_accuracy"}


# The primary metric a scorer reports under when a declared skill names none (the names our
# synthetic benchmarks use, registry/benchmarks.yaml).
DEFAULT_METRICS = {"mc_letter": "acc", "count": "count_acc", "yesno": "yesno_acc", "vqa": "vqa_acc",
                   "clock": "both_acc", "clock_exact": "both_acc", "pathvqa": "pathvqa_exact_match",
                   "exact": "exact_match"}


def _is_letters(v) -> bool:
    return isinstance(v, str) and bool(v) and len(set(v)) == len(v) and all(c in _LETTERS for c in v)


# scorer -> {option: (check, what is allowed)}; the scorer function takes the option as a keyword
SCORER_OPTIONS: dict[str, dict[str, tuple[Callable, str]]] = {
    "mc_letter": {"letters": (_is_letters, "a string of distinct capital letters, e.g. 'ABCD'")},
    "count": {"tolerance": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                            "an integer >= 0 (a count within ± it is right)")},
    "clock": {"exact_hours": (lambda v: isinstance(v, bool), "true (12:00 != 0:00, the study's comparison) or false")},
}


def check_options(scorer: str, options: dict | None) -> dict:
    """``options`` of ``scorer`` checked (ValueError naming the option and what is allowed)."""
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; allowed: {sorted(SCORERS)}")
    allowed = SCORER_OPTIONS.get(scorer, {})
    for key, value in (options or {}).items():
        if key not in allowed:
            raise ValueError(f"scorer {scorer!r} has no option {key!r}; allowed: {sorted(allowed) or 'none'}")
        check, what = allowed[key]
        if not check(value):
            raise ValueError(f"scorer {scorer!r} option {key!r}: {value!r} is not allowed; expected {what}")
    return dict(options or {})


def options_suffix(options: dict | None) -> str:
    """How a task YAML's `process_results` function name carries a scorer's options:
    `__o<hex of their JSON>` ('' without any; evaluation/tasks/utils.py reads it back)."""
    return f"__o{json.dumps(options, sort_keys=True, separators=(',', ':')).encode().hex()}" if options else ""


def _resolve(scorer: str, options: dict | None) -> tuple[str, dict]:
    """(scorer, keyword options) with `clock: {exact_hours: true}` read as the scorer clock_exact."""
    options = dict(options or {})
    if scorer == "clock" and "exact_hours" in options:
        return ("clock_exact" if options.pop("exact_hours") else "clock"), options
    return scorer, options


def score(scorer: str, prediction: str, doc: dict, options: dict | None = None) -> float:
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; allowed: {sorted(SCORERS)}")
    scorer, kw = _resolve(scorer, options)
    return SCORERS[scorer](prediction, doc, **kw)


def score_all(scorer: str, metric: str, prediction: str, doc: dict, options: dict | None = None) -> dict[str, float]:
    """{metric: primary score, **secondary metrics of the scorer}."""
    if scorer == "pathvqa":  # one parse for all six metrics
        parts = pathvqa_parts(prediction, doc)
        return {metric: parts["pathvqa_exact_match"], **{k: v for k, v in parts.items() if k != "pathvqa_exact_match"}}
    out = {metric: score(scorer, prediction, doc, options)}
    for name, fn in EXTRA_METRICS.get(_resolve(scorer, options)[0], {}).items():
        out[name] = fn(prediction, doc)
    return out


def gold_problem(scorer: str, doc: dict, options: dict | None = None) -> str | None:
    """Why ``scorer`` cannot judge answers against this doc's gold answer, or None: a count scorer
    over an answer with no number, a clock scorer over one with no time, yesno over neither yes
    nor no, mc_letter over an answer that names no option letter; for the text scorers, an answer
    with nothing left after normalisation. A declared skill's conversion refuses such a row."""
    scorer, kw = _resolve(scorer, options)
    answer = str(doc.get("answer", ""))
    if scorer == "count":
        if _gold_count(doc) is None:
            return (f"answer {answer!r} has no number; scorer count needs one (digits, or a number word "
                    f"zero..twenty, e.g. 'There are 3 squares.' or '3')")
    elif scorer in ("clock", "clock_exact"):
        if _gold_time(doc) is None:
            return f"answer {answer!r} has no time; scorer clock needs one (H:MM or HH:MM, e.g. '03:30')"
    elif scorer == "yesno":
        if _first_word(answer) not in ("yes", "no"):
            return f"answer {answer!r} does not start with yes or no; scorer yesno needs it to"
    elif scorer == "mc_letter":
        options_ = _options(doc)
        if parse_letter(answer, options_, kw.get("letters")) is None:
            allowed = kw.get("letters") or (_LETTERS[:len(options_)] if options_ else _LETTERS)
            return (f"answer {answer!r} names no option letter ({allowed[0]}-{allowed[-1]})"
                    + (" nor the text of one of the choices" if options_ else "")
                    + "; scorer mc_letter needs one")
    elif scorer == "vqa":
        if not any(normalize_answer(a) for a in _gold_answers(doc)):
            return f"answer {answer!r} is empty once normalised (lowercase, no punctuation or articles)"
    elif scorer == "pathvqa":
        if not _words(answer):
            return f"answer {answer!r} has no word; scorer pathvqa compares words"
    elif not _basic_norm(answer):
        return f"answer {answer!r} is empty once normalised (lowercase, no punctuation)"
    return None

"""Your own skill from a config entry: any dataset as a training stage or a benchmark, no Python.

A config's ``skills.<name>`` says where the data is and in which layout, which fields are the
image, question, answer (and choices), how the test split is made and how a benchmark judges it
(docs/own_skill.md: every key, and what each bad input gets). Four layouts, each read as its own
documentation defines it:

* ``llava``: LLaVA's conversation JSON/JSONL (``id``, ``image`` relative to an image folder,
  ``conversations`` of ``{"from": "human"|"gpt", "value": ...}`` with the ``<image>`` token in the
  text; haotian-liu/LLaVA docs/Finetune_Custom_Data.md), which is also LLaMA-Factory's ``sharegpt``
  format (data/README.md of hiyouga/LLaMA-Factory);
* ``messages``: the ``messages`` + ``images`` layout of LLaMA-Factory (``sharegpt`` with OpenAI
  tags: ``role``/``content``, ``user``/``assistant``; its data/mllm_demo.json) and ms-swift
  (docs/source_en/Customization/Custom-dataset.md, "Multimodal":
  ``{"messages": [{"role": "user", "content": "<image>..."}, ...], "images": [...]}``);
* ``hf``: a Hugging Face dataset, from the hub (``owner/name`` at a ``revision``) or a local
  ``save_to_disk`` folder or folder of parquet/arrow files (``datasets.load_dataset`` /
  ``load_from_disk``), with a column mapping;
* ``folder``: a folder of images with a CSV or JSONL of rows, the image column relative to the
  file's folder (``file_name``, as in the ``datasets`` ImageFolder metadata file).

:func:`parse` checks an entry at planning (lmmcl.config.Plan), :func:`read` reads and checks every
row (at planning the local files' texts, at conversion the images too), and :func:`convert` writes
one split in the data contract (lmmcl.data.contract) plus what the conversion did
(``report.json`` for the train split, ``benchmark.json`` for the test split: the benchmark entry
and the same record). Every problem found names the file, the row and the field; all of them are
reported at once, and nothing is written then.
"""
from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from .spec import SkillSpec, skill_seed

BENCHMARK_FILE = "benchmark.json"  # <data.root>/<skill>/: the benchmark entry the evaluations read
REPO_ROOT = Path(__file__).resolve().parents[3]
FORMATS = ("llava", "messages", "hf", "folder")
TURNS = ("first", "each")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
MAX_LISTED = 20  # problems listed in one error (the count of the others follows)

SKILL_KEYS = {"format", "path", "test_path", "image_folder", "revision", "splits", "columns", "tags", "turns",
              "test_fraction", "seed", "benchmark", "description"}
BENCHMARK_KEYS = {"scorer", "scorer_options", "metric", "max_new_tokens", "chance", "pre_prompt", "post_prompt",
                  "until"}
DEFAULT_TEST_FRACTION = 0.1
DEFAULT_MAX_NEW_TOKENS = 32

# the fields each layout reads, and their default names in a row (`columns` renames them)
COLUMNS = {
    "llava": {"id": "id", "image": "image", "messages": "conversations", "choices": None},
    "messages": {"id": "id", "image": "images", "messages": "messages", "choices": None},
    "hf": {"id": "id", "image": "image", "question": "question", "answer": "answer", "choices": None},
    "folder": {"id": "id", "image": "file_name", "question": "question", "answer": "answer", "choices": None},
}
# how a conversation's turns are written (`tags`: LLaMA-Factory's role_tag, content_tag, user_tag,
# assistant_tag and system_tag of a dataset_info.json entry, data/README.md of hiyouga/LLaMA-Factory)
TAGS = {
    "llava": {"role": "from", "content": "value", "user": "human", "assistant": "gpt", "system": "system"},
    "messages": {"role": "role", "content": "content", "user": "user", "assistant": "assistant", "system": "system"},
}
IMAGE_TOKEN = "<image>"


class SkillError(ValueError):
    """A declared skill that cannot be used; the message names the key, or the file, row and field."""


# ------------------------------------------------------------------------------ the entry
def parse(name: str, entry, *, data_seed: int = 0, data_limit: int | None = None, words: dict | None = None,
          cwd: Path | None = None) -> dict:
    """The checked, complete form of config ``skills.<name>`` (what the conversion rules get as
    their params): paths resolved, defaults filled in, the benchmark entry built. ``words``: where
    the tiny family's word vocabulary is (``{"tokenizer": tokenizer.json}`` or
    ``{"tiny_tokenizer": kind}``), None for a tokenizer that reads any text."""
    where = f"skills.{name}"
    if not NAME_RE.match(str(name)):
        raise SkillError(f"skills: {name!r} is not a skill name; allowed: lower-case letters, digits and _, "
                         f"starting with a letter (it names a task, a benchmark and data/<name>/)")
    if not isinstance(entry, dict):
        raise SkillError(f"{where}: expected a mapping of keys ({sorted(SKILL_KEYS)}), got {entry!r}")
    unknown = sorted(set(entry) - SKILL_KEYS)
    if unknown:
        raise SkillError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(SKILL_KEYS)}")
    fmt = entry.get("format")
    if fmt not in FORMATS:
        raise SkillError(f"{where}.format: {fmt!r}; allowed: {list(FORMATS)} (docs/own_skill.md)")
    decl: dict = {"name": name, "format": fmt, "description": str(entry.get("description") or "")}
    _parse_source(decl, entry, where, cwd)
    decl["columns"] = _mapping(entry, "columns", COLUMNS[fmt], where, nullable=True)
    if entry.get("tags") is not None and fmt not in TAGS:
        raise SkillError(f"{where}.tags: only the conversation layouts ({sorted(TAGS)}) have tags; "
                         f"format {fmt!r} maps its fields with `columns`")
    decl["tags"] = _mapping(entry, "tags", TAGS.get(fmt, {}), where) if fmt in TAGS else {}
    turns = entry.get("turns", "first")
    if turns not in TURNS:
        raise SkillError(f"{where}.turns: {turns!r}; allowed: {list(TURNS)} (first: a conversation's first "
                         f"question and answer; each: every question and answer of it, one example each)")
    if turns != "first" and fmt not in TAGS:
        raise SkillError(f"{where}.turns: {turns!r} applies to conversations ({sorted(TAGS)}); format {fmt!r} "
                         f"has one question and answer per row")
    decl["turns"] = turns
    decl["test_fraction"] = _number(entry.get("test_fraction", DEFAULT_TEST_FRACTION), f"{where}.test_fraction",
                                    float, 0.0, 1.0)
    decl["seed"] = int(_number(entry.get("seed", data_seed), f"{where}.seed", int, 0, None))
    decl["limit"] = None if data_limit in (None, "") else int(data_limit)
    given_test = decl["test_path"] is not None or "test" in decl["splits"]
    if given_test and "test_fraction" in entry:
        raise SkillError(f"{where}.test_fraction: a test split is given ({'test_path' if fmt != 'hf' else 'splits.test'}), "
                         f"so nothing is held back; remove one of the two")
    train_rows = "train" in decl["splits"] if fmt == "hf" else decl["path"] is not None
    has_train = train_rows and (given_test or decl["test_fraction"] < 1.0)
    has_test = given_test or decl["test_fraction"] > 0.0
    decl["outputs"] = [s for s, on in (("train", has_train), ("test", has_test)) if on]
    decl["words"] = words
    decl["benchmark"] = _parse_benchmark(name, entry.get("benchmark"), decl, where)
    return decl


def _parse_source(decl: dict, entry: dict, where: str, cwd: Path | None) -> None:
    fmt = decl["format"]
    path, test_path = entry.get("path"), entry.get("test_path")
    decl["revision"] = None
    decl["splits"] = {}
    if fmt == "hf":
        if test_path is not None:
            raise SkillError(f"{where}.test_path: a Hugging Face dataset names its test split in "
                             f"`splits: {{train: <split>, test: <split>}}`")
        if not isinstance(path, str) or not path:
            raise SkillError(f"{where}.path: required for format hf: a hub dataset id ('owner/name', with `revision`) "
                             f"or a local save_to_disk folder or folder of parquet files")
        splits = entry.get("splits") or {"train": "train"}
        if not isinstance(splits, dict) or not splits or set(splits) - {"train", "test"} or \
                not all(isinstance(v, str) and v for v in splits.values()):
            raise SkillError(f"{where}.splits: {splits!r}; allowed: {{train: <split name>, test: <split name>}} "
                             f"(either may be left out; without test a fraction of train is held back)")
        decl["splits"] = dict(splits)
        local = _resolve(path, cwd)
        if local.exists():
            decl["path"], decl["hub"] = str(local), False
        elif HUB_ID_RE.match(path) and not path.startswith((".", "/", "~")):
            revision = entry.get("revision")
            if not isinstance(revision, str) or not revision:
                raise SkillError(f"{where}.revision: required for the hub dataset {path!r} (no local folder "
                                 f"{_tried(path, cwd)}): a commit sha (best), tag or branch, so that a rerun reads "
                                 f"the same rows (the report records it)")
            decl["path"], decl["hub"], decl["revision"] = path, True, revision
        else:
            raise SkillError(f"{where}.path: {path!r} is neither a local folder ({_tried(path, cwd)}) nor a hub "
                             f"dataset id 'owner/name'")
        decl["test_path"] = None
        folder = entry.get("image_folder")
        decl["image_folder"] = str(_existing(folder, f"{where}.image_folder", cwd, folder=True)) if folder else (
            None if decl["hub"] else decl["path"])
        return
    if entry.get("splits") is not None:
        raise SkillError(f"{where}.splits: only format hf names splits; {fmt!r} reads `path` (and `test_path`)")
    if entry.get("revision") is not None:
        raise SkillError(f"{where}.revision: only a hub dataset (format hf) has a revision")
    if path is None and test_path is None:
        raise SkillError(f"{where}.path: required: the {_file_kind(fmt)} with the rows (and `test_path` for "
                         f"separate test rows)")
    decl["path"] = str(_existing(path, f"{where}.path", cwd)) if path is not None else None
    decl["test_path"] = str(_existing(test_path, f"{where}.test_path", cwd)) if test_path is not None else None
    for key in ("path", "test_path"):
        if decl[key] and Path(decl[key]).suffix.lower() not in _SUFFIXES[fmt]:
            raise SkillError(f"{where}.{key}: {decl[key]} is not a {_file_kind(fmt)} (allowed suffixes: "
                             f"{', '.join(_SUFFIXES[fmt])})")
    folder = entry.get("image_folder")
    first = Path(decl["path"] or decl["test_path"])
    decl["image_folder"] = str(_existing(folder, f"{where}.image_folder", cwd, folder=True)) if folder else str(first.parent)


_SUFFIXES = {"llava": (".json", ".jsonl"), "messages": (".json", ".jsonl"), "folder": (".csv", ".jsonl")}


def _file_kind(fmt: str) -> str:
    return {"llava": "LLaVA conversation JSON/JSONL file", "messages": "messages JSON/JSONL file",
            "folder": "CSV or JSONL file"}.get(fmt, "dataset")


def _resolve(given: str, cwd: Path | None) -> Path:
    """A path as given (absolute, or relative to the working directory), else relative to the
    repository (as model.checkpoint is looked up): the example's data is found from any folder."""
    p = Path(str(given)).expanduser()
    if p.is_absolute():
        return p
    here = (cwd or Path.cwd()) / p
    if here.exists():
        return p if cwd is None else here
    return REPO_ROOT / p if (REPO_ROOT / p).exists() else p


def _tried(given: str, cwd: Path | None) -> str:
    p = Path(str(given)).expanduser()
    if p.is_absolute():
        return str(p)
    return f"{(cwd or Path.cwd()) / p} nor {REPO_ROOT / p}"


def _existing(given, where: str, cwd: Path | None, folder: bool = False) -> Path:
    if not isinstance(given, str) or not given:
        raise SkillError(f"{where}: expected a path, got {given!r}")
    p = _resolve(given, cwd)
    if not (p.is_dir() if folder else p.is_file()):
        raise SkillError(f"{where}: {given!r} is not an existing {'folder' if folder else 'file'} "
                         f"(looked in {_tried(given, cwd)})")
    return p


def _mapping(entry: dict, key: str, defaults: dict, where: str, nullable: bool = False) -> dict:
    given = entry.get(key) or {}
    if not isinstance(given, dict):
        raise SkillError(f"{where}.{key}: expected a mapping, got {given!r}; allowed keys: {sorted(defaults)}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise SkillError(f"{where}.{key}: unknown key(s) {unknown}; allowed: {sorted(defaults)}")
    for k, v in given.items():
        if not (isinstance(v, str) and v) and not (nullable and v is None and k in ("id", "choices")):
            raise SkillError(f"{where}.{key}.{k}: {v!r}; allowed: the name of a field of your rows")
    return {**defaults, **given}


def _number(value, where: str, kind, lo, hi):
    if isinstance(value, str):  # Snakemake's --config passes nested values as strings
        try:
            value = kind(value)
        except ValueError:
            pass
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or float(value).is_integer())
    if not ok or (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise SkillError(f"{where}: {value!r}; allowed: {'a number' if kind is float else 'an integer'} {rng}")
    return kind(value)


def _parse_benchmark(name: str, given, decl: dict, where: str) -> dict:
    from lmmcl.evaluation import scoring

    where = f"{where}.benchmark"
    if not isinstance(given, dict) or "scorer" not in given:
        raise SkillError(f"{where}.scorer: required: which scorer judges the answers; allowed: "
                         f"{sorted(scoring.SCORERS)} (docs/own_skill.md, docs/evaluation.md)")
    unknown = sorted(set(given) - BENCHMARK_KEYS)
    if unknown:
        raise SkillError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(BENCHMARK_KEYS)}")
    scorer = given["scorer"]
    if scorer not in scoring.SCORERS:
        raise SkillError(f"{where}.scorer: unknown scorer {scorer!r}; allowed: {sorted(scoring.SCORERS)}")
    try:
        options = scoring.check_options(scorer, given.get("scorer_options"))
    except ValueError as e:
        raise SkillError(f"{where}.scorer_options: {e}") from None
    metric = given.get("metric") or scoring.DEFAULT_METRICS[scorer]
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", str(metric)):
        raise SkillError(f"{where}.metric: {metric!r}; allowed: letters, digits and _ (a metric name)")
    spec = {"dataset": name, "split": "test", "columns": ["options"] if decl["columns"].get("choices") else [],
            "scorer": scorer, "metric": metric,
            "max_new_tokens": int(_number(given.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS),
                                          f"{where}.max_new_tokens", int, 1, None)),
            "chance": None if given.get("chance") is None else _number(given["chance"], f"{where}.chance", float, 0, 100),
            "pre_prompt": _text_key(given, "pre_prompt", where), "post_prompt": _text_key(given, "post_prompt", where),
            "declared": True}
    if options:
        spec["scorer_options"] = options
    if given.get("until") is not None:
        until = given["until"]
        if not isinstance(until, list) or not all(isinstance(u, str) and u for u in until):
            raise SkillError(f"{where}.until: {until!r}; allowed: a list of stop strings")
        spec["until"] = list(until)
    return spec


def _text_key(given: dict, key: str, where: str) -> str:
    v = given.get(key, "")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise SkillError(f"{where}.{key}: {v!r}; allowed: a string")
    return v


def skill_spec(decl: dict) -> SkillSpec:
    """The registry entry (lmmcl.data.skills) of a parsed declaration."""
    return SkillSpec(decl["name"], None, [], None, splits=tuple(decl["outputs"]), kind="declared", declaration=decl)


def params(decl: dict, split: str) -> dict:
    """What the conversion of ``split`` depends on (its rule's params): the test split also on the
    benchmark (a changed scorer rewrites the test split, not the train split or a stage)."""
    out = {k: v for k, v in decl.items() if k not in ("benchmark", "description")}
    if split == "test":
        out["benchmark"] = decl["benchmark"]
    return out


def source_files(decl: dict) -> list[str]:
    """The local files a conversion reads its rows from (inputs of its rules: editing one reruns it;
    the images are not, see docs/own_skill.md)."""
    files = [p for p in (decl.get("path"), decl.get("test_path")) if p]
    if decl["format"] == "hf":
        if decl.get("hub"):
            return []
        root = Path(decl["path"])
        return sorted(str(f) for f in root.rglob("*") if f.is_file()) if root.is_dir() else [str(root)]
    return files


# ------------------------------------------------------------------------------ reading rows
@dataclass
class Unit:
    """One source row (a conversation): where it is, its id, its image and its (question, answer) pairs."""

    file: str
    row: int  # 1-based, in file order
    id: str | None
    image: object
    pairs: list = field(default_factory=list)
    choices: list | None = None

    def where(self, fld: str | None = None) -> str:
        text = f"{self.file}: row {self.row}" + (f" (id {self.id!r})" if self.id is not None else "")
        return text + (f", field {fld!r}" if fld else "")


@dataclass
class Rows:
    """Every example of a skill by split, what they were read from, and what is wrong with them."""

    splits: dict = field(default_factory=dict)   # split -> list of (Unit, pair index)
    problems: list = field(default_factory=list)
    record: dict = field(default_factory=dict)   # the manifest: sources, counts, held-back partition

    def fail(self, text: str) -> None:
        self.problems.append(text)


def read(decl: dict, images: str = "exists", decode: tuple = (), keep: tuple = ()) -> Rows:
    """Every example of the skill, its split and its problems (none: usable).

    ``images``: ``exists`` (a path must be a file: planning) or ``none``; the images of the splits
    in ``decode`` are decoded fully (conversion), and their bytes kept for the splits in ``keep``.
    Raises :class:`SkillError` listing every problem (the rows that could be read are checked on
    even when others could not)."""
    out = Rows(record={"skill": decl["name"], "format": decl["format"], "turns": decl["turns"],
                       "seed": decl["seed"], "limit": decl["limit"], "notes": []})
    given = _load_units(decl, out)
    broken = bool(out.problems)  # then a split's size says nothing: no message about it
    train_units, test_units = given.get("train", []), given.get("test")
    if test_units is None:  # held back from the train rows
        test_units, train_units = _hold_back(decl, train_units, out, quiet=broken)
    by_split = {"train": train_units, "test": test_units}
    for split in decl["outputs"]:
        examples = [(u, k) for u in by_split[split] for k in range(len(u.pairs))]
        if decl["limit"]:
            examples = examples[:decl["limit"]]
        out.splits[split] = examples
        out.record.setdefault("splits", {})[split] = {"rows": len({id(u) for u, _ in examples}),
                                                      "examples": len(examples)}
        if not examples and not broken:
            out.fail(f"skills.{decl['name']}: the {split} split has no example")
    _check_ids(decl, out)
    _check_images(decl, out, images, decode, keep)
    _check_answers(decl, out)
    _check_words(decl, out)
    if out.problems:
        raise SkillError(_summary(decl, out.problems))
    return out


def _summary(decl: dict, problems: list[str]) -> str:
    listed = problems[:MAX_LISTED]
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return (f"skills.{decl['name']}: {len(problems)} problem(s), nothing converted:\n  " + "\n  ".join(listed) + more)


def _source_record(decl: dict) -> dict:
    from lmmcl.hashing import sha256_file

    if decl["format"] == "hf" and decl.get("hub"):
        return {"hub": decl["path"], "revision": decl["revision"], "splits": decl["splits"]}
    files = {}
    for f in source_files(decl):
        files[str(f)] = sha256_file(f)
    return {"files": files, "image_folder": decl.get("image_folder"), **({"splits": decl["splits"]} if decl["splits"] else {})}


def _hold_back(decl: dict, units: list, out: Rows, quiet: bool = False) -> tuple[list, list]:
    """(test units, train units): a seeded `test_fraction` of the rows (whole conversations, so no
    question of a test conversation is trained on), in file order; recorded in the manifest."""
    f = decl["test_fraction"]
    n = len(units)
    if f in (0.0, 1.0):
        test, train = (units, []) if f == 1.0 else ([], units)
    else:
        if n < 2:
            if not quiet:
                out.fail(f"skills.{decl['name']}: {n} row(s): holding back a test split (test_fraction {f}) needs "
                         f"at least 2; give more rows or a test_path")
            return [], units
        k = min(n - 1, max(1, round(n * f)))
        chosen = set(random.Random(skill_seed(decl["name"], "held_back", decl["seed"])).sample(range(n), k))
        test = [u for i, u in enumerate(units) if i in chosen]
        train = [u for i, u in enumerate(units) if i not in chosen]
    out.record["test_split"] = {"held_back": True, "fraction": f, "seed": decl["seed"], "of_rows": n,
                                "rows": len(test), "test_rows": [u.row for u in test]}
    return test, train


def _load_units(decl: dict, out: Rows) -> dict:
    fmt = decl["format"]
    if fmt == "hf":
        loaded = {}
        for split, hf_split in decl["splits"].items():
            loaded[split] = _hf_units(decl, hf_split, out)
        if "test" in decl["splits"]:
            out.record["test_split"] = {"held_back": False, "split": decl["splits"]["test"]}
        if "train" not in decl["splits"]:
            loaded.setdefault("train", [])
        return loaded
    loaded = {}
    if decl["path"]:
        loaded["train"] = _file_units(decl, decl["path"], out)
    if decl["test_path"]:
        loaded["test"] = _file_units(decl, decl["test_path"], out)
        out.record["test_split"] = {"held_back": False, "file": decl["test_path"]}
    elif not decl["path"]:
        loaded["test"] = []
    return loaded


def _file_units(decl: dict, path: str, out: Rows) -> list[Unit]:
    fmt = decl["format"]
    if fmt == "folder" and Path(path).suffix.lower() == ".csv":
        raw = _csv_rows(path, decl, out)
    else:
        raw = _json_rows(path, out)
    units = []
    for row, obj in raw:
        u = (_conversation_unit if fmt in TAGS else _flat_unit)(decl, path, row, obj, out)
        if u is not None:
            units.append(u)
    return units


def _json_rows(path: str, out: Rows) -> list[tuple[int, dict]]:
    text = Path(path).read_text(encoding="utf-8")
    items: list[tuple[int, object]] = []
    if Path(path).suffix.lower() == ".jsonl":
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((i, json.loads(line)))
            except json.JSONDecodeError as e:
                out.fail(f"{path}: line {i}: not valid JSON ({e.msg}, column {e.colno})")
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            out.fail(f"{path}: not valid JSON ({e.msg}, line {e.lineno} column {e.colno}); expected a list of rows "
                     f"(or one JSON object per line in a .jsonl file)")
            return []
        if not isinstance(data, list):
            out.fail(f"{path}: holds a JSON {type(data).__name__}; expected a list of rows")
            return []
        items = [(i, x) for i, x in enumerate(data, start=1)]
    rows = []
    for i, obj in items:
        if not isinstance(obj, dict):
            out.fail(f"{path}: row {i}: a JSON {type(obj).__name__}, expected an object")
        else:
            rows.append((i, obj))
    if not items and not out.problems:
        out.fail(f"{path}: no rows")
    return rows


def _csv_rows(path: str, decl: dict, out: Rows) -> list[tuple[int, dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        needed = [decl["columns"][k] for k in ("image", "question", "answer")]
        needed += [decl["columns"][k] for k in ("choices",) if decl["columns"].get(k)]
        missing = [c for c in needed if c not in header]
        if missing:
            out.fail(f"{path}: no column(s) {missing} (its columns: {header}); map them with "
                     f"skills.{decl['name']}.columns (image, question, answer, choices, id)")
            return []
        rows = [(i, dict(r)) for i, r in enumerate(reader, start=1)]
    if not rows:
        out.fail(f"{path}: no rows")
    return rows


def _id_of(decl: dict, path: str, row: int, obj: dict, out: Rows) -> tuple[str | None, bool]:
    """(the row's id or None, ok)."""
    col = decl["columns"].get("id")
    if not col or obj.get(col) is None:
        if col and col != COLUMNS[decl["format"]]["id"]:  # a column named in the config must be there
            out.fail(f"{path}: row {row}, field {col!r}: missing (skills.{decl['name']}.columns.id)")
            return None, False
        return None, True
    value = obj[col]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        out.fail(f"{path}: row {row}, field {col!r}: {_short(value)} is not an id (a non-empty string or an integer)")
        return None, False
    return str(value).strip(), True


def _conversation_unit(decl: dict, path: str, row: int, obj: dict, out: Rows) -> Unit | None:
    cols, tags = decl["columns"], decl["tags"]
    rid, ok = _id_of(decl, path, row, obj, out)
    u = Unit(path, row, rid, None)
    image = obj.get(cols["image"])
    if isinstance(image, list):
        if len(image) != 1:
            out.fail(f"{u.where(cols['image'])}: {len(image)} images; the data contract holds one image per example")
            ok = False
        image = image[0] if len(image) == 1 else None
    if image is None and ok:
        out.fail(f"{u.where(cols['image'])}: missing; the data contract needs one image per example "
                 f"(a text-only row cannot be converted)")
        ok = False
    elif image is not None and (not isinstance(image, str) or not image.strip()):
        out.fail(f"{u.where(cols['image'])}: {_short(image)} is not an image path")
        ok = False
    u.image = image
    turns = obj.get(cols["messages"])
    if not isinstance(turns, list) or not turns:
        out.fail(f"{u.where(cols['messages'])}: {'missing' if turns is None else _short(turns)}; expected a list of "
                 f"turns {{{tags['role']!r}: {tags['user']!r}|{tags['assistant']!r}, {tags['content']!r}: text}}")
        return None
    question, n_tokens, system = None, 0, 0
    for k, turn in enumerate(turns):
        fld = f"{cols['messages']}[{k}]"
        if not isinstance(turn, dict):
            out.fail(f"{u.where(fld)}: {_short(turn)} is not a turn (an object)")
            return None
        role, text = turn.get(tags["role"]), turn.get(tags["content"])
        role_field, text_field = f"{fld}.{tags['role']}", f"{fld}.{tags['content']}"
        if not isinstance(text, str):
            out.fail(f"{u.where(text_field)}: {_short(text)} is not text")
            return None
        n_tokens += text.count(IMAGE_TOKEN)
        if role == tags["system"]:
            system += 1
            continue
        if role == tags["user"]:
            if question is not None:
                out.fail(f"{u.where(fld)}: two {tags['user']!r} turns in a row; expected {tags['user']!r} and "
                         f"{tags['assistant']!r} turns alternating")
                return None
            question = (text, text_field)
        elif role == tags["assistant"]:
            if question is None:
                out.fail(f"{u.where(fld)}: an {tags['assistant']!r} turn without a {tags['user']!r} turn before it")
                return None
            u.pairs.append((question[0], text, question[1], text_field))
            question = None
        else:
            out.fail(f"{u.where(role_field)}: {_short(role)}; allowed: {tags['user']!r}, "
                     f"{tags['assistant']!r}, {tags['system']!r} (skills.{decl['name']}.tags)")
            return None
    if question is not None:
        out.fail(f"{u.where(question[1])}: the last {tags['user']!r} turn has no {tags['assistant']!r} answer")
    if not u.pairs:
        out.fail(f"{u.where(cols['messages'])}: no question and answer")
        return None
    if n_tokens > 1:
        out.fail(f"{u.where(cols['messages'])}: {n_tokens} {IMAGE_TOKEN} tokens for one image")
    if system:
        out.record["notes"].append(f"{path}: row {row}: {system} system turn(s) left out (the contract has no system prompt)")
    if decl["turns"] == "first":
        u.pairs = u.pairs[:1]
    u.choices = _choices(decl, u, obj, out)
    return u if ok else None


def _flat_unit(decl: dict, path: str, row: int, obj: dict, out: Rows) -> Unit | None:
    cols = decl["columns"]
    rid, ok = _id_of(decl, path, row, obj, out)
    u = Unit(path, row, rid, obj.get(cols["image"]))
    for key in ("image", "question", "answer"):
        if cols[key] not in obj:
            out.fail(f"{u.where(cols[key])}: missing (skills.{decl['name']}.columns.{key})")
            ok = False
    if not ok:
        return None
    if u.image is None or (isinstance(u.image, str) and not u.image.strip()):
        out.fail(f"{u.where(cols['image'])}: empty; the data contract needs one image per example")
        ok = False
    q, a = obj[cols["question"]], obj[cols["answer"]]
    for value, key in ((q, "question"), (a, "answer")):
        if isinstance(value, bool) or (value is not None and not isinstance(value, (str, int, float))):
            out.fail(f"{u.where(cols[key])}: {_short(value)} is not text (one {key} per row)")
            ok = False
    u.pairs = [("" if q is None else str(q), "" if a is None else str(a), cols["question"], cols["answer"])]
    u.choices = _choices(decl, u, obj, out)
    return u if ok else None


def _choices(decl: dict, u: Unit, obj: dict, out: Rows) -> list[str] | None:
    col = decl["columns"].get("choices")
    if not col:
        return None
    value = obj.get(col)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, dict):
        value = [value[k] for k in sorted(value)]
    if not isinstance(value, (list, tuple)) or len(value) < 2 or len(value) > 26 or \
            not all(isinstance(c, (str, int, float)) and str(c).strip() for c in value):
        out.fail(f"{u.where(col)}: {_short(value)}; expected 2 to 26 non-empty choices (a list, or a JSON list)")
        return None
    return [str(c).strip() for c in value]


def _hf_units(decl: dict, hf_split: str, out: Rows) -> list[Unit]:
    cols = decl["columns"]
    label = f"{decl['path']} split {hf_split!r}" + (f" @ {decl['revision']}" if decl.get("revision") else "")
    try:
        ds = _load_hf(decl, hf_split)
    except (FileNotFoundError, KeyError, ValueError) as e:
        out.fail(f"{label}: {e}")
        return []
    names = list(getattr(ds, "column_names", None) or (list(ds[0]) if len(ds) else []))
    needed = [cols[k] for k in ("image", "question", "answer")] + [cols[k] for k in ("choices",) if cols.get(k)]
    if cols.get("id") != COLUMNS["hf"]["id"] and cols.get("id"):
        needed.append(cols["id"])
    missing = [c for c in needed if c not in names]
    if missing:
        out.fail(f"{label}: no column(s) {missing} (its columns: {names}); map them with "
                 f"skills.{decl['name']}.columns (image, question, answer, choices, id)")
        return []
    units = []
    for i, obj in enumerate(ds, start=1):
        u = _flat_unit(decl, label, i, obj, out)
        if u is not None:
            units.append(u)
    if not units and not out.problems:
        out.fail(f"{label}: no rows")
    return units


def _load_hf(decl: dict, hf_split: str):
    """One split of the skill's Hugging Face dataset, its image columns undecoded."""
    import datasets

    from .sources.common import load_hub_split

    path = decl["path"]
    if not decl.get("hub") and Path(path).is_dir() and (
            (Path(path) / "dataset_dict.json").is_file() or (Path(path) / "state.json").is_file()):
        ds = datasets.load_from_disk(path)  # a save_to_disk folder: a DatasetDict or one Dataset
        if isinstance(ds, datasets.DatasetDict):
            if hf_split not in ds:
                raise KeyError(f"no split {hf_split!r}; its splits: {sorted(ds)}")
            ds = ds[hf_split]
        elif hf_split != decl["splits"].get("train"):
            raise KeyError(f"a save_to_disk folder of one Dataset holds the train rows only, not split {hf_split!r}")
        for col, feat in ds.features.items():
            if isinstance(feat, datasets.Image):
                ds = ds.cast_column(col, datasets.Image(decode=False))
        return ds
    if decl.get("hub"):
        return load_hub_split(path, hf_split, revision=decl["revision"])
    return load_hub_split(path, hf_split, path=path)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------------ checks
def question_text(q: str, choices: list[str] | None) -> str:
    """The question as the contract stores it: `<image>` tokens out (the model places the image),
    the choices as 'A. ...' lines when the question does not list them (as the evaluation's prompt
    does, lmmcl/evaluation/tasks/utils.py)."""
    q = re.sub(r"\s*<image>\s*", "\n", q).strip()
    if choices:
        lines = [f"{chr(65 + i)}. {c}" for i, c in enumerate(choices)]
        if not all(line in q for line in lines):
            q = q + "\n" + "\n".join(lines)
    return q


def _examples(out: Rows):
    for split, examples in out.splits.items():
        for u, k in examples:
            q, a, qf, af = u.pairs[k]
            yield split, u, k, q, a, qf, af


def example_id(decl: dict, u: Unit, k: int) -> str:
    """A row's id (generated from the file row when it has none; `#<turn>` for turns: each)."""
    base = u.id if u.id is not None else f"{decl['name']}_{u.row:05d}"
    return f"{base}#{k + 1}" if decl["turns"] == "each" and len(u.pairs) > 1 else base


def _check_ids(decl: dict, out: Rows) -> None:
    """Ids are unique in each source file (whatever split a row lands in) and in each split."""
    by_file: dict[str, dict[str, Unit]] = {}
    for u in {id(u): u for examples in out.splits.values() for u, _ in examples}.values():
        if u.id is None:
            continue
        first = by_file.setdefault(u.file, {}).setdefault(u.id, u)
        if first is not u:
            a, b = sorted((first.row, u.row))
            out.fail(f"{u.file}: rows {a} and {b} have the same id {u.id!r}; ids must be unique (or leave them "
                     f"out: the row number is used)")
    for split, examples in out.splits.items():
        seen: dict[str, Unit] = {}
        for u, k in examples:
            rid = example_id(decl, u, k)
            same_row_id = u.id is not None and seen.get(rid) is not None and (seen[rid].file, seen[rid].id) == (u.file, u.id)
            if rid in seen and seen[rid] is not u and not same_row_id:  # (a repeated row id: reported above)
                first = seen[rid]
                out.fail(f"{u.file}: rows {first.row} and {u.row} have the same id {rid!r} ({split} split); "
                         f"ids must be unique (or leave them out: the row number is used)")
            seen.setdefault(rid, u)


def _check_images(decl: dict, out: Rows, images: str, decode: tuple, keep: tuple = ()) -> None:
    if decode:  # Pillow and the data contract (datasets): only when images are decoded, not at planning
        from .sources.common import BadItem, check_image
    done: dict[int, object] = {}
    for split, examples in out.splits.items():
        for u, _ in examples:
            if id(u) in done:
                continue
            fld = decl["columns"]["image"]
            path = _image_path(decl, u.image) if isinstance(u.image, str) else None
            if path is not None and images != "none" and not path.is_file():
                out.fail(f"{u.where(fld)}: image file {u.image!r} not found ({path})")
                done[id(u)] = None
            elif split in decode:
                try:
                    data = check_image(_image_value(decl, u.image))
                    done[id(u)] = data if split in keep else None
                except BadItem as e:  # (PIL names its in-memory file object: left out)
                    reason = re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", str(e))
                    out.fail(f"{u.where(fld)}: {_image_label(decl, u.image)}: {reason}")
                    done[id(u)] = None
            else:
                done[id(u)] = None
    out.record["_images"] = done


def _image_path(decl: dict, value: str) -> Path:
    p = Path(value).expanduser()
    if p.is_absolute() or not decl.get("image_folder"):
        return p
    return Path(decl["image_folder"]) / p


def _image_value(decl: dict, value):
    if isinstance(value, str):
        return _image_path(decl, value)
    if isinstance(value, dict) and not value.get("bytes") and value.get("path"):
        return _image_path(decl, value["path"])
    return value


def _image_label(decl: dict, value) -> str:
    if isinstance(value, str):
        return f"image {value!r} ({_image_path(decl, value)})"
    if isinstance(value, dict) and value.get("path"):
        return f"image {value['path']!r}"
    return "image"


def _check_answers(decl: dict, out: Rows) -> None:
    from lmmcl.evaluation import scoring

    bench = decl.get("benchmark")  # the train split's conversion does not depend on the scorer
    for split, u, k, q, a, qf, af in _examples(out):
        if not question_text(q, None):
            out.fail(f"{u.where(qf)}: empty question")
        if not a.strip():
            out.fail(f"{u.where(af)}: empty answer")
            continue
        if split == "test" and bench:  # what the scorer will judge
            doc = {"answer": a.strip(), "question": q}
            if u.choices:
                doc["options"] = json.dumps(u.choices)
            problem = scoring.gold_problem(bench["scorer"], doc, bench.get("scorer_options"))
            if problem:
                out.fail(f"{u.where(af)}: {problem}")


def vocabulary(words: dict | None) -> tuple[set[str] | None, str]:
    """(the pieces a tiny word-level tokenizer knows, where they come from); (None, ...) when the
    tokenizer reads any text (byte-level, or a real family's)."""
    if not words:
        return None, "a tokenizer that reads any text"
    if words.get("tokenizer"):
        path = Path(words["tokenizer"])
        model = json.loads(path.read_text(encoding="utf-8")).get("model") or {}
        if model.get("type") != "WordLevel":
            return None, str(path)
        return set(model.get("vocab") or {}), str(path)
    kind = words.get("tiny_tokenizer", "word")
    if kind == "byte":
        return None, "model.tiny.tokenizer: byte"
    from lmmcl.models.tiny import SPECIAL_TOKENS, word_vocabulary

    from .skills import vocabulary_texts

    texts = vocabulary_texts("broad" in kind, "vision" in kind) + ["USER: ", "ASSISTANT: "]
    return set(word_vocabulary(texts)) | set(SPECIAL_TOKENS), f"model.tiny.tokenizer: {kind}"


def unknown_pieces(text: str, vocab: set[str]) -> list[str]:
    from lmmcl.models.tiny import WORD_PIECES

    return [p for p in re.findall(WORD_PIECES, text) if p not in vocab]


def _check_words(decl: dict, out: Rows) -> None:
    """A tiny word-level tokenizer reads a word it does not know as <unk>: refused, listing them."""
    vocab, source = vocabulary(decl.get("words"))
    if vocab is None:
        return
    bench = decl.get("benchmark") or {"pre_prompt": "", "post_prompt": ""}
    unknown: dict[str, str] = {}
    for text, what in ((bench["pre_prompt"], "benchmark.pre_prompt"), (bench["post_prompt"], "benchmark.post_prompt")):
        for p in unknown_pieces(text, vocab):
            unknown.setdefault(p.strip() or p, f"skills.{decl['name']}.{what}")
    for split, u, k, q, a, qf, af in _examples(out):
        for text, fld in ((question_text(q, u.choices), qf), (" " + a.strip(), af)):
            for p in unknown_pieces(text, vocab):
                unknown.setdefault(p.strip() or p, u.where(fld))
    if unknown:
        listed = "; ".join(f"{w!r} ({where})" for w, where in list(unknown.items())[:MAX_LISTED])
        more = f"; and {len(unknown) - MAX_LISTED} more" if len(unknown) > MAX_LISTED else ""
        out.fail(f"{len(unknown)} word(s) the tiny model's word-level tokenizer ({source}) does not know, which it would "
                 f"read as <unk>: {listed}{more}. Use words of its vocabulary (`lmmcl skill words` lists them), or a "
                 f"tiny base whose tokenizer reads any text (model.tiny.tokenizer: byte, model.checkpoint: null)")


# ------------------------------------------------------------------------------ conversion
def records(decl: dict, out: Rows, split: str) -> list[dict]:
    """The contract records of ``split`` (its images decoded by :func:`read`)."""
    images = out.record["_images"]
    recs = []
    for u, k in out.splits[split]:
        q, a = u.pairs[k][0], u.pairs[k][1]
        rec = {"id": example_id(decl, u, k), "image": images[id(u)], "question": question_text(q, u.choices),
               "answer": a.strip(), "task": decl["name"]}
        if decl["columns"].get("choices"):
            rec["options"] = json.dumps(u.choices)
        recs.append(rec)
    return recs


def manifest(out: Rows) -> dict:
    return {k: v for k, v in out.record.items() if not k.startswith("_")}


def convert(decl: dict, split: str, out_dir) -> dict:
    """Write ``<out_dir>/<split>.parquet`` and, after it, ``report.json`` (train) or
    ``benchmark.json`` (test: the benchmark entry and the manifest). Every row of every split is
    checked first, its image decoded, so that the two splits' conversions pass or fail together;
    any problem raises :class:`SkillError` and nothing is written. Returns the manifest."""
    from lmmcl.atomic import atomic_write_text
    from lmmcl.layout import SOURCE_REPORT, split_file

    from . import contract

    if split not in decl["outputs"]:
        raise SkillError(f"skills.{decl['name']}: has no {split} split (its splits: {decl['outputs']})")
    out = read(decl, images="exists", decode=tuple(decl["outputs"]), keep=(split,))
    recs = records(decl, out, split)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contract.write_split(recs, out_dir / split_file(split))  # atomic
    record = {**manifest(out), "source": _source_record(decl)}
    if split == "test":
        atomic_write_text(out_dir / BENCHMARK_FILE, json.dumps({"benchmark": decl["benchmark"], "data": record},
                                                               indent=1, default=str) + "\n")
    else:
        atomic_write_text(out_dir / SOURCE_REPORT, json.dumps(record, indent=1, default=str) + "\n")
    return record


def describe(decl: dict, out: Rows) -> str:
    """One line of what a skill's data is (lmmcl skill check, the conversion's log)."""
    parts = []
    for split, counts in out.record.get("splits", {}).items():
        parts.append(f"{split} {counts['examples']} example(s) from {counts['rows']} row(s)")
    held = out.record.get("test_split") or {}
    if held.get("held_back"):
        parts.append(f"test held back: {held['fraction']:g} of {held['of_rows']} rows, seed {held['seed']}")
    scorer = (decl.get("benchmark") or {}).get("scorer")
    return f"{decl['name']} ({decl['format']}" + (f", scorer {scorer}" if scorer else "") + "): " + "; ".join(parts)

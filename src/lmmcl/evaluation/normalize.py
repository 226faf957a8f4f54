"""Turn an lmms-eval results dict (+ logged samples) into lmmcl's per-benchmark records.

lmms-eval reports ``results[task]["<metric>,<filter>"]`` as a fraction (e.g.
``"exact_match,none"``; built-in ai2d uses ``"exact_match,flexible-extract"``) next to
``"<metric>_stderr,<filter>"`` keys and an ``alias``. We report every metric ×100 (0-100),
pick the primary metric (the registry's exact ``metric_key`` for built-in benchmarks, its
``metric`` for ours, else the task config's first ``metric_list`` entry, else the first
metric), and count empty answers from the samples. ocrbench (registry ``value_scale:
per_1000``) reports correct answers / 1000 whatever the number of samples; it is rescaled to
correct / n so that a ``limit`` run is on the same 0-100 scale. NaN scores become null.
Layout: lmms-eval 0.7.3's ``simple_evaluate`` result (the dict its ``results.json`` holds;
``lmms_eval/evaluator.py``), summarised in docs/evaluation.md ("lmms-eval facts we rely on").
"""
from __future__ import annotations

import json
from importlib import metadata

from lmmcl.layout import samples_file_name

__all__ = ["normalize_results", "parse_metrics", "sample_rows", "item_id", "item_score", "ITEM_ID_COLUMNS",
           "lmms_eval_version", "dumps_jsonl"]


def lmms_eval_version() -> str | None:
    """The installed lmms-eval package version. (results["lmms_eval_version"] is NOT that: it is
    "<branch>@<commit>" of the git repository in the current directory.)"""
    try:
        return metadata.version("lmms_eval")
    except metadata.PackageNotFoundError:
        return None


def parse_metrics(task_results: dict) -> dict[str, float]:
    """{"metric" or "metric,filter": value ×100} from one ``results[task]`` entry.

    The filter is dropped when it is "none" or the only filter of that metric. Stderr keys,
    ``alias`` and non-numeric values ("N/A") are skipped.
    """
    by_metric: dict[str, dict[str, float]] = {}
    for key, value in task_results.items():
        if key == "alias" or "," not in key:
            continue
        metric, flt = key.split(",", 1)
        if metric.endswith("_stderr") or "_stderr_" in metric:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        value = float(value)
        by_metric.setdefault(metric, {})[flt] = value * 100.0 if value == value else None
    out: dict[str, float] = {}
    for metric, filters in by_metric.items():
        for flt, v in filters.items():
            key = metric if (flt == "none" or len(filters) == 1) else f"{metric},{flt}"
            out[key] = v
    return out


def _primary_metric(benchmark: str, task: str, scores: dict, results: dict, registry: dict) -> str:
    candidates = []
    if benchmark in registry:
        candidates.append(registry[benchmark].get("metric"))
    cfg = (results.get("configs") or {}).get(task) or {}
    for m in cfg.get("metric_list") or []:
        if isinstance(m, dict) and m.get("metric"):
            candidates.append(m["metric"])
    for c in candidates:
        if c is None:
            continue
        if c in scores:
            return c
        prefixed = [k for k in scores if k.split(",", 1)[0] == c]
        if prefixed:
            return sorted(prefixed)[0]
    if not scores:
        raise ValueError(f"task {task!r} (benchmark {benchmark!r}) has no numeric metric in its results")
    return next(iter(scores))


def _keyed_score(benchmark: str, task: str, task_results: dict, spec: dict, n) -> tuple[str, float | None]:
    """(metric name, score 0-100) of the registry's exact `metric_key`, rescaled per `value_scale`."""
    key = spec["metric_key"]
    if key not in task_results:
        raise KeyError(f"benchmark {benchmark!r}: metric key {key!r} (registry metric_key) is not in the "
                       f"results of task {task!r}; keys there: {sorted(k for k in task_results if k != 'alias')}")
    value = task_results[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"benchmark {benchmark!r}: {key!r} = {value!r} is not a number")
    value = float(value)
    scale = spec.get("value_scale", "fraction")
    if scale == "per_1000":
        if not n:
            raise ValueError(f"benchmark {benchmark!r}: value_scale per_1000 needs the number of samples")
        value = value * 1000.0 / n
    elif scale != "fraction":
        raise ValueError(f"benchmark {benchmark!r}: unknown value_scale {scale!r}; allowed: ['fraction', 'per_1000']")
    metric = key.split(",", 1)[0]
    return metric, (value * 100.0 if value == value else None)


def _raw_key(task_results: dict, metric: str) -> str | None:
    if metric in task_results:
        return metric
    for k in task_results:
        if k.split(",", 1)[0] == metric.split(",", 1)[0] and not metric.count(","):
            return k
    return metric if "," in metric else None


def _response(sample: dict) -> str:
    for key in ("filtered_resps", "resps"):
        r = sample.get(key)
        while isinstance(r, (list, tuple)):
            r = r[0] if r else None
        if r is not None:
            return str(r)
    return ""


#: doc columns that identify an item, in order of preference: our data contract's `id`
#: (docs/data.md), then the id columns of the built-in datasets (seedbench `question_id`,
#: docvqa/infovqa `questionId`, mmstar `index`)
ITEM_ID_COLUMNS = ("id", "question_id", "questionId", "index")


def item_id(sample: dict) -> str | None:
    """A stable id of the sample's test item, the key that pairs two checkpoints' answers: the
    first of :data:`ITEM_ID_COLUMNS` the doc has, else ``doc_id:<n>`` (the item's position in the
    evaluated split, stable for the same data, revision and limit); None when neither exists."""
    doc = sample.get("doc") or {}
    for key in ITEM_ID_COLUMNS:
        value = doc.get(key)
        if value is not None and not isinstance(value, (dict, list)):
            return str(value)
    return None if sample.get("doc_id") is None else f"doc_id:{sample['doc_id']}"


def item_score(value, metric: str) -> float | None:
    """One item's score (0-1, or the scorer's partial credit) from the value lmms-eval logged for
    the primary metric, or None where the value is no per-item score.

    A number (a bool as 0/1) is the score. A dict is what a built-in task's `process_results` hands
    to its own aggregation: its numeric ``score`` (ocrbench, mmstar) or ``<metric>`` entry, or, for a
    ``pred``/``answer`` pair, their comparison as seedbench's aggregation makes it
    (``lmms_eval/tasks/<task>/utils.py`` of lmms-eval 0.7.3). Whether the items' mean reproduces the
    benchmark's score is checked where the scores are used (lmmcl.report.intervals)."""
    def number(v):
        if isinstance(v, bool):
            return float(v)
        if isinstance(v, (int, float)):
            return float(v) if v == v else None
        return None

    if isinstance(value, dict):
        for key in ("score", metric):
            if key in value and number(value[key]) is not None:
                return number(value[key])
        if isinstance(value.get("pred"), str) and isinstance(value.get("answer"), str):
            return float(value["pred"].lower().strip() == value["answer"].lower().strip())
        return None
    return number(value)


def sample_rows(samples: list[dict], metric: str) -> list[dict]:
    """One row per logged sample: doc id, id (the doc's own), item (:func:`item_id`, the key that
    pairs checkpoints), question, target, response, score (:func:`item_score` of `metric`)."""
    base = metric.split(",", 1)[0]
    rows = []
    for s in samples:
        doc = s.get("doc") or {}
        rows.append({
            "doc_id": s.get("doc_id"),
            "id": doc.get("id"),
            "item": item_id(s),
            "question": doc.get("question"),
            "target": s.get("target"),
            "response": _response(s),
            "score": item_score(s.get(base), base),
        })
    return rows


def normalize_results(results: dict, benchmark_of_task: dict, samples: dict | None = None,
                      registry: dict | None = None, task_hashes: dict | None = None) -> dict[str, dict]:
    """{benchmark: record} for every task in ``benchmark_of_task`` ({task: benchmark}).

    ``results`` is what ``simple_evaluate`` returns (or a stored results.json); ``samples``
    is ``{task: [logged sample, ...]}`` (defaults to ``results["samples"]``). A record holds
    benchmark, task, metric, score (primary ×100), scores (all ×100), n, n_empty (None without
    samples), lmms_eval_version, task_hash and samples (the jsonl file name, or None).

    ``task_hashes`` ({task: hash}) overrides ``results["task_hashes"]``. Note that lmms-eval's
    own task hashes are useless here: its per-sample ``doc_hash`` hashes ``Instance.doc``, which
    0.7.3 leaves None, so every task with the same number of samples gets the same hash.
    Raises KeyError naming a task that is missing from the results.
    """
    if registry is None:
        from lmmcl.registry import benchmarks as benchmark_registry

        registry = benchmark_registry()
    per_task = results.get("results", results) if isinstance(results.get("results"), dict) else results
    if samples is None:
        samples = results.get("samples") if isinstance(results.get("samples"), dict) else None
    n_samples = results.get("n-samples") or {}
    stored_hashes = results.get("task_hashes") or {}
    version = lmms_eval_version()

    out: dict[str, dict] = {}
    for task, benchmark in benchmark_of_task.items():
        if task not in per_task:
            raise KeyError(f"task {task!r} (benchmark {benchmark!r}) is not in the lmms-eval results; "
                           f"tasks there: {sorted(per_task)}")
        scores = parse_metrics(per_task[task])
        task_samples = (samples or {}).get(task)
        n = (n_samples.get(task) or {}).get("effective")
        if n is None and task_samples is not None:
            n = len(task_samples)
        spec = registry.get(benchmark) or {}
        metric_key = spec.get("metric_key")
        if metric_key:
            metric, score = _keyed_score(benchmark, task, per_task[task], spec, n)
            scores[metric] = score
        else:
            metric = _primary_metric(benchmark, task, scores, results, registry)
            score = scores[metric]
        n_empty = None
        if task_samples is not None:
            n_empty = sum(1 for s in task_samples if not _response(s).strip())
        out[benchmark] = {
            "benchmark": benchmark,
            "task": task,
            "metric": metric,
            "metric_key": metric_key or _raw_key(per_task[task], metric),
            "score": score,
            "scores": scores,
            "n": n,
            "n_empty": n_empty,
            "lmms_eval_version": version,
            "task_hash": (task_hashes or {}).get(task) or stored_hashes.get(task),
            "samples": samples_file_name(benchmark) if task_samples is not None else None,
        }
    return out


def dumps_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)

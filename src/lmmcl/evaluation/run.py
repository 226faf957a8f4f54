"""Evaluate one checkpoint on several benchmarks with ONE in-process lmms-eval run.

Process start-up and imports (~4 s for lmms_eval) cost more than the tiny model's compute, so
all benchmarks of a checkpoint go through a single ``simple_evaluate`` call, with a
``TaskManager`` that indexes only our generated tasks (``include_defaults=False`` skips the
~2000 built-in task YAMLs) unless a built-in lmms-eval benchmark (registry `builtin: true`)
is requested. Outputs per benchmark, written atomically:
``<out_dir>/<benchmark>.samples.jsonl`` first, then ``<out_dir>/<benchmark>.json``.

Under ``accelerate launch --num_processes N`` every rank runs this function on its shard of
the documents; lmms-eval gathers the results on rank 0, which alone writes the outputs.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace


def _offline_env() -> None:
    """Never reach the hub (unless the caller set these explicitly: `lmmcl evaluate` sets them
    to 0 when a hub checkpoint or a built-in benchmark without local data needs the hub).
    huggingface_hub reads them at import time, so this runs on import of this module and
    again in evaluate()."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


_offline_env()

from lmmcl.evaluation import normalize, taskgen  # noqa: E402
from lmmcl.atomic import atomic_path, atomic_write_json, atomic_write_text  # noqa: E402
from lmmcl.layout import eval_file_name, samples_file_name  # noqa: E402

log = logging.getLogger(__name__)

MODEL_NAME = "lmmcl"  # the lmms_eval.models entry point (manifest.py)


def _checkpoint_arg(checkpoint: str) -> str:
    """Absolute local folder (or a hub id as given); lmms-eval's model_args string is split on
    ',' and '=', so such characters cannot be passed through it."""
    p = Path(checkpoint)
    ckpt = str(p.resolve()) if p.exists() else str(checkpoint)
    if p.exists() and not (p / "config.json").is_file():
        raise FileNotFoundError(f"checkpoint folder {ckpt} has no config.json")
    if "," in ckpt or "=" in ckpt:
        raise ValueError(f"checkpoint path must not contain ',' or '=' (lmms-eval model_args): {ckpt}")
    return ckpt


def _defer_import(name: str) -> None:
    """Make `import name` cheap: a stand-in module that imports the real one on the first
    attribute it lacks. lmms-eval imports Hugging Face `evaluate` at start-up (~1.4 s: it pulls in
    transformers.pipelines) for `get_metric(..., hf_evaluate_metric=True)` alone, which no task of
    ours uses. (importlib's LazyLoader does not help: `import evaluate as x` reads `__spec__`,
    which already runs the module on Python 3.11.)"""
    import importlib
    import importlib.util
    import sys
    import types

    if name in sys.modules or importlib.util.find_spec(name) is None:
        return

    class Deferred(types.ModuleType):
        def __getattr__(self, attr):
            if attr.startswith("__"):  # inspect.getmodule & co. probe every module's dunders
                raise AttributeError(attr)
            if sys.modules.get(name) is self:
                del sys.modules[name]
            return getattr(importlib.import_module(name), attr)

    spec = importlib.util.find_spec(name)
    stub = Deferred(name)
    stub.__spec__, stub.__file__, stub.__loader__ = spec, spec.origin, spec.loader
    sys.modules[name] = stub


def _rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0)


def evaluate(checkpoint: str, benchmarks: list[str], data_root, out_dir, limit: int | None = None,
             device: str = "cpu", fail_on_empty: bool = False, batch_size: int = 1,
             clock_exact_hours: bool = False, builtin_data: dict | None = None,
             dataset_revisions: dict | None = None, in_training_job: bool = False) -> list[Path]:
    """Evaluate `checkpoint` on `benchmarks`; return the written ``<benchmark>.json`` paths
    (an empty list on ranks other than 0 of a multi-process run).

    `batch_size` > 1 batches greedy generation (left padding); `clock_exact_hours` scores
    clock hours exactly as the study did (default: modulo 12); `builtin_data` maps built-in
    benchmarks to local parquet files in their lmms-eval columns (offline runs);
    `dataset_revisions` pins built-in benchmarks' hub datasets ({benchmark: revision}, config
    evaluation.revisions); `in_training_job`: called by the training job's process right after
    the stage (config evaluation.in_training_job), so the record's timing holds the evaluation's
    own seconds, not that process's start-up and training phases.
    Raises ValueError (unknown benchmark) / FileNotFoundError (missing parquet or checkpoint)
    before loading anything, RuntimeError if generation fails, or (with `fail_on_empty`) if
    every answer of a benchmark is empty.
    """
    t0 = time.perf_counter()
    _offline_env()
    if isinstance(benchmarks, str):
        benchmarks = [benchmarks]
    benchmarks = list(dict.fromkeys(benchmarks))
    _declare_saved_skills(benchmarks, data_root)
    ckpt = _checkpoint_arg(checkpoint)
    revisions = {b: r for b, r in (dataset_revisions or {}).items() if r}
    _check_hub_cache(ckpt, benchmarks, builtin_data, revisions)
    out_dir = Path(out_dir)
    run = _Run(ckpt, benchmarks, data_root, limit=limit, device=device, batch_size=int(batch_size),
               clock_exact_hours=bool(clock_exact_hours), builtin_data=dict(builtin_data or {}),
               revisions=revisions)
    results, task_of, timing = _run_lmms_eval(run, out_dir, t0, in_training_job)
    if results is None and _rank() > 0:
        return []  # a non-main rank of `accelerate launch`: rank 0 writes the outputs
    if not results or "results" not in results:
        raise RuntimeError(f"lmms-eval returned no results for checkpoint {ckpt}")
    data = _data_records(run)
    records = _normalized_records(run, results, task_of, data)
    _check_empty_answers(records, ckpt, fail_on_empty)
    paths = _write_outputs(run, records, results.get("samples") or {}, out_dir, timing, data)
    log.info("evaluated %s on %d benchmarks in %.1f s", ckpt, len(benchmarks), time.perf_counter() - t0)
    return paths


def _declare_saved_skills(benchmarks: list[str], data_root) -> None:
    """A config's own skill (lmmcl.data.declared) is a benchmark its conversion wrote under the data
    root with its scorer (`<data_root>/<name>/benchmark.json`): declared here, as the config did at
    planning, so that this process (an evaluation job, `lmmcl evaluate`) scores it the same way."""
    from lmmcl.data.skills import register_saved

    register_saved(data_root, [b for b in benchmarks if b not in taskgen.registry()])


def _check_hub_cache(ckpt: str, benchmarks: list[str], builtin_data: dict | None,
                     revisions: dict | None = None) -> None:
    """Offline (the workflow's evaluation jobs): the checkpoint's hub root and every built-in
    benchmark read from the hub (at its pinned revision) are in the cache, else one error naming
    them and the prefetch command, before lmms-eval and the model load (lmmcl.hubcache). lmms-eval
    is pointed at the datasets cache prefetch fills, not at node-local scratch."""
    from lmmcl import hubcache
    from lmmcl.models.delta import chain

    hubcache.pin_datasets_cache()
    hubcache.require_model(chain(ckpt)[0])
    reg = taskgen.registry()
    hubcache.require_datasets([b for b in benchmarks if b in reg and taskgen.is_builtin(reg[b])
                               and b not in (builtin_data or {})], revisions=revisions)


@dataclass(frozen=True)
class _Run:
    """What one evaluation call evaluates, and how."""

    ckpt: str
    benchmarks: list
    data_root: object
    limit: int | None
    device: str
    batch_size: int
    clock_exact_hours: bool
    builtin_data: dict
    revisions: dict  # {built-in benchmark: pinned hub dataset revision}


def _run_lmms_eval(run: _Run, out_dir: Path, t0: float, in_training_job: bool = False):
    """(results, {benchmark: lmms-eval task}, timing) of ONE simple_evaluate call over our generated
    tasks (in a temporary folder); the side files task aggregations write are kept in out_dir."""
    with tempfile.TemporaryDirectory(prefix="lmmcl_eval_") as tmp:
        tasks_dir = Path(tmp) / "tasks"
        task_of = taskgen.write_tasks(run.benchmarks, run.data_root, tasks_dir, cache_dir=Path(tmp) / "hf_datasets",
                                      clock_exact_hours=run.clock_exact_hours, builtin_data=run.builtin_data,
                                      revisions=run.revisions)
        reg = taskgen.registry()
        # built-in tasks run under their own name (pinned and local ones are include: wrappers of ours)
        hub_builtins = [b for b in run.benchmarks if taskgen.is_builtin(reg[b]) and b not in run.builtin_data
                        and b not in run.revisions]

        t_import = time.perf_counter()
        _defer_import("evaluate")
        from lmms_eval import evaluator
        from lmms_eval.tasks import TaskManager

        from lmmcl.evaluation import model as _wrapper  # noqa: F401  (its import is timed with lmms-eval's)

        t_run = time.perf_counter()
        # indexing lmms-eval's ~2000 built-in YAMLs costs ~2.5 s: only when one is needed
        task_manager = TaskManager(include_path=str(tasks_dir), include_defaults=bool(hub_builtins))
        results = evaluator.simple_evaluate(
            model=MODEL_NAME,
            model_args=f"pretrained={run.ckpt}",
            tasks=list(task_of.values()),
            task_manager=task_manager,
            batch_size=run.batch_size,
            device=run.device,
            log_samples=True,
            limit=run.limit,
            bootstrap_iters=0,
            # where task aggregations write side files (ocrbench_results.txt, submissions);
            # without it they land in the current directory
            cli_args=SimpleNamespace(output_path=str(Path(tmp) / "lmms_eval_files"), process_with_media=True),
        )
        t_done = time.perf_counter()
        side = Path(tmp) / "lmms_eval_files"
        if (results is not None) and side.is_dir():
            for f in sorted(p for p in side.rglob("*") if p.is_file()):
                with atomic_path(out_dir / "lmms_eval_files" / f.name) as dst:  # bytes as written
                    shutil.copyfile(f, dst)
    from lmmcl import timing as process_timing
    from lmmcl.evaluation import model as lmmcl_model

    process = {"in_training_job": True} if in_training_job else process_timing.record()
    timing = {**process, "total": round(t_done - t0, 3), "import": round(t_run - t_import, 3),
              "simple_evaluate": round(t_done - t_run, 3),
              "generation": round(sum(lmmcl_model.last_task_seconds().values()), 3)}
    return results, task_of, timing


def _data_records(run: _Run) -> dict:
    """{benchmark: what data it read}: a local parquet's path and sha256 (ours, or a built-in task on
    local data), or a built-in task's hub dataset with its pinned revision ("unpinned" if none) and
    the commit loaded, as far as the caches tell (None: unknown). Read after lmms-eval loaded it."""
    from lmmcl import hubcache
    from lmmcl.hashing import sha256_file

    reg = taskgen.registry()
    out = {}
    for b in run.benchmarks:
        spec = reg[b]
        if not taskgen.is_builtin(spec) or b in run.builtin_data:
            path = Path(run.builtin_data[b]).resolve() if b in run.builtin_data else taskgen.parquet_path(
                b, run.data_root, reg)
            out[b] = {"source": "parquet", "file": str(path), "sha256": sha256_file(path)}
            continue
        ds = taskgen.builtin_dataset(spec["task"])
        revision = run.revisions.get(b)
        try:  # a record, never a reason to lose a finished evaluation
            commit = hubcache.loaded_commit(ds["path"], ds["name"], revision,
                                            ds["kwargs"].get("cache_dir") or hubcache.datasets_cache_dir())
        except Exception:
            commit = None
        out[b] = {"source": "hub", "dataset": ds["path"], "config": ds["name"], "split": ds["split"],
                  "revision": revision or "unpinned", "commit": commit}
    return out


def _normalized_records(run: _Run, results: dict, task_of: dict, data: dict) -> dict:
    """{benchmark: record} of lmmcl.evaluation.normalize, with our task hashes."""
    configs = results.get("configs") or {}
    hashes = {task_of[b]: taskgen.task_hash(b, run.data_root, run.limit, clock_exact_hours=run.clock_exact_hours,
                                            task_config=configs.get(task_of[b]), data_file=run.builtin_data.get(b),
                                            revision=run.revisions.get(b), data_sha256=data[b].get("sha256"))
              for b in run.benchmarks}
    return normalize.normalize_results(results, {t: b for b, t in task_of.items()}, results.get("samples") or {},
                                       task_hashes=hashes)


def _check_empty_answers(records: dict, ckpt: str, fail_on_empty: bool) -> None:
    """Generation errors already raise (our wrapper does not swallow them, unlike lmms-eval's).
    An empty answer is a real output (a model that forgot a skill may stop at once): it is
    scored 0, counted in n_empty and warned about; fail_on_empty makes it an error instead."""
    for bench, rec in records.items():
        if rec["n"] and rec["n_empty"] == rec["n"]:
            msg = f"benchmark {bench!r}: all {rec['n']} answers of checkpoint {ckpt} are empty"
            if fail_on_empty:
                raise RuntimeError(msg + " (evaluation.fail_on_empty is set)")
            log.warning("%s; scored 0", msg)
            print(f"WARNING: {msg}; scored 0", flush=True)


def _write_outputs(run: _Run, records: dict, samples: dict, out_dir: Path, timing: dict, data: dict) -> list[Path]:
    """Per benchmark: ``<benchmark>.samples.jsonl`` first, then ``<benchmark>.json`` (atomically)."""
    from lmmcl.evaluation import model as lmmcl_model

    from lmmcl import numerics

    gen_seconds = lmmcl_model.last_task_seconds()
    numerics_record = numerics.record()
    paths = []
    for bench in run.benchmarks:
        rec = records[bench]
        task = rec["task"]
        rows = normalize.sample_rows(samples.get(task, []), rec["metric"])
        atomic_write_text(out_dir / samples_file_name(bench), normalize.dumps_jsonl(rows))
        record = {
            "benchmark": bench,
            "task": task,
            "metric": rec["metric"],
            "metric_key": rec["metric_key"],
            "score": rec["score"],
            "scores": rec["scores"],
            "n": rec["n"],
            "n_empty": rec["n_empty"],
            "checkpoint": run.ckpt,
            "lmms_eval_version": rec["lmms_eval_version"],
            "task_hash": rec["task_hash"],
            # the data read: a parquet's path + sha256, or a hub dataset's pinned revision + commit
            "data": data[bench],
            # generation time of this benchmark; the whole call's breakdown is in "timing"
            "seconds": round(gen_seconds.get(task, 0.0), 3),
            "samples": rec["samples"],
            "limit": run.limit,
            "device": run.device,
            "batch_size": run.batch_size,
            "clock_exact_hours": run.clock_exact_hours,
            "timing": timing,
            "numerics": numerics_record,
        }
        paths.append(atomic_write_json(out_dir / eval_file_name(bench), record))
    return paths

"""The registries: what the workflow knows by name, as data in this folder, read once.

* ``benchmarks.yaml`` -- every benchmark (our lmms-eval tasks and lmms-eval built-ins); the skills
  a config declares (``skills:``) add theirs;
* ``datasets.yaml`` -- every real dataset (source, splits, converter); the skills are added from
  :data:`lmmcl.data.skills.SKILLS`, their one home (the study's and the research priors'
  procedural skills, ``source: synthetic``; a config's declared skills, ``source: declared``);
* ``recipes.yaml`` -- the built-in recipes (lmmcl.recipes);
* ``families.yaml`` -- the architecture keys of every model family (lmmcl.models.families);
* ``hf_configs/`` -- the ``config.json`` of each real family's default checkpoint (lmmcl.models.meta).

Light (yaml and PIL only): the Snakefile, the config checks and the evaluation read it before
anything heavy is imported.
"""
from __future__ import annotations

import json
import sys
from functools import lru_cache
from importlib import resources

import yaml


def _read(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text()


@lru_cache(maxsize=1)
def _benchmarks_yaml() -> dict:
    return yaml.safe_load(_read("benchmarks.yaml"))


def benchmarks() -> dict:
    """{benchmark: spec} of benchmarks.yaml (keys documented there), then the benchmarks of the
    skills declared in this process (a config's ``skills:``, lmmcl.data.skills.declare)."""
    static = _benchmarks_yaml()
    skills = sys.modules.get("lmmcl.data.skills")  # not imported: nothing can have been declared
    declared = skills.declared_benchmarks() if skills is not None else {}
    return {**static, **declared} if declared else static


@lru_cache(maxsize=1)
def _datasets_yaml() -> dict:
    return yaml.safe_load(_read("datasets.yaml"))


def datasets() -> dict:
    """{dataset: spec}: the procedural skills (``source: synthetic`` and their splits), then
    datasets.yaml, then the declared skills (``source: declared``)."""
    from ..data.skills import SKILLS

    procedural = {n: {"source": "synthetic", "splits": list(s.splits)} for n, s in SKILLS.items() if s.make}
    declared = {n: {"source": "declared", "splits": list(s.splits), "description": f"declared skill {n} (config skills.{n})"}
                for n, s in SKILLS.items() if s.kind == "declared"}
    return {**procedural, **_datasets_yaml(), **declared}


@lru_cache(maxsize=1)
def families() -> dict:
    """{family: architecture keys} of families.yaml (lmmcl.models.families.Family fields)."""
    return yaml.safe_load(_read("families.yaml"))


@lru_cache(maxsize=1)
def recipes() -> dict:
    """{recipe: spec} of the built-in recipes (recipes.yaml)."""
    return yaml.safe_load(_read("recipes.yaml"))


@lru_cache(maxsize=1)
def paper_headline() -> dict:
    """The study's headline Learning / held-out numbers per recipe and their source (paper_headline.yaml)."""
    return yaml.safe_load(_read("paper_headline.yaml"))


def hf_config(file: str) -> dict:
    """A shipped checkpoint config.json (hf_configs/<file>)."""
    return json.loads(_read(f"hf_configs/{file}"))


def task_of_benchmark(benchmark: str) -> str:
    """The training task (sequence entry) a registry benchmark measures: its `target_of`, else its
    own name (textvqa_val -> textvqa)."""
    return benchmarks()[benchmark].get("target_of") or benchmark


def benchmark_of_task(task: str) -> str:
    """The target benchmark of training task `task`: the registry benchmark whose `target_of` is
    `task` (textvqa -> textvqa_val), else the benchmark named like the task."""
    for b, spec in benchmarks().items():
        if spec.get("target_of") == task:
            return b
    return task

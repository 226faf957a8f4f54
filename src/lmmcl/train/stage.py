"""One stage of the sequence, and the base model (stage 0).

A stage loads its parent's checkpoint (the previous stage, or the base), applies its recipe,
trains on its task's data, saves `model/` and then writes `manifest.json` last (atomically).
"""
from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from pathlib import Path

from .. import __version__, recipes
from ..models.delta import Snapshot
from ..models.io import (atomic_write_json, file_hashes, load_model, read_manifest,
                         save_model_atomic, save_stage_checkpoint, sha256_file)
from .preflight import check_data, check_stage_inputs

MODEL_DIR = "model"


def _versions() -> dict:
    import torch
    import transformers

    return {"lmmcl": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_training_data(paths: list[str | Path]):
    """Concatenate parquet splits of the data contract, keeping the common columns."""
    import datasets

    from ..data.contract import REQUIRED_COLUMNS, validate_split

    parts = []
    for p in paths:
        validate_split(p)
        ds = datasets.load_dataset("parquet", data_files=str(p), split="train")
        parts.append(ds.select_columns(list(REQUIRED_COLUMNS)))
    return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def _data_record(paths) -> list[dict]:
    return [{"path": str(p), "sha256": sha256_file(p)} for p in paths]


def is_main_process() -> bool:
    """False on the non-zero ranks of a torchrun/accelerate launch."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def _set_threads(threads: int | None):
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def train_stage(*, parent_manifest: str | Path, data: list[str | Path], out_manifest: str | Path,
                method: str, recipe: str, hparams: dict, extra_recipes: dict | None = None,
                stage: int | None = None, task: str | None = None, threads: int | None = None,
                method_spec: dict | None = None, deepspeed: str | None = None,
                checkpoint_format: str = "delta", tracking: dict | None = None) -> dict:
    """`tracking`: config `tracking` (lmmcl.train.tracking; default TensorBoard into the stage folder)."""
    from . import methods
    from . import tracking as tracking_mod
    from .trainer import fit

    _set_threads(threads)
    out_manifest = Path(out_manifest)
    stage_dir = out_manifest.parent
    tracking = tracking_mod.normalize(tracking)
    tracking_mod.check_installed(tracking)
    # parent (and its family), recipe and data rows, before the (possibly minutes-long) model load
    parent_ckpt = check_stage_inputs(parent_manifest, data, recipe=recipe, extra_recipes=extra_recipes,
                                     method_spec=method_spec)
    parent = read_manifest(parent_manifest)
    model, processor = load_model(parent_ckpt)
    # fingerprints of the parent: the stage checkpoint stores only the tensors that differ from it
    snapshot = Snapshot(model) if checkpoint_format == "delta" and is_main_process() else None
    hook = methods.get_hook(method_spec, parent_manifest=parent_manifest, stage=stage, task=task)
    # method hooks draw random numbers (LoRA's A matrices, MoE routers) before the Trainer seeds
    # anything: seed here so the same config + seed gives the same stage in every process
    from transformers import set_seed

    from .hparams import DEFAULT_HPARAMS

    set_seed(int({**DEFAULT_HPARAMS, **hparams}["seed"]))
    if recipe == methods.NO_RECIPE and hook.spec["method"] in methods.RECIPE_OPTIONAL:
        trainable = methods.freeze_all(model)
    else:
        trainable = recipes.apply(model, recipe, extra=extra_recipes)
    model = hook.prepare(model)  # method hook: LoRA wrap, MoE layers, LwF teacher
    if type(hook) is not methods.MethodHook:
        trainable = methods.trainable_report(model, trainable)
    dataset = load_training_data(data)
    data_record = _data_record(data)
    resume_key = config_hash({"recipe": recipe, "hparams": hparams, "extra": extra_recipes, "data": data_record,
                              "method_spec": hook.spec,
                              "parent": parent.get("hashes") or parent.get("config_hash")})
    run_name = f"{method}/stage{stage}_{task}" if stage is not None and task else f"{method}/{stage_dir.name}"
    metrics = fit(model, processor, dataset, hparams, stage_dir / "trainer", resume_key=resume_key, hook=hook,
                  deepspeed=deepspeed, tracking=tracking,
                  run={"stage_dir": stage_dir, "experiment": parent.get("experiment"), "group": method,
                       "run_name": run_name, "tags": {"method": method, "stage": stage, "task": task}})
    tracked = metrics.pop("tracking", None)
    model = hook.finalize(model)  # e.g. LoRA merge_and_unload: the checkpoint is a plain model
    if not is_main_process():  # multi-GPU launch: rank 0 alone writes the checkpoint and manifest
        return {}
    storage = save_stage_checkpoint(model, processor, stage_dir / MODEL_DIR, parent_manifest=parent_manifest,
                                    snapshot=snapshot, fmt=checkpoint_format)
    manifest = {
        "kind": "stage",
        "experiment": parent.get("experiment"),
        "method": method,
        "stage": stage,
        "task": task,
        "family": parent.get("family"),
        "parent": str(Path(parent_manifest)),
        "parent_stage": parent.get("stage", 0),
        "checkpoint": MODEL_DIR,
        "checkpoint_is_local": True,
        "checkpoint_storage": storage,
        "recipe": recipe,
        "hyperparameters": hparams,
        "config_hash": config_hash({"recipe": recipe, "hparams": hparams, "extra": extra_recipes,
                                    **({"method_spec": hook.spec} if method_spec else {})}),
        "method_spec": hook.spec,
        "method_report": hook.report(),
        "trainable": trainable,
        "data": data_record,
        "n_train_examples": len(dataset),
        "metrics": metrics,
        "hashes": file_hashes(stage_dir / MODEL_DIR),
        # training curves (tensorboard/ event files etc.) next to model/, never in the checkpoint
        "tracking": tracked,
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(out_manifest, manifest)
    shutil.rmtree(stage_dir / "trainer", ignore_errors=True)  # in-stage checkpoints are done with
    return manifest


def build_base(*, model_cfg: dict, experiment: str, out_manifest: str | Path, data: list[str | Path],
               hparams: dict, seed: int = 0, threads: int | None = None, tracking: dict | None = None) -> dict:
    """Stage 0. For the tiny family: build from a seeded config and pre-train on the held-out
    skills (so the base has abilities that later stages can forget). For real families: a
    manifest that points at the published checkpoint (downloaded by whoever loads it)."""
    out_manifest = Path(out_manifest)
    family = model_cfg["family"]
    manifest = {"kind": "base", "experiment": experiment, "method": None, "stage": 0, "task": "base",
                "family": family, "versions": _versions()}
    if family != "tiny_llava":
        manifest.update(checkpoint=model_cfg["checkpoint"], checkpoint_is_local=False,
                        config_hash=config_hash(model_cfg))
        atomic_write_json(out_manifest, manifest)
        return manifest

    from ..models.tiny import TinySpec, build_tiny_llava
    from . import tracking as tracking_mod
    from .trainer import fit

    tracking = tracking_mod.normalize(tracking)
    tracking_mod.check_installed(tracking)
    if data:
        check_data(data)  # every row, before building and pre-training the base
    _set_threads(threads)
    spec = TinySpec.from_dict(model_cfg.get("tiny"))
    model, processor = build_tiny_llava(spec, seed=seed)
    trainable = recipes.apply(model, "full")
    metrics = None
    tracked = None
    n = 0
    if data:
        dataset = load_training_data(data)
        n = len(dataset)
        key = config_hash({"model": model_cfg, "hparams": hparams, "seed": seed, "data": _data_record(data)})
        metrics = fit(model, processor, dataset, hparams, out_manifest.parent / "trainer", resume_key=key,
                      tracking=tracking, run={"stage_dir": out_manifest.parent, "experiment": experiment,
                                              "group": "base", "run_name": "base", "tags": {"stage": 0}})
        tracked = metrics.pop("tracking", None)
    save_model_atomic(model, processor, out_manifest.parent / MODEL_DIR)
    manifest.update(
        checkpoint=MODEL_DIR, checkpoint_is_local=True, tiny_spec=spec.__dict__, seed=seed,
        recipe="full", hyperparameters=hparams, trainable=trainable,
        config_hash=config_hash({"model": model_cfg, "hparams": hparams, "seed": seed}),
        data=_data_record(data), n_train_examples=n, metrics=metrics,
        hashes=file_hashes(out_manifest.parent / MODEL_DIR), tracking=tracked,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    atomic_write_json(out_manifest, manifest)
    shutil.rmtree(out_manifest.parent / "trainer", ignore_errors=True)
    return manifest

"""One stage of the sequence, and the base model (stage 0).

A stage loads its parent's checkpoint (the previous stage, or the base), applies its recipe,
trains on its task's data, saves `model/` and then writes `manifest.json` last (atomically;
lmmcl.train.manifest).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .. import numerics, recipes, timing
from ..hashing import config_hash
from ..layout import MODEL_DIR
from ..models.delta import Snapshot
from ..models.io import load_model, read_manifest, save_model_atomic, save_stage_checkpoint
from . import manifest as manifests
from .hparams import complete
from .preflight import check_data, check_stage_inputs

WORK_DIR = "trainer"  # in-stage checkpoints (a killed stage resumes from them), removed when it is done


def load_training_data(paths: list[str | Path]):
    """Concatenate parquet splits of the data contract, keeping the common columns."""
    import datasets

    from ..data.contract import REQUIRED_COLUMNS, validate_split

    parts = []
    for p in paths:
        validate_split(p)
        ds = datasets.load_dataset("parquet", data_files=str(p), split="train")
        parts.append(ds.select_columns(list(REQUIRED_COLUMNS)))
    ds = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    # images stay encoded until the collator needs them: it decodes each example once
    return ds.cast_column("image", datasets.Image(decode=False))


def is_main_process() -> bool:
    """False on the non-zero ranks of a torchrun/accelerate launch."""
    return int(os.environ.get("RANK", "0")) == 0


def _set_threads(threads: int | None):
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def _setup_tracking(tracking: dict | None) -> dict:
    """Config `tracking` normalised, its integrations importable (before any model loads)."""
    from . import tracking as tracking_mod

    tracking = tracking_mod.normalize(tracking)
    tracking_mod.check_installed(tracking)
    return tracking


def _setup_method(model, recipe: str, hparams: dict, extra_recipes, method_spec, **context):
    """(hook, model, trainable report): the recipe freezes/unfreezes, then the method hook
    prepares the model (LoRA wrap, MoE layers, LwF teacher)."""
    from transformers import set_seed

    from . import methods

    hook = methods.get_hook(method_spec, **context)
    # method hooks draw random numbers (LoRA's A matrices, MoE routers) before the Trainer seeds
    # anything: seed here so the same config + seed gives the same stage in every process
    set_seed(int(complete(hparams)["seed"]))
    if recipe == methods.NO_RECIPE and hook.spec["method"] in methods.RECIPE_OPTIONAL:
        trainable = methods.freeze_all(model)
    else:
        trainable = recipes.apply(model, recipe, extra=extra_recipes)
    model = hook.prepare(model)
    if type(hook) is not methods.MethodHook:
        trainable = methods.trainable_report(model, trainable)
    return hook, model, trainable


def _fit(model, processor, data, hparams: dict, stage_dir: Path, *, resume_key: dict, tracking: dict,
         run: dict, hook=None, deepspeed=None) -> tuple[int, dict, dict | None]:
    """Train in place; (examples, run metrics, tracking record)."""
    from .trainer import fit

    dataset = load_training_data(data)
    # the numerics mode and thread count change the numbers: a run killed under other ones restarts
    rec = numerics.record()
    resume_key = {**resume_key, "numerics": {"mode": rec["mode"], "threads": rec["threads"]}}
    with timing.phase("train"):
        metrics = fit(model, processor, dataset, hparams, stage_dir / WORK_DIR, resume_key=config_hash(resume_key),
                      hook=hook, deepspeed=deepspeed, tracking=tracking, run={"stage_dir": stage_dir, **run})
    return len(dataset), metrics, metrics.pop("tracking", None)


def check_deepspeed_launch(deepspeed: str | None, hparams: dict, method_spec: dict | None) -> None:
    """`--deepspeed`: the JSON agrees with this stage (lmmcl.train.dsconfig, the check the workflow
    ran before launching) and a launcher set the process group's variables: without RANK /
    WORLD_SIZE DeepSpeed falls back to MPI discovery and fails on a missing mpi4py."""
    from . import dsconfig
    from .methods import DEFAULT_METHOD

    if not deepspeed:
        return
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ValueError(f"--deepspeed {deepspeed}: no RANK/WORLD_SIZE in the environment; allowed: run under a "
                         f"launcher, e.g. `DS_ACCELERATOR=cpu torchrun --nproc_per_node=2 -m lmmcl.cli train-stage ...` "
                         f"(what the workflow runs with resources.deepspeed)")
    dsconfig.check(dsconfig.load(deepspeed), complete(hparams), world_size=int(os.environ["WORLD_SIZE"]),
                   method=(method_spec or {}).get("method", DEFAULT_METHOD), name=str(deepspeed),
                   where="--hparams / --method-spec of this stage")


def train_stage(*, parent_manifest: str | Path, data: list[str | Path], out_manifest: str | Path,
                method: str, recipe: str, hparams: dict, extra_recipes: dict | None = None,
                stage: int | None = None, task: str | None = None, threads: int | None = None,
                method_spec: dict | None = None, deepspeed: str | None = None,
                checkpoint_format: str = "delta", tracking: dict | None = None) -> dict:
    """`tracking`: config `tracking` (lmmcl.train.tracking; default TensorBoard into the stage folder)."""
    _set_threads(threads)
    out_manifest = Path(out_manifest)
    stage_dir = out_manifest.parent
    tracking = _setup_tracking(tracking)
    # parent (and its family), recipe and data rows, before the (possibly minutes-long) model load
    check_deepspeed_launch(deepspeed, hparams, method_spec)
    parent_ckpt = check_stage_inputs(parent_manifest, data, recipe=recipe, extra_recipes=extra_recipes,
                                     method_spec=method_spec)
    parent = read_manifest(parent_manifest)
    with timing.phase("load"):
        model, processor = load_model(parent_ckpt)
        # fingerprints of the parent: the stage checkpoint stores only the tensors that differ from it
        snapshot = Snapshot(model) if checkpoint_format == "delta" and is_main_process() else None
        hook, model, trainable = _setup_method(model, recipe, hparams, extra_recipes, method_spec,
                                               parent_manifest=parent_manifest, stage=stage, task=task)
    data_record = manifests.data_record(data)
    run_name = f"{method}/stage{stage}_{task}" if stage is not None and task else f"{method}/{stage_dir.name}"
    n, metrics, tracked = _fit(
        model, processor, data, hparams, stage_dir, hook=hook, deepspeed=deepspeed, tracking=tracking,
        resume_key={"recipe": recipe, "hparams": hparams, "extra": extra_recipes, "data": data_record,
                    "method_spec": hook.spec, "parent": parent.get("hashes") or parent.get("config_hash")},
        run={"experiment": parent.get("experiment"), "group": method, "run_name": run_name,
             "tags": {"method": method, "stage": stage, "task": task}})
    from .trainer import WEIGHTS

    # under ZeRO-3 the ranks hold partitions of the weights: fit() gathered them whole on rank 0
    weights = metrics.pop(WEIGHTS, None)
    if not is_main_process():  # multi-process launch: rank 0 alone writes the checkpoint and manifest
        return {}
    model = hook.finalize(model)  # e.g. LoRA merge_and_unload: the checkpoint is a plain model
    with timing.phase("save"):
        storage = save_stage_checkpoint(model, processor, stage_dir / MODEL_DIR, parent_manifest=parent_manifest,
                                        snapshot=snapshot, fmt=checkpoint_format, state_dict=weights)
    written = manifests.write(out_manifest, {
        "kind": "stage", "experiment": parent.get("experiment"), "method": method, "stage": stage, "task": task,
        "family": parent.get("family"), "parent": str(Path(parent_manifest)), "parent_stage": parent.get("stage", 0),
        **manifests.local_checkpoint(storage),
        "recipe": recipe,
        "hyperparameters": hparams,
        "config_hash": config_hash({"recipe": recipe, "hparams": hparams, "extra": extra_recipes,
                                    **({"method_spec": hook.spec} if method_spec else {})}),
        "method_spec": hook.spec,
        "method_report": hook.report(),
        "trainable": trainable,
        "data": data_record,
        "n_train_examples": n,
        "metrics": metrics,
        # training curves (tensorboard/ event files etc.) next to model/, never in the checkpoint
        "tracking": tracked,
        "numerics": numerics.record(),
        "timing": timing.record(),
        "versions": manifests.versions(),
    })
    shutil.rmtree(stage_dir / WORK_DIR, ignore_errors=True)  # in-stage checkpoints are done with
    return written


def _point_at_shipped_base(model_cfg: dict, fields: dict, out_manifest: Path) -> dict:
    """A tiny base that was pre-trained once and shipped (`model.checkpoint`, e.g.
    pretrained/tiny_default/model): the manifest points at it as at a hub checkpoint and records the
    sha256 of its files, after checking them against the shipped manifest. Nothing is trained."""
    from ..models import integrity, shipped

    folder = shipped.resolve(model_cfg["checkpoint"])
    integrity.verify(folder)
    return manifests.write(out_manifest, {
        **fields, "checkpoint": str(folder), "revision": None, "checkpoint_is_local": False,
        "tiny_spec": shipped.tiny_spec(folder), "shipped_base": shipped.record(folder),
        "config_hash": config_hash(model_cfg)})


def build_base(*, model_cfg: dict, experiment: str, out_manifest: str | Path, data: list[str | Path],
               hparams: dict, seed: int = 0, threads: int | None = None, tracking: dict | None = None) -> dict:
    """Stage 0. For the tiny family: a shipped pre-trained base (`model.checkpoint`), or built from
    a seeded config and pre-trained on the held-out skills (so the base has abilities that later
    stages can forget). For real families: a manifest that points at the published checkpoint
    (downloaded by whoever loads it)."""
    out_manifest = Path(out_manifest)
    fields = manifests.base_fields(experiment=experiment, family=model_cfg["family"])
    if model_cfg["family"] != "tiny_llava":
        # model.revision pins the hub checkpoint (a commit, tag or branch): recorded here, and every
        # loader of this base asks the hub for exactly it (models.io.checkpoint_of: "<id>@<revision>")
        return manifests.write(out_manifest, {**fields, "checkpoint": model_cfg["checkpoint"],
                                              "revision": model_cfg.get("revision"),
                                              "checkpoint_is_local": False, "config_hash": config_hash(model_cfg)})

    if model_cfg.get("checkpoint"):
        return _point_at_shipped_base(model_cfg, fields, out_manifest)

    from ..models.tiny import TinySpec, build_tiny_llava

    tracking = _setup_tracking(tracking)
    if data:
        check_data(data)  # every row, before building and pre-training the base
    _set_threads(threads)
    spec = TinySpec.from_dict(model_cfg.get("tiny"))
    with timing.phase("load"):
        model, processor = build_tiny_llava(spec, seed=seed)
        numerics.prepare_model(model)
    trainable = recipes.apply(model, "full")
    n, metrics, tracked = 0, None, None
    data_record = manifests.data_record(data)  # sha256 of each split, for the resume key and the manifest
    if data:
        n, metrics, tracked = _fit(
            model, processor, data, hparams, out_manifest.parent, tracking=tracking,
            resume_key={"model": model_cfg, "hparams": hparams, "seed": seed, "data": data_record},
            run={"experiment": experiment, "group": "base", "run_name": "base", "tags": {"stage": 0}})
    with timing.phase("save"):
        save_model_atomic(model, processor, out_manifest.parent / MODEL_DIR)
    written = manifests.write(out_manifest, {
        **fields, **manifests.local_checkpoint(), "tiny_spec": spec.__dict__, "seed": seed,
        "recipe": "full", "hyperparameters": hparams, "trainable": trainable,
        "config_hash": config_hash({"model": model_cfg, "hparams": hparams, "seed": seed}),
        "data": data_record, "n_train_examples": n, "metrics": metrics, "tracking": tracked,
        "numerics": numerics.record(), "timing": timing.record(),
    })
    shutil.rmtree(out_manifest.parent / WORK_DIR, ignore_errors=True)
    return written

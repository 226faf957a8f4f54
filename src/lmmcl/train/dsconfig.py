"""DeepSpeed configs of a stage: which JSON, and whether it agrees with the stage before launch.

Light on purpose (standard library only): the workflow's planning code (`lmmcl.config.Plan`,
run by Snakemake with PyYAML only) calls `check` for every stage before any job is submitted,
and `lmmcl train-stage` calls it again before loading the model. HF's Trainer would find some
of these contradictions itself, but only after the processes started and the model loaded (its
`HfTrainerDeepSpeedConfig.trainer_config_finalize` in transformers/integrations/deepspeed.py);
DeepSpeed finds others later still, at its engine's initialisation.

What a DeepSpeed JSON may say, for a stage trained by `lmmcl.train.trainer.fit`:
- batch keys (`train_micro_batch_size_per_gpu`, `gradient_accumulation_steps`,
  `train_batch_size`) and `gradient_clipping`: `"auto"` (filled from the stage's hyperparameters
  by the HF integration) or exactly the stage's value: `batch_size`, `grad_accum`,
  `batch_size x grad_accum x processes` and `max_grad_norm`;
- `bf16.enabled` / `fp16.enabled`: `"auto"`, or the stage's `bf16`; fp16 is never used;
- no `optimizer` / `scheduler` block: the stage's optimizer is lmmcl's own torch AdamW with one
  learning rate per role (`role_lr`) and the Trainer's schedule (`warmup_ratio`, `scheduler`);
  a DeepSpeed block would replace both (the HF integration hands DeepSpeed its torch optimizer
  only when the JSON has none: "Optimizer" in the transformers DeepSpeed docs);
- `zero_optimization.offload_optimizer.device` `cpu`/`nvme` only with
  `zero_force_ds_cpu_optimizer: false`: DeepSpeed refuses a client (torch) optimizer under
  ZeRO-Offload otherwise (deepspeed/runtime/engine.py, `_configure_basic_optimizer`);
- ZeRO-3 (`zero_optimization.stage: 3`): `stage3_gather_16bit_weights_on_model_save: true` (the
  stage's checkpoint is cut from the weights gathered on rank 0 by accelerate's
  `Accelerator.get_state_dict`, which refuses otherwise), and no method that rebuilds the model
  around its partitioned weights after training (`ZERO3_UNSUPPORTED`).
"""
from __future__ import annotations

import json
from pathlib import Path

SHIPPED = ("zero2", "zero3")  # config/deepspeed/<name>.json
REPO = Path(__file__).resolve().parents[3]  # src/lmmcl/train/ -> the repository (editable install)
# Methods ZeRO-3 cannot serve here: LoRA merges its adapters into the base weights at the end of
# the stage (PEFT's merge_and_unload on the model, every weight partitioned across the ranks),
# MoE adds expert layers and saves a full checkpoint from the model; both would need every
# weight gathered on one rank around that code, which this pipeline does only for the final
# state dict. ZeRO-2 keeps whole weights on every rank and serves them.
ZERO3_UNSUPPORTED = {
    "lora": "LoRA merges its adapters into the base weights after training (merge_and_unload), "
            "which needs whole weights; ZeRO-3 leaves each rank a partition",
    "moe": "the MoE baseline adds expert layers and saves the whole model, which needs whole weights; "
           "ZeRO-3 leaves each rank a partition",
}


class DeepSpeedConfigError(ValueError):
    pass


def resolve(value: str | None, root: str | Path | None = None) -> Path | None:
    """The JSON of config `resources.deepspeed`: `zero2`/`zero3` (the repository's
    config/deepspeed/), a path (relative to `root`, default the working directory), or None."""
    if not value:
        return None
    path = (REPO / "config" / "deepspeed" / f"{value}.json") if value in SHIPPED else Path(root or ".") / value
    if not path.is_file():
        raise DeepSpeedConfigError(f"resources.deepspeed: {value!r} is neither one of {list(SHIPPED)} "
                                   f"(config/deepspeed/) nor an existing JSON file")
    return path


def load(path: str | Path) -> dict:
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DeepSpeedConfigError(f"resources.deepspeed: {path} is not a readable JSON file ({e})") from None
    if not isinstance(cfg, dict):
        raise DeepSpeedConfigError(f"resources.deepspeed: {path} holds {type(cfg).__name__}, not a JSON object")
    return cfg


def zero_stage(cfg: dict) -> int:
    return int((cfg.get("zero_optimization") or {}).get("stage", 0) or 0)


def _auto(v) -> bool:
    return isinstance(v, str) and v == "auto"


def check(cfg: dict, hparams: dict, *, world_size: int, method: str = "sft", name: str = "the DeepSpeed config",
          where: str = "the stage") -> None:
    """Raise DeepSpeedConfigError naming every key of `cfg` (the JSON `name`) that contradicts
    `hparams` (complete, as `hparams.complete` gives them) of `where`, trained by `world_size`
    processes with method kind `method`."""
    problems = []

    def must_equal(key: str, expected, hp_key: str):
        v = cfg.get(key, "auto")
        if not _auto(v) and v != expected:
            problems.append(f"{key}: {v!r} contradicts {hp_key} = {expected!r} (allowed: \"auto\" or {expected!r})")

    bs, ga = int(hparams["batch_size"]), int(hparams["grad_accum"])
    must_equal("train_micro_batch_size_per_gpu", bs, "batch_size")
    must_equal("gradient_accumulation_steps", ga, "grad_accum")
    must_equal("train_batch_size", bs * ga * world_size,
               f"batch_size x grad_accum x processes ({bs} x {ga} x {world_size})")
    v = cfg.get("gradient_clipping", "auto")
    if not _auto(v) and float(v) != float(hparams["max_grad_norm"]):
        problems.append(f"gradient_clipping: {v!r} contradicts max_grad_norm = {hparams['max_grad_norm']!r} "
                        f"(allowed: \"auto\" or {hparams['max_grad_norm']!r})")
    bf16 = (cfg.get("bf16") or {}).get("enabled", "auto")
    if not _auto(bf16) and bool(bf16) != bool(hparams["bf16"]):
        problems.append(f"bf16.enabled: {bf16!r} contradicts bf16 = {hparams['bf16']!r} (allowed: \"auto\" or "
                        f"{bool(hparams['bf16'])!r})")
    fp16 = (cfg.get("fp16") or {}).get("enabled", "auto")
    if not _auto(fp16) and fp16:
        problems.append("fp16.enabled: true, but stages train in fp32 or bf16 (allowed: \"auto\" or false)")
    for block, replaces in (("optimizer", "lmmcl's AdamW with one lr per role (role_lr)"),
                            ("scheduler", "the stage's warmup_ratio/scheduler")):
        if block in cfg:
            problems.append(f"{block}: a DeepSpeed {block} would replace {replaces}; allowed: no {block!r} block")
    zero = cfg.get("zero_optimization") or {}
    stage = zero_stage(cfg)
    if stage not in (0, 1, 2, 3):
        problems.append(f"zero_optimization.stage: {stage!r}; allowed: 0, 1, 2, 3")
    offload = (zero.get("offload_optimizer") or {}).get("device", "none")
    if offload not in (None, "none") and cfg.get("zero_force_ds_cpu_optimizer", True):
        problems.append(f"zero_optimization.offload_optimizer.device: {offload!r} with lmmcl's torch optimizer "
                        "needs zero_force_ds_cpu_optimizer: false (DeepSpeed refuses a client optimizer under "
                        "ZeRO-Offload otherwise); allowed: \"none\", or set that key")
    if stage == 3 and zero.get("stage3_gather_16bit_weights_on_model_save") is not True:
        problems.append("zero_optimization.stage3_gather_16bit_weights_on_model_save: must be true under ZeRO-3 "
                        "(the stage checkpoint is cut from the weights gathered on rank 0 by accelerate's "
                        "get_state_dict, which refuses otherwise)")
    if stage == 3 and method in ZERO3_UNSUPPORTED:
        problems.append(f"zero_optimization.stage: 3 with method {method!r}: {ZERO3_UNSUPPORTED[method]}; "
                            "allowed: ZeRO-2 (resources.deepspeed: zero2) or plain DDP (null) for this method")
    if problems:
        raise DeepSpeedConfigError(f"resources.deepspeed ({name}) contradicts {where}: " + "; ".join(problems))

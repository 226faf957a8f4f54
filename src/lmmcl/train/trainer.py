"""The single training entry point: HF Trainer with our collator and per-role learning rates.

Method hooks (LwF loss, MoE, LoRA, WiSE-FT merge) attach here; the plain recipe path is a
supervised fine-tune of the parameters the recipe left trainable.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from ..atomic import WriteFailed, atomic_write_json
from ..models import integrity
from ..models.families import family_of_model
from ..recipes import role_of
from .collate import AnswerOnlyCollator
from .hparams import complete
from ..models.io import attach_method_layers
from . import tracking as tracking_mod
from .methods import unwrap
from .preemption import Preempted, SignalFlag

class _LossLog(TrainerCallback):
    def __init__(self):
        self.losses: list[float] = []

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


class _MemoryLog(TrainerCallback):
    """What training holds besides the weights, taken at the first optimizer step (grads still
    there, optimizer state created): frozen tensors must have neither."""

    def __init__(self):
        self.report: dict = {}

    def on_optimizer_step(self, args, state, control, model=None, optimizer=None, **kw):
        if self.report or model is None:
            return
        params = list(model.parameters())
        grads = [p.grad for p in params if p.grad is not None]
        opt_bytes = 0
        if optimizer is not None:
            for st in inner_optimizer(optimizer).state.values():
                opt_bytes += sum(v.numel() * v.element_size() for v in st.values() if torch.is_tensor(v))
        # under DeepSpeed the gradients live in its ZeRO optimizer's buffers, not in p.grad (0 here)
        self.report = {
            "grad_tensors": len(grads),
            "grad_bytes": sum(g.numel() * g.element_size() for g in grads),
            "frozen_with_grad": sum(1 for p in params if not p.requires_grad and p.grad is not None),
            "optimizer_state_bytes": opt_bytes,
            "cuda_peak_bytes": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
        }


def inner_optimizer(optimizer):
    """The torch optimizer that holds the state: accelerate's wrapper and DeepSpeed's ZeRO
    optimizer each keep the one they wrap as `.optimizer` (under ZeRO it steps this rank's
    partition of the flattened fp32 weights only)."""
    for _ in range(4):
        inner = getattr(optimizer, "optimizer", None)
        if inner is None:
            break
        optimizer = inner
    return optimizer


class _StopOnSignal(TrainerCallback):
    """Handlers installed for the length of `Trainer.train`; at the first step end after a signal
    (on any rank) every rank saves an in-stage checkpoint and stops (lmmcl.train.preemption)."""

    def __init__(self):
        self.flag = SignalFlag()
        self.stopped_at: int | None = None  # global step of the save

    def on_train_begin(self, args, state, control, **kw):
        self.flag.install()

    def on_train_end(self, args, state, control, **kw):
        self.flag.restore()

    def on_step_end(self, args, state, control, **kw):
        if state.global_step < state.max_steps and self.flag.agreed():
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control


class _SealCheckpoint(TrainerCallback):
    """After every in-stage save (all ranks' files written), rank 0 records each file's size and
    sha256 (lmmcl.models.integrity.seal): a resume checks them and names a damaged file."""

    def on_save(self, args, state, control, **kw):
        import torch.distributed as dist

        several = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if several:
            dist.barrier()  # every rank's DeepSpeed files are on disk
        if args.process_index == 0:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                integrity.seal(folder)


class CheckpointWriteFailed(WriteFailed):
    """An in-stage save failed (a full disk, a quota, an I/O error): the previous in-stage
    checkpoint is intact. torch.save and safetensors report a full disk as RuntimeError /
    SafetensorError, not OSError, so any exception of the save is reported this way, with the free
    space of the file system when it is nearly full."""

    def __init__(self, cause: Exception, folder: Path, previous: Path | None):
        import shutil

        free = shutil.disk_usage(folder.parent).free if folder.parent.exists() else None
        full = getattr(cause, "errno", None) in (28, 122) or "No space left" in str(cause) or (
            free is not None and free < 64 << 20)
        kept = (f"the previous in-stage checkpoint {previous} is intact and a rerun resumes from it"
                if previous else "there is no earlier in-stage checkpoint: a rerun restarts the stage")
        space = (f"; {folder.parent} has {free / 2**20:.1f} MiB free: free space (or raise the quota) and rerun"
                 if full else "")
        OSError.__init__(self, getattr(cause, "errno", None) or 5,
                         f"saving in-stage checkpoint {folder} failed ({type(cause).__name__}: "
                         f"{str(cause).strip()[:300]}); {kept} (the partial {folder.name} is deleted then){space}")


class _LogState(TrainerCallback):
    """What StageTrainer.log adds: the clock of tokens/s starts once training (or a resumed run,
    its state loaded) begins; each param group's lr is taken after the optimizer step and before
    the scheduler's, as the Trainer takes its own `learning_rate`."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kw):
        self.trainer._last_log = (time.perf_counter(), state.num_input_tokens_seen)

    def on_optimizer_step(self, args, state, control, optimizer=None, **kw):
        if optimizer is not None:
            self.trainer._step_lrs = [float(g["lr"]) for g in optimizer.param_groups]


class StageTrainer(Trainer):
    """Trainer whose optimizer gives each role (vision tower, projector, ...) its own lr."""

    def __init__(self, *a, role_lr: dict | None = None, hook=None, **kw):
        self.role_lr = dict(role_lr or {})
        self.hook = hook  # method hook (train/methods): may replace the loss
        self._lr_group_of_role: dict[str, int] = {}  # trained role -> optimizer param group
        self._last_log = None  # (time, tokens seen) at the previous log: tokens/s per interval
        self._step_lrs: list[float] = []  # lr of each param group at the last optimizer step
        super().__init__(*a, **kw)
        self.add_callback(_LogState(self))

    # Logged at every logging step next to the Trainer's loss / grad_norm / learning_rate (the
    # first group's lr only): the lr of each trained role and the input tokens per second.
    LOG_ROLES = ("vision_tower", "projector", "newline", "embeddings", "llm_layers", "llm_norm", "lm_head", "llm")

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "loss" in logs:
            for role, i in self._lr_group_of_role.items():
                if i < len(self._step_lrs):
                    logs[f"lr/{role}"] = self._step_lrs[i]
            now, seen = time.perf_counter(), self.state.num_input_tokens_seen
            if self._last_log is not None and now > self._last_log[0]:
                logs["tokens_per_second"] = round((seen - self._last_log[1]) / (now - self._last_log[0]), 2)
            self._last_log = (now, seen)
        super().log(logs, start_time)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.hook is None or not self.hook.has_loss:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

        def default_loss():
            return super(StageTrainer, self).compute_loss(model, inputs, return_outputs=True,
                                                          num_items_in_batch=num_items_in_batch)

        return self.hook.compute_loss(default_loss, model, inputs, return_outputs, self._hook_items(num_items_in_batch))

    def _hook_items(self, num_items_in_batch):
        """The count a hook divides its own summed loss terms by, so that they scale like the
        Trainer's cross-entropy. With several processes `num_items_in_batch` counts the answer
        tokens of all of them, and `Trainer.compute_loss` multiplies its loss by the process count
        before DDP/DeepSpeed average the gradients (transformers/trainer.py, `compute_loss`,
        `average_tokens_across_devices`); a term divided by the global count alone would weigh
        1/processes of what it weighs in one process (LwF's KL did, before this)."""
        if (num_items_in_batch is None or not self.args.average_tokens_across_devices
                or not (self.model_accepts_loss_kwargs or self.compute_loss_func)):
            return num_items_in_batch
        scale = self.accelerator.num_processes // self.get_tp_size() if self.args.n_gpu <= 1 else self.args.n_gpu
        return num_items_in_batch / scale if scale > 1 else num_items_in_batch

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Reload an in-stage checkpoint through `from_pretrained`.

        transformers 5 saves LLaVA-family weights under legacy on-disk names; the Trainer's own
        resume path loads them with `load_state_dict(strict=False)`, which silently restores
        nothing. `from_pretrained` applies the key mapping; the copy must then match exactly.
        """
        model = model or self.model
        if hasattr(model, "peft_config") and not self.is_deepspeed_enabled:
            super()._load_from_checkpoint(resume_from_checkpoint, model)  # the adapters
            return self._load_full_trained(model, Path(resume_from_checkpoint))
        if self.is_deepspeed_enabled or not hasattr(type(model), "from_pretrained"):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        dtype = next(model.parameters()).dtype
        saved = type(model).from_pretrained(resume_from_checkpoint, dtype=dtype)
        saved = attach_method_layers(saved, resume_from_checkpoint)  # MoE baseline layers
        model.load_state_dict(saved.state_dict(), strict=True)

    # A PEFT model's checkpoint holds its adapters only; parameters the stage's recipe trains in
    # full next to them (LoRA + projector) are saved here, before the Trainer writes the folder's
    # trainer_state.json (what marks it complete), and restored on resume.
    FULL_TRAINED = "lmmcl_full_trained.safetensors"

    @staticmethod
    def _full_trained(model) -> dict:
        if not hasattr(model, "peft_config"):
            return {}
        return {n: p for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n}

    def _save_checkpoint(self, model, trial):
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        out = Path(self._get_output_dir(trial=trial))
        folder = out / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        previous = [d for d in out.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if d != folder and (d / "trainer_state.json").is_file()]
        try:
            return self._save_checkpoint_files(model, trial, folder)
        except Exception as e:
            if isinstance(e, WriteFailed):
                raise
            raise CheckpointWriteFailed(e, folder, max(previous, key=lambda d: int(d.name.rsplit("-", 1)[1]), default=None)) from e

    def _save_checkpoint_files(self, model, trial, folder: Path):
        extra = self._full_trained(self.model)
        if extra and self.args.should_save:
            from safetensors.torch import save_file

            folder.mkdir(parents=True, exist_ok=True)
            save_file({n: p.detach().cpu().contiguous().clone() for n, p in extra.items()}, str(folder / self.FULL_TRAINED))
        return super()._save_checkpoint(model, trial)

    def _load_full_trained(self, model, folder: Path):
        extra = self._full_trained(model)
        if not extra:
            return
        if not (folder / self.FULL_TRAINED).is_file():
            raise FileNotFoundError(f"in-stage checkpoint {folder} lacks {self.FULL_TRAINED} (the fully trained "
                                    f"parameters next to the adapters); delete {folder.parent} to restart the stage")
        from safetensors.torch import load_file

        saved = load_file(str(folder / self.FULL_TRAINED))
        missing = sorted(set(extra) - set(saved))
        if missing:
            raise ValueError(f"in-stage checkpoint {folder}: {self.FULL_TRAINED} lacks {missing[:3]}")
        with torch.no_grad():
            for n, p in extra.items():
                p.copy_(saved[n].to(p.device, p.dtype))

    def _get_train_sampler(self, train_dataset=None):
        # fit() already laid the examples out in their (seeded) training order
        return torch.utils.data.SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        model = unwrap(model or self.model)  # a PEFT model's parameters keep their native names
        family = family_of_model(model)
        unknown = sorted(set(self.role_lr) - set(family.roles))
        if unknown:
            raise ValueError(f"role_lr names unknown role(s) {unknown}; family {family.name} has {sorted(family.roles)}")
        groups: dict[tuple[float, float], list] = {}
        log_role: dict[str, tuple[float, float]] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue  # frozen tensors get no optimizer state
            role = role_of(name, family, list(self.role_lr))
            lr = self.role_lr[role] if role else self.args.learning_rate
            wd = self.args.weight_decay if p.ndim >= 2 else 0.0
            groups.setdefault((lr, wd), []).append(p)
            # roles of role_lr are unions of these finest roles, so the lr is one per logged role
            log_role.setdefault(role_of(name, family, list(self.LOG_ROLES)) or "other", (lr, wd))
        param_groups = [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
        index = {key: i for i, key in enumerate(groups)}
        self._lr_group_of_role = {role: index[key] for role, key in log_role.items()}
        # foreach: torch picks the per-tensor loop on CPU by default; the multi-tensor kernels give
        # the same weights bit for bit (checked on the tiny base) and a faster step
        self.optimizer = torch.optim.AdamW(param_groups, lr=self.args.learning_rate, foreach=True)
        return self.optimizer


def training_arguments(hp: dict, work_dir: Path, deepspeed: str | None = None, tracking: dict | None = None,
                       run_name: str | None = None) -> TrainingArguments:
    cuda = torch.cuda.is_available()
    steps = hp.get("steps")
    tracking = tracking_mod.normalize(tracking)
    return TrainingArguments(
        output_dir=str(work_dir),
        max_steps=int(steps) if steps else -1,
        num_train_epochs=1,  # epochs are unrolled into the training order (see training_order)
        per_device_train_batch_size=int(hp["batch_size"]),
        gradient_accumulation_steps=int(hp["grad_accum"]),
        learning_rate=float(hp["lr"]),
        warmup_steps=hp["warmup_ratio"],  # transformers 5: a float < 1 is a ratio of total steps
        lr_scheduler_type=hp["scheduler"],
        weight_decay=float(hp["weight_decay"]),
        max_grad_norm=float(hp["max_grad_norm"]),
        bf16=bool(hp["bf16"]) and cuda,
        gradient_checkpointing=bool(hp["gradient_checkpointing"]),
        # non-reentrant: with frozen embeddings (every LLM-part recipe) the reentrant variant
        # would pass no gradient into the checkpointed layers
        gradient_checkpointing_kwargs={"use_reentrant": False},
        deepspeed=deepspeed,  # a ZeRO JSON (config/deepspeed/); the launcher sets WORLD_SIZE
        logging_steps=tracking_mod.logging_steps(tracking, steps),
        save_strategy="steps" if hp.get("save_steps") else "no",
        save_steps=int(hp["save_steps"]) if hp.get("save_steps") else 500,
        save_total_limit=1,
        # the Trainer's own integrations (config `tracking`; lmmcl.train.tracking sets where they write)
        report_to=tracking["report_to"] or "none",
        run_name=run_name,
        include_num_input_tokens_seen="non_padding",  # tokens/s in the logs
        seed=int(hp["seed"]),
        data_seed=int(hp["seed"]),
        dataloader_num_workers=0,
        remove_unused_columns=False,
        use_cpu=not cuda,
        disable_tqdm=False,
    )


def training_order(n: int, needed: int, seed: int) -> list[int]:
    """Example indices in training order: a fresh seeded permutation per epoch, unrolled.

    Laying the order out up front (trained with a sequential sampler) makes it a pure function
    of (n, seed): a resumed run skips exactly the batches it had consumed, across epoch
    boundaries too, which the Trainer's own per-epoch sampler reseeding does not guarantee.
    """
    import numpy as np

    order: list[int] = []
    epoch = 0
    while len(order) < needed:
        order.extend(np.random.default_rng([seed, epoch]).permutation(n).tolist())
        epoch += 1
    return order[:needed]


def resumable_checkpoint(work_dir: Path, key: str) -> str | None:
    """The newest complete in-stage checkpoint in `work_dir` written under the same `key`.

    State left by another configuration (different key) is deleted, never resumed. The HF
    Trainer writes a checkpoint folder file by file and `trainer_state.json` last, so a folder
    without it was cut off by a kill and is deleted too. Only the first process (RANK 0) deletes
    and writes; the other ranks of a launch read the same answer (rank 0 writes files alone).
    """
    marker = work_dir / "resume_key.json"
    if int(os.environ.get("RANK", "0")) != 0:
        return _newest_complete(work_dir) if _same_key(marker, key) else None
    if work_dir.exists() and not _same_key(marker, key):
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(marker, {"key": key})  # a kill mid-write must not leave a truncated marker
    for d in work_dir.glob("checkpoint-*"):
        if not (d / "trainer_state.json").is_file():
            shutil.rmtree(d)
    return _newest_complete(work_dir)


def _same_key(marker: Path, key: str) -> bool:
    """The marker names this key (an unreadable one, written by hand?, does not: start over)."""
    try:
        return marker.is_file() and json.loads(marker.read_text()).get("key") == key
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, OSError):
        return False


def _newest_complete(work_dir: Path) -> str | None:
    complete = [d for d in work_dir.glob("checkpoint-*") if (d / "trainer_state.json").is_file()]
    return str(max(complete, key=lambda d: int(re.search(r"(\d+)$", d.name).group(1)))) if complete else None


def fit(model, processor, dataset, hp: dict, work_dir: str | Path, resume_key: str | None = None,
        hook=None, deepspeed: str | None = None, tracking: dict | None = None, run: dict | None = None) -> dict:
    """Train `model` in place on `dataset` (rows with image/question/answer); return run metrics.

    With `save_steps`, the Trainer keeps its last in-stage checkpoint in `work_dir`; a rerun
    with the same `resume_key` (config + parent + data) continues from it after a kill. A SIGTERM
    or SIGUSR1 (a preemption, SLURM's warning before the time limit) saves one at the end of the
    running step and raises `Preempted` (lmmcl.train.preemption), with or without `save_steps`.
    `tracking` is config `tracking` (default: TensorBoard); `run` names the run: `stage_dir`
    (where the curves go, default the parent of `work_dir`), `experiment`, `group` (the
    method), `run_name`, `tags`. The returned metrics hold the tracking record under "tracking".
    """
    hp = complete(hp)
    dataset = ordered_examples(dataset, hp)
    work_dir = Path(work_dir)
    resume = resumable_checkpoint(work_dir, resume_key or "")  # also a checkpoint saved on a signal
    if resume:
        print(f"resuming from in-stage checkpoint {resume}", flush=True)
    run = dict(run or {})
    stage_dir = Path(run.get("stage_dir") or work_dir.parent)
    run_name = run.get("run_name") or stage_dir.name
    tracking = tracking_mod.normalize(tracking)
    args = training_arguments(hp, work_dir, deepspeed=deepspeed, tracking=tracking, run_name=run_name)
    main = args.process_index == 0
    if main:
        tracking_mod.prepare_stage_dir(tracking, stage_dir, resuming=bool(resume))
    # where the integrations write (environment variables they read), restored after training
    env, restore_env = tracking_mod.set_environment(tracking, stage_dir, experiment=run.get("experiment"),
                                                    group=run.get("group"), tags=run.get("tags"))
    if main and "mlflow" in tracking["report_to"]:
        tracking_mod.ensure_mlflow_experiment(env)
    log, mem, stop = _LossLog(), _MemoryLog(), _StopOnSignal()
    if resume and args.process_index == 0 and not integrity.verify_seal(resume):
        print(f"in-stage checkpoint {resume} has no seal (killed while sealing): resuming unverified", flush=True)
    if not deepspeed:
        _skip_unused_deepspeed_import()
    trainer = StageTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=AnswerOnlyCollator(processor, end_of_turn=family_of_model(unwrap(model)).end_of_turn),
        callbacks=[log, mem, stop, _SealCheckpoint()],
        role_lr=hp["role_lr"],
        hook=hook,
    )
    t0 = time.time()
    try:
        out = trainer.train(resume_from_checkpoint=resume)
    finally:
        tracking_mod.finish_runs(tracking)  # one run per stage, also when stages share a process
        restore_env()
    if stop.stopped_at is not None:
        raise Preempted(stop.flag.received, stop.stopped_at, str(work_dir / f"checkpoint-{stop.stopped_at}"))
    seconds = time.time() - t0
    return {**run_metrics(out, args, log.losses, seconds, resume), "memory": _memory_record(mem.report, seconds),
            "distributed": distributed_record(trainer),
            "tracking": tracking_mod.manifest_record(tracking, stage_dir, env, run_name, args.logging_steps) if main else None,
            WEIGHTS: gathered_weights(trainer)}


# fit()'s result key of the trained weights gathered on rank 0 under ZeRO-3 (None otherwise: the
# model holds whole weights); the caller pops it before the metrics go into the manifest
WEIGHTS = "_gathered_state_dict"


def _skip_unused_deepspeed_import() -> None:
    """accelerate's `unwrap_model` imports DeepSpeed whenever it is installed, to test whether the
    model is a DeepSpeedEngine (0.85 s per training process, measured: DeepSpeed imports MLflow).
    A model can only be one if DeepSpeed was imported already, so the test is made conditional on
    that; runs with `--deepspeed` are untouched."""
    import sys

    from accelerate.utils import other

    if getattr(other.is_deepspeed_available, "_lmmcl", False):
        return
    installed = other.is_deepspeed_available

    def is_deepspeed_available():
        return "deepspeed" in sys.modules and installed()

    is_deepspeed_available._lmmcl = True
    other.is_deepspeed_available = is_deepspeed_available


def gathered_weights(trainer) -> dict | None:
    """Under ZeRO-3 each rank holds a partition of every weight: gather them, one layer at a time,
    into whole CPU tensors on rank 0 (accelerate's `get_state_dict`, DeepSpeed's
    `_zero3_consolidated_16bit_state_dict`; every rank must call it). None without ZeRO-3."""
    if not (trainer.is_deepspeed_enabled and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3):
        return None
    return trainer.accelerator.get_state_dict(trainer.model_wrapped) or None


def distributed_record(trainer) -> dict:
    """How the stage ran: processes, their process group's backend, DeepSpeed's ZeRO stage and
    accelerator (`cpu` with DS_ACCELERATOR=cpu) when it ran under DeepSpeed."""
    import torch.distributed as dist

    rec = {"world_size": trainer.args.world_size,
           "backend": dist.get_backend() if dist.is_available() and dist.is_initialized() else None,
           "deepspeed": None}
    if trainer.is_deepspeed_enabled:
        from deepspeed.accelerator import get_accelerator

        rec["deepspeed"] = {"zero_stage": trainer.accelerator.state.deepspeed_plugin.zero_stage,
                            "accelerator": get_accelerator().device_name()}
    return rec


def _memory_record(report: dict, seconds: float) -> dict | None:
    """This process's memory report (at the first optimizer step) plus its peak RSS, and with
    several processes every rank's (`per_rank`, rank order): ZeRO partitions the optimizer state,
    so the ranks differ from DDP's and from each other."""
    import resource

    import torch.distributed as dist

    mine = {**(report or {}), "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "train_seconds": round(seconds, 2)}
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return mine if report else None
    ranks = [None] * dist.get_world_size()
    dist.all_gather_object(ranks, mine)
    return {**mine, "per_rank": ranks}


def ordered_examples(dataset, hp: dict):
    """The examples a run trains on, in order: the first `limit` ones, laid out for `steps`
    optimizer steps (or `epochs` passes) over every process (training_order)."""
    if hp.get("limit"):
        dataset = dataset.select(range(min(int(hp["limit"]), len(dataset))))
    world = max(1, int(os.environ.get("WORLD_SIZE", "1")))
    per_step = int(hp["batch_size"]) * int(hp["grad_accum"]) * world
    needed = int(hp["steps"]) * per_step if hp.get("steps") else max(per_step, round(float(hp["epochs"]) * len(dataset)))
    return dataset.select(training_order(len(dataset), needed, int(hp["seed"])))


def run_metrics(out, args, losses: list[float], seconds: float, resumed: str | None) -> dict:
    """Steps, examples, losses and speed of a finished `Trainer.train()` for the manifest."""
    steps = out.global_step
    examples = steps * args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    return {
        "steps": steps,
        "resumed_from": Path(resumed).name if resumed else None,
        "examples_seen": examples,
        "train_loss_mean": float(out.training_loss),
        "loss_first_log": losses[0] if losses else math.nan,
        "loss_last_log": losses[-1] if losses else math.nan,
        "seconds": round(seconds, 2),
        "examples_per_second": round(examples / seconds, 2) if seconds else None,
    }

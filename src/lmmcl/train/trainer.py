"""The single training entry point: HF Trainer with our collator and per-role learning rates.

Method hooks (LwF loss, MoE, LoRA, WiSE-FT merge) attach here; the plain recipe path is a
supervised fine-tune of the parameters the recipe left trainable.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from ..models.families import family_of_model
from ..recipes import role_of
from .collate import AnswerOnlyCollator
from .hparams import DEFAULT_HPARAMS

class _LossLog(TrainerCallback):
    def __init__(self):
        self.losses: list[float] = []

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


class StageTrainer(Trainer):
    """Trainer whose optimizer gives each role (vision tower, projector, ...) its own lr."""

    def __init__(self, *a, role_lr: dict | None = None, **kw):
        self.role_lr = dict(role_lr or {})
        super().__init__(*a, **kw)

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        model = model or self.model
        family = family_of_model(model)
        unknown = sorted(set(self.role_lr) - set(family.roles))
        if unknown:
            raise ValueError(f"role_lr names unknown role(s) {unknown}; family {family.name} has {sorted(family.roles)}")
        groups: dict[tuple[float, float], list] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue  # frozen tensors get no optimizer state
            role = role_of(name, family, list(self.role_lr))
            lr = self.role_lr[role] if role else self.args.learning_rate
            wd = self.args.weight_decay if p.ndim >= 2 else 0.0
            groups.setdefault((lr, wd), []).append(p)
        param_groups = [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
        self.optimizer = torch.optim.AdamW(param_groups, lr=self.args.learning_rate)
        return self.optimizer


def training_arguments(hp: dict, work_dir: Path) -> TrainingArguments:
    cuda = torch.cuda.is_available()
    steps = hp.get("steps")
    return TrainingArguments(
        output_dir=str(work_dir),
        max_steps=int(steps) if steps else -1,
        num_train_epochs=float(hp["epochs"]),
        per_device_train_batch_size=int(hp["batch_size"]),
        gradient_accumulation_steps=int(hp["grad_accum"]),
        learning_rate=float(hp["lr"]),
        warmup_steps=hp["warmup_ratio"],  # transformers 5: a float < 1 is a ratio of total steps
        lr_scheduler_type=hp["scheduler"],
        weight_decay=float(hp["weight_decay"]),
        max_grad_norm=float(hp["max_grad_norm"]),
        bf16=bool(hp["bf16"]) and cuda,
        gradient_checkpointing=bool(hp["gradient_checkpointing"]),
        logging_steps=max(1, (int(steps) if steps else 100) // 20),
        save_strategy="no",
        report_to=[],
        seed=int(hp["seed"]),
        data_seed=int(hp["seed"]),
        dataloader_num_workers=0,
        remove_unused_columns=False,
        use_cpu=not cuda,
        disable_tqdm=False,
    )


def fit(model, processor, dataset, hp: dict, work_dir: str | Path) -> dict:
    """Train `model` in place on `dataset` (rows with image/question/answer); return run metrics."""
    hp = {**DEFAULT_HPARAMS, **hp}
    if hp.get("limit"):
        dataset = dataset.select(range(min(int(hp["limit"]), len(dataset))))
    work_dir = Path(work_dir)
    args = training_arguments(hp, work_dir)
    log = _LossLog()
    trainer = StageTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=AnswerOnlyCollator(processor),
        callbacks=[log],
        role_lr=hp["role_lr"],
    )
    t0 = time.time()
    out = trainer.train()
    seconds = time.time() - t0
    steps = out.global_step
    examples = steps * args.per_device_train_batch_size * args.gradient_accumulation_steps
    first = log.losses[0] if log.losses else math.nan
    last = log.losses[-1] if log.losses else math.nan
    return {
        "steps": steps,
        "examples_seen": examples,
        "train_loss_mean": float(out.training_loss),
        "loss_first_log": first,
        "loss_last_log": last,
        "seconds": round(seconds, 2),
        "examples_per_second": round(examples / seconds, 2) if seconds else None,
    }

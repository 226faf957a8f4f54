"""Learning without Forgetting: distil the previous stage's model while training on the new task.

loss = CE + λ·T²·KL(softmax(z_teacher/T) ‖ softmax(z_student/T)), the KL summed over the full
vocabulary and averaged over the ANSWER positions only: the logits that predict a labelled
token (labels shifted by one, exactly the positions of the cross-entropy). The original
sampled positions over image and prompt tokens as well (`LLaVALwfTrainer.compute_loss`,
`llava/train/llava_lwf_trainer.py` in jessemelpolio/LMM_CL).

The teacher is the stage's parent checkpoint (base or previous stage), loaded a second time
in memory from the same folder (no copy on disk), frozen, in eval mode, not a submodule of the
student (so it is neither saved nor optimised), and fed the same inputs without labels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...train.collate import IGNORE_INDEX
from . import MethodHook, unwrap


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """Mask over logits positions [:, :-1] that predict an answer token (labels[:, 1:] set)."""
    return labels[:, 1:] != IGNORE_INDEX


def distill_kl(student_logits, teacher_logits, labels, temperature: float,
               num_items: int | torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """(KL summed over vocabulary and answer positions / num_items or #positions, #positions)."""
    mask = answer_positions(labels)
    n = int(mask.sum())
    if n == 0:
        return student_logits.sum() * 0.0, 0
    t = float(temperature)
    s = student_logits[:, :-1][mask].float() / t
    z = teacher_logits[:, :-1][mask].float().to(s.device) / t
    kl = F.kl_div(F.log_softmax(s, -1), F.log_softmax(z, -1), log_target=True, reduction="sum")
    denom = num_items if num_items is not None else n
    return kl / denom, n


def lwf_loss(ce, student_logits, teacher_logits, labels, lam: float, temperature: float, num_items=None):
    kl, n = distill_kl(student_logits, teacher_logits, labels, temperature, num_items)
    return ce + lam * temperature ** 2 * kl, kl, n


class LwfHook(MethodHook):
    has_loss = True

    def __init__(self, spec, **context):
        super().__init__(spec, **context)
        self.teacher = None
        self.last = {}

    def load_teacher(self):
        from ...models.io import checkpoint_of, load_model

        if self.parent_manifest is None:
            raise ValueError("lwf: the teacher is the parent checkpoint, but no parent manifest was given")
        teacher, _ = load_model(checkpoint_of(self.parent_manifest))
        return teacher

    def prepare(self, model, teacher=None):
        teacher = teacher if teacher is not None else self.load_teacher()
        teacher.eval()
        teacher.requires_grad_(False)
        self.teacher = teacher
        return model

    def compute_loss(self, default_loss, model, inputs, return_outputs=False, num_items_in_batch=None):
        ce, outputs = default_loss()
        params = next(unwrap(model).parameters())
        if next(self.teacher.parameters()).device != params.device:
            self.teacher.to(params.device)
        with torch.no_grad():
            t_logits = self.teacher(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        loss, kl, n = lwf_loss(ce, outputs.logits, t_logits, inputs["labels"], float(self.spec["lambda"]),
                               float(self.spec["temperature"]), num_items_in_batch)
        self.last = {"ce": float(ce.detach()), "kl": float(kl.detach()), "positions": n}
        return (loss, outputs) if return_outputs else loss

    def report(self) -> dict:
        return {"teacher": str(self.parent_manifest), "distilled": "answer positions",
                "last_step": self.last}

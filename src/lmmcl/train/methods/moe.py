"""MoE baseline: every LLM MLP becomes {frozen original expert, trainable expert(s), token router}
(the layers and their checkpoints: lmmcl.models.moe); this hook converts the model and chooses
what trains.

Experts: `experts` trainable experts (default 1, the study). With `expert_per_task`, every
stage adds `experts` new experts (copies of the original) and freezes the earlier ones; the
router gets new rows. Without it the same experts and router keep training (the study).
"""
from __future__ import annotations

from ...models.moe import CONFIG_KEY, add_experts, convert, moe_layers
from . import MethodHook


def set_trainable(model, last_n: int | None = None) -> None:
    """Routers and the trainable experts (all, or the `last_n` newest) train; originals stay frozen."""
    for m in moe_layers(model):
        for p in m._original.parameters():
            if p.requires_grad:
                raise ValueError("MoE: the recipe trains the original MLP expert, which must stay frozen; "
                                 "use a recipe without the LLM MLPs (or none)")
        m.moe_router.requires_grad_(True)
        experts = list(m.moe_experts)
        for i, e in enumerate(experts):
            e.requires_grad_(last_n is None or i >= len(experts) - last_n)


class MoeHook(MethodHook):
    def prepare(self, model):
        n, per_task = int(self.spec["experts"]), bool(self.spec["expert_per_task"])
        cfg = getattr(model.config, CONFIG_KEY, None)
        if not moe_layers(model):
            convert(model, n, self.spec["top_k"], per_task)
            self.added = n
        elif per_task:
            add_experts(model, n)
            self.added = n
        else:
            if cfg["experts"] != n:
                raise ValueError(f"moe.experts: the parent checkpoint has {cfg['experts']} trainable experts, "
                                 f"the config asks for {n} (set expert_per_task to add experts per stage)")
            self.added = 0
        for m in moe_layers(model):
            m.top_k = int(self.spec["top_k"])
        cfg = dict(getattr(model.config, CONFIG_KEY), top_k=int(self.spec["top_k"]), expert_per_task=per_task)
        setattr(model.config, CONFIG_KEY, cfg)
        set_trainable(model, last_n=n if per_task else None)
        self.cfg = cfg
        return model

    def report(self) -> dict:
        return {"moe": self.cfg, "experts_added_this_stage": self.added,
                "experts_total": 1 + self.cfg["experts"]}

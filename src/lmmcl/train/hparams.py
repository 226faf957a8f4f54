"""Training hyperparameters and their defaults (no heavy imports: the Snakefile reads this).

The one home of the defaults: `lmmcl.config.Plan.hparams` layers the config over them and
`complete` fills them in for a direct call (`lmmcl build-base`, `train.trainer.fit`). Their types
and bounds are checked by the config schema (workflow/schemas/config.schema.yaml, `$defs/hparams`).
"""

# Defaults of every training hyperparameter (config `stages.defaults` overrides them).
DEFAULT_HPARAMS = {
    "lr": 5e-6,
    "steps": None,          # max optimizer steps; when null, `epochs` decides
    "epochs": 1.0,
    "batch_size": 1,        # per device
    "grad_accum": 1,
    "warmup_ratio": 0.03,
    "scheduler": "cosine",
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "role_lr": {"vision_tower": 2e-6},  # per-role lr; the paper's vision-tower lr (replaced as a whole)
    "bf16": False,
    "gradient_checkpointing": False,
    "seed": 0,
    "limit": None,          # train on the first N examples only (smoke runs)
    "save_steps": None,     # in-stage checkpoint every N steps; a killed stage resumes from it
}


def complete(hp: dict) -> dict:
    """`hp` over the defaults: every hyperparameter set (later keys win)."""
    return {**DEFAULT_HPARAMS, **hp}

"""Does a launched job hold a GPU for each of its processes?

The rules start `resources.gpus` processes per training/evaluation job (torchrun, accelerate
launch); the job's GPUs come from its `gpu` resource, which a profile may set per rule. A job
with fewer GPUs than processes would start ranks without a GPU of their own; every rank checks
first (lmmcl.cli) and stops with what it has and what to change."""
from __future__ import annotations


def check_gpu_allocation(environ=None, device_count=None) -> None:
    """A rank of a launcher (torchrun, accelerate) on a GPU node: the node must hold a GPU for each
    of its processes. A job given fewer GPUs than the launcher starts processes (a per-rule `gpu`
    below config `resources.gpus`) would otherwise fail later on an invalid device ordinal, or
    share a GPU; it fails here, saying what it has and what to change."""
    import os

    env = os.environ if environ is None else environ
    procs = int(env.get("LOCAL_WORLD_SIZE") or 1)
    if procs <= 1:
        return
    if device_count is None:
        import torch

        device_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if 0 < device_count < procs:
        raise ValueError(
            f"this job starts {procs} processes on its node (config resources.gpus) but sees {device_count} "
            f"GPU(s) (CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', 'unset')}): give the rule as many GPUs "
            f"as resources.gpus (a per-rule `gpu` in the profile must equal it), or set resources.gpus to "
            f"{device_count} (docs/cluster.md)")

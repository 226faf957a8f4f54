"""Does a launched job hold a GPU for each of its processes?

The rules start `resources.gpus` processes per training/evaluation job (torchrun, accelerate
launch); the job's GPUs come from its `gpu` resource, which a profile may set per rule. A job
with fewer GPUs than processes would start ranks without a GPU of their own; every rank checks
first (lmmcl.cli) and stops with what it has and what to change."""
from __future__ import annotations


# Set by the rules' launch commands (rules/common.smk) when config resources.gpus >= 1: the GPUs
# this job was given, so a rank that sees none knows it should have.
EXPECTED_GPUS = "LMMCL_GPUS"


def check_gpu_allocation(environ=None, device_count=None, cuda_build=None) -> None:
    """A rank of a launcher (torchrun, accelerate) on a GPU node: the node must hold a GPU for each
    of its processes. A job given fewer GPUs than the launcher starts processes (a per-rule `gpu`
    below config `resources.gpus`) would otherwise fail later on an invalid device ordinal, or
    share a GPU; it fails here, saying what it has and what to change."""
    import os

    env = os.environ if environ is None else environ
    procs = int(env.get("LOCAL_WORLD_SIZE") or 1)
    expected = int(env.get(EXPECTED_GPUS) or 0)
    if procs <= 1 and expected == 0:
        return
    if device_count is None:
        import torch

        device_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        cuda_build = torch.version.cuda
    if expected and device_count == 0:
        raise ValueError(no_gpu_message(expected, env.get("CUDA_VISIBLE_DEVICES", "unset"), cuda_build))
    if 0 < device_count < procs:
        raise ValueError(
            f"this job starts {procs} processes on its node (config resources.gpus) but sees {device_count} "
            f"GPU(s) (CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', 'unset')}): give the rule as many GPUs "
            f"as resources.gpus (a per-rule `gpu` in the profile must equal it), or set resources.gpus to "
            f"{device_count} (docs/cluster.md)")


def no_gpu_message(expected: int, visible: str, cuda_build: str | None) -> str:
    """Why a GPU job's torch sees no GPU, in the two ways it happens: a CPU build of torch (the
    laptop lock), or a CUDA build whose CUDA release the node's driver is too old for."""
    head = (f"this job was given {expected} GPU(s) (config resources.gpus; CUDA_VISIBLE_DEVICES={visible}) "
            f"but torch sees none: ")
    if not cuda_build:
        return head + ("this torch is a CPU build. On a GPU cluster install requirements/lock-cluster.txt "
                       "(docs/install.md), not requirements/lock.txt")
    return head + (f"this torch is built for CUDA {cuda_build}; the node's NVIDIA driver may be older than "
                   f"CUDA {cuda_build} needs (`nvidia-smi` shows the driver; NVIDIA's CUDA release notes list the "
                   f"minimum of each release), or the job holds no GPU device (docs/install.md)")

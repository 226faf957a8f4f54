"""A stage told to stop (SIGTERM, SIGUSR1) saves an in-stage checkpoint and exits; its rerun resumes.

SLURM sends SIGTERM before it kills a job: at a preemption (then `GraceTime` later SIGKILL), at
`scancel`, and before the time limit when the job was submitted with `--signal=TERM@<seconds>`
(profiles/slurm sets it for the training rules). The handler only sets a flag: the Trainer is
stopped at the end of the running optimizer step, when every rank holds a consistent state, and
saves it there as it saves a `save_steps` checkpoint (DeepSpeed's included). With several
processes the ranks agree on the step (a max over the flag) so that all of them take part in the
save. `fit` then raises `Preempted`; the CLI exits with `EXIT_PREEMPTED`, the job fails, Snakemake
resubmits it (profile `retries`) and the rerun resumes from the checkpoint
(`lmmcl.train.trainer.resumable_checkpoint`) to the weights an uninterrupted run gets.
"""
from __future__ import annotations

import signal

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
# EX_TEMPFAIL of sysexits.h: "try again later"
EXIT_PREEMPTED = 75


class Preempted(RuntimeError):
    """Training stopped on a signal after saving an in-stage checkpoint; rerun the job to resume."""

    def __init__(self, signame: str, step: int, checkpoint: str):
        self.signame, self.step, self.checkpoint = signame, step, checkpoint
        super().__init__(f"stopped by {signame} after step {step}: in-stage checkpoint {checkpoint} saved; "
                         f"rerunning the job resumes from it (Snakemake: profile `retries`)")


class SignalFlag:
    """Set by the first signal received while installed (`install` .. `restore`); `agreed()` tells
    every rank whether any rank got one. Stdlib only at import: the CLI catches `Preempted` without
    importing torch."""

    def __init__(self, signals=SIGNALS):
        self.signals = tuple(signals)
        self.received: str | None = None  # name of the first signal received
        self._previous: dict = {}

    def _handle(self, signum, frame):
        if self.received is None:
            self.received = signal.Signals(signum).name
            print(f"received {self.received}: saving an in-stage checkpoint at the end of this step", flush=True)

    def install(self) -> None:
        for s in self.signals:
            self._previous[s] = signal.signal(s, self._handle)

    def restore(self) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous.clear()

    def agreed(self) -> bool:
        """Whether any rank got a signal: every rank must save at the same step (DeepSpeed's save and
        the Trainer's checkpoint are collective), and a signal reaches the ranks at different times."""
        import torch.distributed as dist

        flag = self.received is not None
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return flag
        import torch

        t = torch.tensor([1 if flag else 0], dtype=torch.int32,
                         device="cuda" if dist.get_backend() == "nccl" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if t.item() and self.received is None:
            self.received = "a signal to another rank"
        return bool(t.item())

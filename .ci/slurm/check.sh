#!/usr/bin/env bash
# The SLURM part of CI (called by .ci/run after `make test`; runnable alone, as root):
# start a real single-node SLURM with accounting, run the smoke config of the real pipeline through
# `snakemake --profile profiles/slurm` and check it (tests/test_slurm_live.py: every job has a SLURM
# job id known to sacct, the tables exist, one lr change reruns exactly that stage and what depends
# on it; one run with 2 CPU processes per job trains its stage under DeepSpeed ZeRO-2 through torchrun)
# plus the sbatch resource mapping (tests/test_slurm_profile.py). The daemons are stopped by
# a trap whatever happens. Prints pytest's "N passed, N failed" line and the timings.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ] && ! command -v sbatch >/dev/null; then
  echo "SLURM check needs root (apt-get install slurm-wlm, munge, slurmdbd) or an installed SLURM" >&2
  exit 1
fi
t0=$SECONDS
trap '.ci/slurm/stop.sh' EXIT      # always, also after a failure
# Ctrl-C / kill: end our test processes (by PID, children first; SIGKILL, because snakemake
# waits for its running SLURM jobs on SIGTERM), then exit, which runs the EXIT trap.
kill_tree() { local c; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$c"; done; kill -KILL "$1" 2>/dev/null || true; }
tests_pid=""
trap '[ -n "$tests_pid" ] && kill_tree "$tests_pid"; exit 130' INT TERM
SLURM_WITH_DBD=1 .ci/slurm/start.sh
t1=$SECONDS
# each snakemake run inside is under `timeout -k 15 900`; this bounds the whole step. Run in the
# background and `wait` so that a signal is handled at once, not after the tests end.
LMMCL_SLURM_TESTS=1 OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  timeout -k 30 1500 .venv/bin/pytest -q -s -p no:cacheprovider tests/test_slurm_live.py tests/test_slurm_profile.py &
tests_pid=$!
wait "$tests_pid"
t2=$SECONDS
echo "SLURM CI part: cluster up $((t1 - t0)) s, pipeline through SLURM + checks $((t2 - t1)) s, total $((t2 - t0)) s"

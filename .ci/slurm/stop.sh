#!/usr/bin/env bash
# Stop the daemons started by .ci/slurm/start.sh, by the PIDs in their
# pid files (never by name). Leaves packages, config and state in place.
# Idempotent: a daemon that is not running is skipped.
set -uo pipefail
stop() {  # stop <name> <pidfile> <process name in /proc/PID/comm>
  local name=$1 pf=$2 pid
  [ -s "$pf" ] || return 0
  pid=$(cat "$pf")
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$3" ]; then
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    echo "[local-slurm] stopped $name (pid $pid)"
  fi
  rm -f "$pf"
}
# cancel our jobs first so slurmd does not leave job processes behind
command -v scancel >/dev/null && scancel --user=root 2>/dev/null || true
stop slurmd    /run/slurmd.pid             slurmd
stop slurmctld /run/slurmctld.pid          slurmctld
stop slurmdbd  /run/slurmdbd.pid           slurmdbd
stop mariadb   /run/mysqld/mysqld.pid      mariadbd
stop munged    /run/munge/munged.pid       munged

#!/usr/bin/env bash
# Start a REAL single-node SLURM cluster on localhost (Debian 12, root, no
# systemd needed). Idempotent: installs what is missing, (re)writes the config,
# starts only daemons that are not running, and waits until the node is idle.
# Stop it with .ci/slurm/stop.sh. How CI uses it, and its traps: docs/cluster.md
#
#   SLURM_WITH_DBD=1  (default) also install/start MariaDB + slurmdbd so that
#                     `sacct` works (the plugin's default status command, as on
#                     real clusters) and the account "ci" exists.
#                     0 = no accounting: then the profile MUST set
#                     `slurm-status-command: squeue`, or snakemake hangs.
#   SLURM_CGROUP=1    track/limit jobs with cgroup v1 (real --mem enforcement,
#                     OOM kills). Needs writable v1 hierarchies under
#                     /sys/fs/cgroup (true on this VM kind); default 0 =
#                     proctrack/linuxproc, no limits enforced.
#   SLURM_WAIT_S      how long to wait for the node to become idle (60).
set -euo pipefail

WITH_DBD=${SLURM_WITH_DBD:-1}
CGROUP=${SLURM_CGROUP:-0}
WAIT_S=${SLURM_WAIT_S:-60}
HOST=$(hostname -s)
CONF=/etc/slurm/slurm.conf
log() { echo "[local-slurm] $(date +%T) $*"; }
# alive PIDFILE: the pid in it is running and is the daemon the file is named
# after (guards against stale pid files whose pid was reused)
alive() {
  local pid; [ -s "$1" ] || return 1; pid=$(cat "$1")
  [ -r "/proc/$pid/comm" ] || return 1
  case "$(cat "/proc/$pid/comm")" in
    munged|slurmctld|slurmd|slurmdbd|mariadbd) return 0 ;; *) return 1 ;;
  esac
}
t0=$SECONDS

# ---- 1. packages -----------------------------------------------------------
pkgs=(slurmctld slurmd slurm-client munge)
[ "$WITH_DBD" = 1 ] && pkgs+=(slurmdbd mariadb-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  apt-get update -qq
  # postinst scripts try to start services; without systemd/with policy-rc.d
  # that is refused harmlessly -- we start the daemons ourselves below.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
log "packages ready ($((SECONDS - t0))s)"

# ---- 2. host name must resolve (slurmd/slurmctld look it up) ---------------
if ! getent hosts "$HOST" >/dev/null; then
  echo "127.0.0.1 $HOST" >> /etc/hosts
  log "added $HOST to /etc/hosts"
fi

# ---- 3. config -------------------------------------------------------------
# Hardware line straight from slurmd -C (avoids "Node configuration differs
# from hardware"); RealMemory lowered to 90% so the node never drains with
# "Low RealMemory".
hw=$(slurmd -C | head -1)
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
hw=$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 9 / 10))/" <<<"$hw")
if [ "$WITH_DBD" = 1 ]; then
  acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
JobAcctGatherType=jobacct_gather/linux"
else
  acct="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
if [ "$CGROUP" = 1 ]; then
  [ -d /sys/fs/cgroup/memory ] || { log "SLURM_CGROUP=1 but no cgroup v1 memory hierarchy"; exit 1; }
  track="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity"
else
  track="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none"
fi
mkdir -p /etc/slurm
printf 'CgroupPlugin=cgroup/v1\nConstrainCores=yes\nConstrainRAMSpace=yes\n' > /etc/slurm/cgroup.conf
newconf=$(cat <<EOF
# single-node CI cluster, written by .ci/slurm/start.sh
ClusterName=localci
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
SlurmUser=slurm
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
$track
MpiDefault=none
MailProg=/bin/true
$acct
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# snakemake's slurm plugin only trusts squeue if MinJobAge >= 3 x its first
# status-check delay; keep finished jobs visible for 10 min.
MinJobAge=600
SlurmdTimeout=30
KillWait=5
$hw NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
)
restart=0
if [ "$(cat "$CONF" 2>/dev/null)" != "$newconf" ]; then
  printf '%s\n' "$newconf" > "$CONF"
  restart=1
  log "wrote $CONF"
fi
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
chown slurm:slurm /var/spool/slurmctld /var/log/slurm

# ---- 4. munge --------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge; chown munge:munge /run/munge; chmod 755 /run/munge
if ! alive /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged
  log "munged started (pid $(cat /run/munge/munged.pid))"
fi
munge -n | unmunge >/dev/null

# ---- 5. optional accounting: mariadb + slurmdbd ----------------------------
if [ "$WITH_DBD" = 1 ]; then
  mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
  if ! alive /run/mysqld/mysqld.pid; then
    setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
      --socket=/run/mysqld/mysqld.sock >>/var/log/slurm/mariadb.log 2>&1 < /dev/null &
    for _ in $(seq 1 120); do mysqladmin ping >/dev/null 2>&1 && break; sleep 0.5; done
    log "mariadb started (pid $(cat /run/mysqld/mysqld.pid))"
  fi
  mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmci';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  cat > /etc/slurm/slurmdbd.conf <<'EOF'
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmci
EOF
  chown slurm:slurm /etc/slurm/slurmdbd.conf; chmod 600 /etc/slurm/slurmdbd.conf
  if ! alive /run/slurmdbd.pid; then
    /usr/sbin/slurmdbd
    log "slurmdbd started (pid $(cat /run/slurmdbd.pid))"
  fi
  for _ in $(seq 1 120); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
  sacctmgr -n list cluster format=cluster | grep -qw localci || sacctmgr -i add cluster localci >/dev/null
  sacctmgr -n list account format=account | grep -qw ci || sacctmgr -i add account ci Description=ci Organization=ci >/dev/null
  # (user root already exists with account "root" once the cluster is added,
  #  so test for the association, not for the user)
  sacctmgr -n -P list assoc user=root account=ci format=account | grep -qx ci ||
    sacctmgr -i add user root Account=ci DefaultAccount=ci >/dev/null
  log "accounting ready: cluster localci, account ci, user root"
fi

# ---- 6. slurmctld + slurmd -------------------------------------------------
if [ "$restart" = 1 ]; then
  for pf in /run/slurmd.pid /run/slurmctld.pid; do
    if alive "$pf"; then
      pid=$(cat "$pf"); kill "$pid"
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
  done
fi
waitpid() { for _ in $(seq 1 40); do [ -s "$1" ] && break; sleep 0.25; done; cat "$1" 2>/dev/null; }
alive /run/slurmctld.pid || { /usr/sbin/slurmctld; log "slurmctld started (pid $(waitpid /run/slurmctld.pid))"; }
alive /run/slurmd.pid    || { /usr/sbin/slurmd;    log "slurmd started (pid $(waitpid /run/slurmd.pid))"; }

# ---- 7. wait for the node ---------------------------------------------------
deadline=$((SECONDS + WAIT_S))
state=""
until state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null) && [ "$state" = idle ]; do
  case "$state" in
    drain*|down*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
  esac
  if [ $SECONDS -ge $deadline ]; then
    log "node $HOST not idle after ${WAIT_S}s (state: '${state:-?}')"
    scontrol show node "$HOST" || true
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log || true
    exit 1
  fi
  sleep 0.5
done
log "node $HOST idle; cluster up in $((SECONDS - t0))s"
sinfo

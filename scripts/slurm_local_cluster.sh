#!/usr/bin/env bash
# A single-node SLURM cluster with job accounting on this (Debian) machine, as root, so that the
# submitit launcher (hydra/launcher=slurm) can be exercised for real: CI runs it before the tests.
#
#   sudo bash scripts/slurm_local_cluster.sh           # start (idempotent); then: srun hostname; sacct
#   sudo bash scripts/slurm_local_cluster.sh status    # exit 0 when the cluster this script started is up
#   sudo bash scripts/slurm_local_cluster.sh stop      # stop the daemons this script started, only those
#
# One node (this host) with all its CPUs and most of its memory, one partition `debug`, munge
# authentication, no cgroups (proctrack/linuxproc, task/none), so it also works in containers.
# Accounting goes through slurmdbd to a private MariaDB (its own data folder, 127.0.0.1 only,
# port $NAC_SLURM_DB_PORT, default 3307): submitit learns that a job ended (COMPLETED, CANCELLED,
# TIMEOUT, ...) from `sacct`, and without accounting a job cancelled with `scancel` stays UNKNOWN to
# it for ever. KillWait is 2 s: a cancelled job gets SIGTERM, then SIGKILL 2 s later.
#
# Every daemon the script starts leaves its PID in $STATE (/run/nac-slurm, or $NAC_SLURM_STATE);
# `stop` signals those PIDs (after checking the process name) and nothing else. A munged that was already running is
# used, not restarted, and never stopped. An /etc/slurm/slurm.conf that this script did not write
# is never overwritten.
set -euo pipefail

STATE="${NAC_SLURM_STATE:-/run/nac-slurm}"   # PID files of the daemons this script started
DB_DIR=/var/lib/nac-slurm/mariadb     # the accounting database's data folder
DB_RUN=$STATE/mariadb                 # its socket and PID file (owned by the database user)
DB_PORT="${NAC_SLURM_DB_PORT:-3307}"
DB_USER=slurm                         # system user that runs mariadbd (Debian's slurm packages create it)
LOG=/var/log/slurm
CONF=/etc/slurm
MARK="# written by scripts/slurm_local_cluster.sh"
CLUSTER=nacbench

die() { echo "slurm_local_cluster.sh: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  die "run as root: it installs Debian packages (slurm-wlm, slurmdbd, munge, mariadb-server-core) and starts daemons"
fi

# pid_of NAME: the PID recorded for NAME if that process is alive and still is NAME, else nothing
pid_of() {
  local pid
  pid="$(cat "$STATE/$1.pid" 2>/dev/null)" || return 0
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]; then echo "$pid"; fi
}

# alive PID: the process exists and is not a zombie (one its parent has not reaped counts as gone)
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != "Z" ]; }

# stop NAME...: SIGTERM to the recorded daemons together, wait up to 10 s, then SIGKILL
stop() {
  local name pid pids=()
  for name in "$@"; do
    pid="$(pid_of "$name")"
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); echo "stopping $name ($pid)"; fi
    rm -f "$STATE/$name.pid"
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.2; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
}
stop_daemons() { stop slurmd slurmctld slurmdbd; stop mariadbd munged; }

answers() { timeout 15 srun -N1 -t 1 hostname >/dev/null 2>&1 && timeout 15 sacct -n -X -j 1 >/dev/null 2>&1; }

# wait_for WHAT SECONDS COMMAND...: retry COMMAND every 0.5 s
wait_for() {
  local what="$1" secs="$2"; shift 2
  for _ in $(seq 1 $((secs * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "slurm_local_cluster.sh: $what did not come up within $secs s; logs in $LOG/" >&2
  tail -n 15 "$LOG"/*.log >&2 2>/dev/null || true
  exit 1
}

# record NAME PIDFILE: copy the PID a daemon wrote into $STATE, which marks it as started here
record() {
  wait_for "$1 (PID file $2)" 20 test -s "$2"
  if [ "$2" != "$STATE/$1.pid" ]; then cat "$2" > "$STATE/$1.pid"; fi
}

case "${1:-start}" in
  stop) stop_daemons; exit 0 ;;
  status)
    if [ -n "$(pid_of slurmctld)" ] && answers; then echo "up"; exit 0; fi
    echo "down"; exit 1 ;;
  start) ;;
  *) die "unknown command '$1': use start (default), status or stop" ;;
esac

mkdir -p "$STATE" && chmod 0755 "$STATE"
if [ -e "$CONF/slurm.conf" ] && ! head -n 1 "$CONF/slurm.conf" | grep -qF "$MARK"; then
  if command -v srun >/dev/null && timeout 10 srun -N1 -t 1 hostname >/dev/null 2>&1; then
    echo "a SLURM cluster not set up by this script already answers; leaving it as it is"
    timeout 10 sacct -n -X -j 1 >/dev/null 2>&1 \
      || echo "warning: its sacct does not answer: submitit cannot see a cancelled job end without accounting" >&2
    exit 0
  fi
  die "$CONF/slurm.conf exists and was not written by this script: move it away, or start that cluster"
fi
if [ -n "$(pid_of slurmctld)" ] && answers; then
  echo "SLURM (started by this script) is up: $(sinfo -h -o 'partition %P, %D node(s), CPUs (A/I/O/T) %C')"
  exit 0
fi

need=()
for cmd in slurmctld slurmd slurmdbd sacct munged mariadbd mariadb-install-db mariadb; do
  command -v "$cmd" >/dev/null || need+=("$cmd")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing slurm-wlm, slurmdbd, munge and MariaDB (Debian packages; missing: ${need[*]})..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm slurmdbd munge mariadb-server-core mariadb-client-core >/dev/null
fi
id -u "$DB_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$DB_USER"

stop_daemons >/dev/null   # leftovers of an earlier start that no longer answers
host="$(hostname -s)"
cpus="$(nproc)"
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 ))
real_mb=$(( mem_mb > 2048 ? mem_mb - 1024 : mem_mb ))
mkdir -p "$CONF" /var/spool/slurmctld /var/spool/slurmd "$LOG" /run/munge /var/lib/munge /var/log/munge

# munge: one key; a munged that already answers (the system's) is used as it is
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 0700 /etc/munge /var/lib/munge /var/log/munge
  chmod 0400 /etc/munge/munge.key
  chmod 0755 /run/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged --force
  record munged /run/munge/munged.pid
fi

# the accounting database: a private MariaDB on 127.0.0.1:$DB_PORT, data in $DB_DIR
mkdir -p "$DB_DIR" "$DB_RUN"
chown "$DB_USER:" "$DB_DIR" "$DB_RUN"
chmod 0700 "$DB_DIR"
if [ ! -d "$DB_DIR/mysql" ]; then
  mariadb-install-db --no-defaults --datadir="$DB_DIR" --user="$DB_USER" --skip-test-db \
    --auth-root-authentication-method=socket >"$LOG/mariadb-install.log" 2>&1 \
    || { tail -n 20 "$LOG/mariadb-install.log" >&2; die "mariadb-install-db failed (log above)"; }
fi
rm -f "$DB_RUN/mariadbd.pid"
setsid -f /usr/sbin/mariadbd --no-defaults --user="$DB_USER" --datadir="$DB_DIR" \
  --socket="$DB_RUN/mariadbd.sock" --pid-file="$DB_RUN/mariadbd.pid" --bind-address=127.0.0.1 \
  --port="$DB_PORT" --skip-name-resolve --innodb-buffer-pool-size=32M --innodb-lock-wait-timeout=900 \
  --log-error="$LOG/mariadb.log" \
  </dev/null >/dev/null 2>&1
record mariadbd "$DB_RUN/mariadbd.pid"
sql() { mariadb --no-defaults --socket="$DB_RUN/mariadbd.sock" -u root -e "$1"; }
wait_for "MariaDB (port $DB_PORT)" 30 sql "SELECT 1"
db_pass="$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
sql "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
     ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
     GRANT ALL ON ${CLUSTER}_acct_db.* TO 'slurm'@'127.0.0.1';"

umask 077
cat > "$CONF/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
DbdHost=$host
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=${CLUSTER}_acct_db
EOF
umask 022
chmod 0600 "$CONF/slurmdbd.conf"

cat > "$CONF/slurm.conf" <<EOF
$MARK: a single-node cluster for tests
ClusterName=$CLUSTER
SlurmctldHost=$host
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$host
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=30
KillWait=2
Waittime=0
NodeName=$host CPUs=$cpus RealMemory=$real_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
echo "ConstrainCores=no" > "$CONF/cgroup.conf"

/usr/sbin/slurmdbd
record slurmdbd "$STATE/slurmdbd.pid"
wait_for "slurmdbd" 30 sacctmgr -n list cluster
sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
/usr/sbin/slurmctld -c
record slurmctld "$STATE/slurmctld.pid"
/usr/sbin/slurmd -c
record slurmd "$STATE/slurmd.pid"

for _ in $(seq 1 60); do
  if answers; then
    echo "SLURM is up: $(sinfo -h -o 'partition %P, %D node(s), CPUs (A/I/O/T) %C'), accounting through slurmdbd"
    exit 0
  fi
  scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "slurm_local_cluster.sh: SLURM did not answer 'srun hostname' and 'sacct' within 60 s; logs in $LOG/" >&2
tail -n 20 "$LOG/slurmctld.log" "$LOG/slurmd.log" "$LOG/slurmdbd.log" >&2 || true
exit 1

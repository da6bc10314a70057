#!/usr/bin/env bash
# Install and start a single-node SLURM cluster on this (Debian) machine, as root, so that the
# submitit launcher (hydra/launcher=slurm) can be exercised for real: CI runs it before the tests.
#
#   sudo bash scripts/slurm_local_cluster.sh          # then: srun hostname; sinfo
#   sudo bash scripts/slurm_local_cluster.sh stop
#
# One node (this host) with all its CPUs and most of its memory, one partition `debug`, munge
# authentication, no accounting, no cgroups (proctrack/linuxproc, task/none), so it also works in
# containers. Idempotent: a running cluster that answers `srun hostname` is left as it is.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "run as root: it installs Debian packages (slurm-wlm, munge) and starts daemons" >&2
  exit 1
fi

if [ "${1:-}" = "stop" ]; then
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
  echo "stopped"
  exit 0
fi

if command -v srun >/dev/null && timeout 10 srun -N1 -t 1 hostname >/dev/null 2>&1; then
  echo "SLURM already answers: $(sinfo -h -o '%P %D %C' 2>/dev/null)"
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "installing slurm-wlm and munge (Debian packages)..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

host="$(hostname -s)"
cpus="$(nproc)"
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 ))
real_mb=$(( mem_mb > 2048 ? mem_mb - 1024 : mem_mb ))
conf_dir=/etc/slurm
mkdir -p "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge

# munge: one key, daemon running as the munge user
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null; then
    mungekey --create --force >/dev/null
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
fi

cat > "$conf_dir/slurm.conf" <<EOF
# written by scripts/slurm_local_cluster.sh: a single-node cluster for tests
ClusterName=nacbench
SlurmctldHost=$host
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=30
KillWait=5
Waittime=0
NodeName=$host CPUs=$cpus RealMemory=$real_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
echo "ConstrainCores=no" > "$conf_dir/cgroup.conf"

pkill -x slurmd 2>/dev/null || true
pkill -x slurmctld 2>/dev/null || true
sleep 1
/usr/sbin/slurmctld -c
/usr/sbin/slurmd -c

for _ in $(seq 1 60); do
  if timeout 10 srun -N1 -t 1 hostname >/dev/null 2>&1; then
    echo "SLURM is up: $(sinfo -h -o 'partition %P, %D node(s), CPUs (alloc/idle/other/total) %C')"
    exit 0
  fi
  scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "SLURM did not answer 'srun hostname' within 60 s; logs in /var/log/slurm/" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1

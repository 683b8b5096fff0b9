#!/usr/bin/env bash
# Start a throw-away single-node Slurm cluster with accounting on this (Debian bookworm, root,
# no systemd) machine, for the Slurm integration test (tests/test_slurm.py):
#   munge -> MariaDB -> slurmdbd -> slurmctld -> slurmd, all on loopback,
#   cluster 'merinoci', partition 'debug' (this host, all its CPUs), account 'merino' for root.
# Idempotent: a cluster already up with the same configuration is left alone (seconds); a changed
# configuration restarts the Slurm daemons.  Missing Debian packages are installed with apt.
# State, logs and PID files go to $MERINO_SLURM_BASE (default /tmp/merino-slurm); stop.sh stops the
# daemons by those PIDs.  Writes /etc/slurm/{slurm,slurmdbd,cgroup}.conf, refusing to overwrite
# files it did not write itself (a real cluster's configuration).
set -euo pipefail
BASE=${MERINO_SLURM_BASE:-/tmp/merino-slurm}
CLUSTER=merinoci
PARTITION=debug
ACCOUNT=merino
MARK="# written by merino-workflow .ci/slurm/start.sh"
T0=$(date +%s.%N)
log() { awk -v a="$T0" -v b="$(date +%s.%N)" -v m="$*" 'BEGIN{printf "[slurm-start %5.1fs] %s\n", b-a, m}'; }
die() { log "ERROR: $*"; exit 1; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
waitfor() {  # waitfor <seconds> <description> <cmd...>: poll every 0.25 s
  local n=$(( $1 * 4 )) what=$2; shift 2
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && { log "$what"; return 0; }; sleep 0.25; done
  log "TIMEOUT after $n polls waiting for: $what"
  for f in "$BASE"/log/*.log; do echo "== $f"; tail -n 15 "$f"; done 2>/dev/null
  exit 1
}
[ "$(id -u)" = 0 ] || die "must run as root (daemons, /etc/slurm, apt); this is a CI helper"
mkdir -p "$BASE"/{ctld,d,log}

# ---- 1. Debian packages ------------------------------------------------------------
PKGS="munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
missing=""; for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  log "apt-get install:$missing"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >"$BASE/log/apt.log" 2>&1 \
    || { tail -n 30 "$BASE/log/apt.log"; die "apt-get install$missing failed (log: $BASE/log/apt.log)"; }
fi
log "packages present (slurm $(dpkg-query -W -f '${Version}' slurmctld))"

# ---- 2. configuration ----------------------------------------------------------------
HN=$(hostname -s)
NCPU=$(nproc)
MEM=$(( $(awk '/^MemTotal:/{print int($2/1024)}' /proc/meminfo) - 1024 ))   # MB, 1 GB left to the OS
mkdir -p /etc/slurm
for f in slurm.conf slurmdbd.conf cgroup.conf; do
  if [ -s "/etc/slurm/$f" ] && ! grep -qF "$MARK" "/etc/slurm/$f"; then
    die "/etc/slurm/$f exists and was not written by this script (a real cluster?); not overwriting it"
  fi
done
new_conf=$(cat <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=${HN}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$BASE/ctld
SlurmdSpoolDir=$BASE/d
SlurmctldPidFile=$BASE/slurmctld.pid
SlurmdPidFile=$BASE/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# no cgroups (they are not delegated inside a container): plain process tracking, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
# jobs must name an account that slurmdbd knows (as on real clusters)
AccountingStorageEnforce=associations
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
MinJobAge=300
SlurmctldDebug=info
SlurmdDebug=info
NodeName=${HN} NodeAddr=127.0.0.1 CPUs=${NCPU} RealMemory=${MEM} State=UNKNOWN
PartitionName=$PARTITION Nodes=${HN} Default=YES MaxTime=INFINITE State=UP
EOF
)
dbd_conf=$(cat <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$BASE/log/slurmdbd.log
PidFile=$BASE/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=merino-ci
StorageLoc=slurm_acct_db
EOF
)
# Read only by cgroup plugins, which the configuration above does not load.
cgroup_conf="$MARK
CgroupPlugin=autodetect"
changed=0
write_if_changed() {  # write_if_changed <file> <content> <mode>
  if [ "$(cat "$1" 2>/dev/null)" != "$2" ]; then printf '%s\n' "$2" >"$1"; changed=1; fi
  chmod "$3" "$1"
}
write_if_changed /etc/slurm/slurm.conf "$new_conf" 644
write_if_changed /etc/slurm/slurmdbd.conf "$dbd_conf" 600
write_if_changed /etc/slurm/cgroup.conf "$cgroup_conf" 644

node_idle() { sinfo -h -N -p "$PARTITION" -o %T | grep -qE '^(idle|mixed|allocated)$'; }
if [ "$changed" = 0 ] && alive "$BASE/slurmdbd.pid" && alive "$BASE/slurmctld.pid" && alive "$BASE/slurmd.pid" \
   && node_idle && sacctmgr -n -P list assoc user=root account=$ACCOUNT format=account | grep -qx $ACCOUNT; then
  log "already up, configuration unchanged"; sinfo; exit 0
fi
if [ "$changed" = 1 ]; then   # Slurm daemons of an earlier configuration would not see the new one
  for d in slurmd slurmctld slurmdbd; do
    if alive "$BASE/$d.pid"; then
      p=$(cat "$BASE/$d.pid"); kill "$p"
      for _ in $(seq 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
      log "configuration changed: stopped $d ($p)"
    fi
  done
fi

# ---- 3. munge ------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  mungekey -c -f -k /etc/munge/munge.key && chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge /var/log/munge /var/lib/munge
if ! (munge -n | unmunge) >/dev/null 2>&1; then   # started here -> its PID recorded for stop.sh
  runuser -u munge -- /usr/sbin/munged
  waitfor 10 "munged up" sh -c 'munge -n | unmunge'
  cp /run/munge/munged.pid "$BASE/munged.pid"
fi

# ---- 4. MariaDB and slurmdbd -----------------------------------------------------------
install -d -o mysql -g mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$BASE/log/mariadb-install.log" 2>&1 \
    || die "mariadb-install-db failed (log: $BASE/log/mariadb-install.log)"
fi
if ! mariadb -uroot -e 'select 1' >/dev/null 2>&1; then   # started here -> its PID recorded for stop.sh
  nohup /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
    >"$BASE/log/mariadb.log" 2>&1 &
  echo $! >"$BASE/mariadbd.pid"
fi
waitfor 30 "mariadb up" mariadb -uroot -e 'select 1'
mariadb -uroot <<'EOF'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'merino-ci';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
alive "$BASE/slurmdbd.pid" || slurmdbd
waitfor 30 "slurmdbd up" sacctmgr -n list cluster

# ---- 5. cluster, account, user; slurmctld and slurmd -------------------------------------
sacctmgr -n -P list cluster format=cluster | grep -qx $CLUSTER || sacctmgr -i add cluster $CLUSTER >/dev/null
sacctmgr -n -P list account format=account | grep -qx $ACCOUNT \
  || sacctmgr -i add account $ACCOUNT cluster=$CLUSTER description=merino-ci organization=merino >/dev/null
sacctmgr -n -P list assoc user=root account=$ACCOUNT format=account | grep -qx $ACCOUNT \
  || sacctmgr -i add user root account=$ACCOUNT cluster=$CLUSTER >/dev/null
log "account '$ACCOUNT' for root on cluster '$CLUSTER'"
alive "$BASE/slurmctld.pid" || slurmctld
waitfor 30 "slurmctld up" sh -c 'scontrol ping | grep -q UP'
alive "$BASE/slurmd.pid" || slurmd
waitfor 30 "node $HN idle in partition $PARTITION" node_idle
sinfo
log "single-node Slurm up: partition $PARTITION, account $ACCOUNT (stop: .ci/slurm/stop.sh)"

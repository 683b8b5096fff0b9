#!/usr/bin/env bash
# Stop the daemons .ci/slurm/start.sh started, by the PIDs it recorded in $MERINO_SLURM_BASE
# (default /tmp/merino-slurm); daemons it found already running are left alone.  No pkill/killall.
BASE=${MERINO_SLURM_BASE:-/tmp/merino-slurm}
stop() {  # stop <name>: TERM, wait up to 10 s, then KILL
  local f="$BASE/$1.pid" p
  [ -s "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"
    for _ in $(seq 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$p" 2>/dev/null; then kill -9 "$p"; echo "killed $1 ($p)"; else echo "stopped $1 ($p)"; fi
  fi
  rm -f "$f"
}
for d in slurmd slurmctld slurmdbd mariadbd munged; do stop "$d"; done

#!/usr/bin/env bash
# A single-node SLURM 22.05 (Debian bookworm's packages) with accounting, all state in one dir.
#
#   apt-get install -y slurmctld slurmd slurm-client munge slurmdbd mariadb-server   # as root
#   eval "$(tests/cluster/cluster.sh start /tmp/my-slurm)"   # prints the exports to use it
#   sinfo; python train.py -m launcher=slurm seed=0,1 hydra.launcher.partition=cpu ...
#   tests/cluster/cluster.sh stop /tmp/my-slurm               # stops exactly what start started
#
# start runs, each in the foreground of a background process whose PID goes to STATE/pids:
# munged (its own key and socket), mariadbd (a fresh data dir, a user gnngmm/gnngmm, databases
# slurm_acct_db and optuna), slurmdbd, slurmctld, slurmd; then waits until the node is idle and
# sacct answers. Ports are free ones picked at start. It prints the variables that point the SLURM
# commands (and submitit, and the jobs) at this cluster:
#   SLURM_CONF, GNNGMM_SLURM_STATE, GNNGMM_MARIADB_URL (an Optuna storage URL on the optuna database)
# stop cancels the cluster's jobs, then signals those PIDs (SIGTERM, SIGKILL after 20 s) in reverse.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"

die() { echo "cluster.sh: $*" >&2; exit 1; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds
  local limit=$1 what=$2
  shift 2
  for _ in $(seq $((limit * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "timed out after ${limit}s waiting for $what (logs in $STATE/log)"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

launch() {  # launch NAME COMMAND...: run COMMAND in the background, record its PID
  local name=$1
  shift
  "$@" >>"$STATE/log/$name.out" 2>&1 &
  echo "$! $name" >>"$STATE/pids"
}

fill() {  # fill TEMPLATE OUTPUT
  sed -e "s|@STATE@|$STATE|g" -e "s|@NODE@|$NODE|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEMORY_MB@|$MEMORY_MB|g" \
    -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" -e "s|@DBD_PORT@|$DBD_PORT|g" \
    -e "s|@DB_PORT@|$DB_PORT|g" "$1" >"$2"
}

start() {
  [ "$(id -u)" = 0 ] || die "needs root (the daemons run as root here)"
  for cmd in munged mariadbd mariadb-install-db slurmdbd slurmctld slurmd sinfo sacct; do
    command -v "$cmd" >/dev/null || die "$cmd not found: apt-get install -y slurmctld slurmd slurm-client munge slurmdbd mariadb-server"
  done
  mkdir -p "$STATE"
  STATE="$(cd "$STATE" && pwd)"
  [ ! -s "$STATE/pids" ] || die "$STATE already holds a started cluster (stop it first)"
  chmod 711 "$STATE"  # munged wants its socket reachable by every user
  mkdir -p "$STATE/log" "$STATE/munge" "$STATE/slurmctld" "$STATE/slurmd" "$STATE/mysql"
  : >"$STATE/pids"
  NODE="$(hostname -s)"
  CPUS="$(nproc)"
  MEMORY_MB=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2))
  CTLD_PORT=$(free_port) SLURMD_PORT=$(free_port) DBD_PORT=$(free_port) DB_PORT=$(free_port)

  # munge: a fresh key, a private socket
  dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$STATE/munge/munge.key"
  launch munged munged --foreground --force --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/munge/munged.pid" --seed-file="$STATE/munge/munged.seed" --log-file="$STATE/log/munged.log"
  wait_for 20 munged test -S "$STATE/munge/munge.socket"

  # MariaDB: slurmdbd's store, and a database for Optuna studies
  mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql" --auth-root-authentication-method=normal \
    --skip-test-db >>"$STATE/log/mariadb-install.out" 2>&1 || die "mariadb-install-db failed (see $STATE/log)"
  launch mariadbd mariadbd --no-defaults --user=root --datadir="$STATE/mysql" --socket="$STATE/mysql.sock" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$STATE/mariadbd.pid" \
    --log-error="$STATE/log/mariadbd.log" --innodb-buffer-pool-size=64M
  wait_for 60 mariadbd mariadb --no-defaults --socket="$STATE/mysql.sock" -u root -e "SELECT 1"
  mariadb --no-defaults --socket="$STATE/mysql.sock" -u root -e "
    CREATE USER 'gnngmm'@'127.0.0.1' IDENTIFIED BY 'gnngmm';
    GRANT ALL PRIVILEGES ON *.* TO 'gnngmm'@'127.0.0.1';
    CREATE DATABASE slurm_acct_db; CREATE DATABASE optuna;"

  # SLURM
  fill "$HERE/slurm.conf.in" "$STATE/slurm.conf"
  fill "$HERE/slurmdbd.conf.in" "$STATE/slurmdbd.conf"
  chmod 600 "$STATE/slurmdbd.conf"
  export SLURM_CONF="$STATE/slurm.conf"
  launch slurmdbd slurmdbd -D
  wait_for 60 "slurmdbd" bash -c "echo >/dev/tcp/127.0.0.1/$DBD_PORT"
  launch slurmctld slurmctld -D -i
  wait_for 60 slurmctld scontrol ping
  launch slurmd slurmd -D -N "$NODE"
  wait_for 90 "the node to be idle" bash -c "sinfo -h -N -o %t | grep -qx idle"
  wait_for 60 sacct sacct -n -X -S now
  cat <<EOF
export SLURM_CONF=$STATE/slurm.conf
export GNNGMM_SLURM_STATE=$STATE
export GNNGMM_MARIADB_URL=mysql+pymysql://gnngmm:gnngmm@127.0.0.1:$DB_PORT/optuna
EOF
}

stop() {
  [ -f "$STATE/pids" ] || die "$STATE/pids not found: nothing started there"
  export SLURM_CONF="$STATE/slurm.conf"
  if [ -f "$SLURM_CONF" ] && scontrol ping >/dev/null 2>&1; then
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      scancel $jobs || true
      for _ in $(seq 40); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.5; done
    fi
  fi
  tac "$STATE/pids" | while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "cluster.sh: $name ($pid) still running after SIGTERM: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
  done
  mv "$STATE/pids" "$STATE/pids.stopped"
}

[ $# = 2 ] || die "usage: cluster.sh start|stop STATE_DIR"
STATE=$2
case $1 in
  start) start ;;
  stop) stop ;;
  *) die "usage: cluster.sh start|stop STATE_DIR" ;;
esac

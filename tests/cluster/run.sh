#!/usr/bin/env bash
# make test-cluster: install Debian's SLURM, MariaDB and munge, start a single-node cluster in a
# temporary dir (tests/cluster/cluster.sh), run the cluster tests against it, stop exactly the
# daemons it started. Skipped, with one line saying why, where it cannot run (not root, no apt-get,
# the packages cannot be installed).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
PACKAGES="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"

skip() { echo "test-cluster skipped: $*"; exit 0; }

[ "$(id -u)" = 0 ] || skip "needs root to run the SLURM daemons"
command -v apt-get >/dev/null || skip "needs apt-get to install $PACKAGES"
if ! dpkg -s $PACKAGES >/dev/null 2>&1; then
  # the packages' scripts must not start system-wide daemons: this test starts its own
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  installed=1
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES) >/tmp/gnngmm-apt.log 2>&1 ||
    installed=""
  [ -z "$policy_added" ] || rm -f /usr/sbin/policy-rc.d
  [ -n "$installed" ] || skip "apt-get could not install $PACKAGES (/tmp/gnngmm-apt.log)"
fi
"$PYTHON" -c "import pymysql" 2>/dev/null || skip "pymysql is not installed (make install-test installs it)"

start=$(date +%s)
STATE=$(mktemp -d /tmp/gnngmm-slurm.XXXXXX)
stop() { tests/cluster/cluster.sh stop "$STATE" || true; rm -rf "$STATE"; }
trap stop EXIT
eval "$(tests/cluster/cluster.sh start "$STATE")"
echo "test-cluster: single-node SLURM up in $(($(date +%s) - start)) s ($STATE)"
status=0
"$PYTHON" -m pytest -m cluster tests/cluster -q -p no:cacheprovider "$@" || status=$?
# a failed run keeps the daemons' logs
[ $status = 0 ] || { cp -r "$STATE/log" "/tmp/gnngmm-slurm-logs.$$" && echo "test-cluster: logs in /tmp/gnngmm-slurm-logs.$$"; }
echo "test-cluster: $(($(date +%s) - start)) s in all"
exit $status

#!/usr/bin/env bash
# A real single-node SLURM for the `slurm` tests (tests/test_slurm.py), from Debian's packages.
#
#   bash ci/slurm.sh start   # install if needed, configure, start, wait until the node is idle
#   bash ci/slurm.sh stop    # cancel the jobs, stop every daemon by the PID it wrote
#
# Root on a machine without systemd (a CI container). Both are idempotent: start on a running
# cluster checks it and changes nothing (unless its slurm.conf changed: then slurmctld and slurmd
# restart); stop on a stopped one does nothing. One line per step.
#
# The cluster keeps its state, PID files and logs in a folder of its own (SLURM_CI_HOME, default
# /var/lib/slurm-ci), never in SLURM's default state folder: what another cluster left there (another
# ClusterName: "fatal: CLUSTER NAME MISMATCH") cannot break it. A start that fails part-way stops
# the daemons it started (those it found running are left alone) and exits 1 with the failing step's
# own error.
#
# Accounting (slurmdbd on MariaDB, so that sacct works as on real clusters) is on by default;
# SLURM_ACCOUNTING=0 starts the cluster without it (AccountingStorageType=accounting_storage/none).
# Every daemon listens on loopback addresses only. Logs: $SLURM_CI_HOME/log/.
#
# For a second, throwaway cluster (tests/test_slurm.py starts one to check the failure path):
# SLURM_CI_HOME, SLURM_CI_CONF_DIR (default /etc/slurm, where the clients look), SLURM_CI_CLUSTER
# (default ci), SLURM_CI_PORT (slurmctld's; slurmd takes the next; default 6817), and
# SLURM_CI_FAIL_AFTER=STEP, which fails the start right after STEP (packages, munged, mariadbd,
# slurmdbd, slurmctld, slurmd), as a real failure there would.
set -euo pipefail

ACCOUNTING="${SLURM_ACCOUNTING:-1}"
CLUSTER="${SLURM_CI_CLUSTER:-ci}"
NODE="$(hostname -s)"
HOME_DIR="${SLURM_CI_HOME:-/var/lib/slurm-ci}"
CONF_DIR="${SLURM_CI_CONF_DIR:-/etc/slurm}"
PORT="${SLURM_CI_PORT:-6817}"
FAIL_AFTER="${SLURM_CI_FAIL_AFTER:-}"
RUN_DIR=$HOME_DIR/run
LOG_DIR=$HOME_DIR/log
STATE_DIR=$HOME_DIR/slurmctld
SPOOL_DIR=$HOME_DIR/slurmd
DB_PASS=slurm-ci  # a loopback-only database of a throwaway cluster
export SLURM_CONF="$CONF_DIR/slurm.conf"  # the daemons and the clients this script runs read this one
STARTED=()  # "NAME PIDFILE" of each daemon this start started, in order
PACKAGES=(slurmctld slurmd slurm-client munge)
DB_PACKAGES=(slurmdbd mariadb-server)

say() { echo "slurm.sh: $*"; }
die() { echo "slurm.sh: error: $*" >&2; exit 1; }

started() {  # started NAME PIDFILE: remember a daemon this start started
    STARTED+=("$1 $2")
}

step_done() {  # step_done STEP: SLURM_CI_FAIL_AFTER=STEP fails the start here
    [[ "$FAIL_AFTER" != "$1" ]] || die "SLURM_CI_FAIL_AFTER=$1: failing the start after $1"
}

undo_start() {  # on a failed start: stop what it started, newest first
    local code=$? index name pidfile
    ((code != 0)) || return 0
    for ((index = ${#STARTED[@]} - 1; index >= 0; index--)); do
        read -r name pidfile <<<"${STARTED[index]}"
        stop_daemon "$name" "$pidfile"
    done
    ((${#STARTED[@]} == 0)) || echo "slurm.sh: the start failed: stopped the ${#STARTED[@]} daemon(s) it had started" >&2
    exit "$code"
}

alive() {  # alive PIDFILE: the daemon whose PID is in PIDFILE still runs
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

last_words() {  # last_words NAME: ": <the last lines of NAME's log>", if it has one
    local log="$LOG_DIR/$1.log"
    [[ -s "$log" ]] && printf ': %s' "$(tail -n 2 "$log" | tr '\n' ' ')"
    return 0
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll COMMAND until it succeeds
    local limit=$1 what=$2 waited=0
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((waited++ < limit * 5)) || die "$what not ready after ${limit}s$(last_words "$what") (logs in $LOG_DIR)"
        sleep 0.2
    done
}

wait_daemon() {  # wait_daemon SECONDS NAME PIDFILE COMMAND...: as wait_for, failing at once if NAME exits
    local limit=$1 name=$2 pidfile=$3 waited=0
    shift 3
    until "$@" >/dev/null 2>&1; do
        if ((waited > 10)) && ! alive "$pidfile"; then
            die "$name exited during its start$(last_words "$name")"
        fi
        ((waited++ < limit * 5)) || die "$name not ready after ${limit}s$(last_words "$name") (logs in $LOG_DIR)"
        sleep 0.2
    done
}

install_packages() {
    local wanted=("${PACKAGES[@]}") missing=() started=$SECONDS
    [[ "$ACCOUNTING" == 1 ]] && wanted+=("${DB_PACKAGES[@]}")
    for package in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
    done
    if ((${#missing[@]} == 0)); then
        say "packages present (${wanted[*]})"
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>"$LOG_DIR/apt.log" \
        || { cat "$LOG_DIR/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
    say "installed ${missing[*]} in $((SECONDS - started))s"
}

write_if_changed() {  # write_if_changed FILE MODE: stdin into FILE; returns 1 when it was already so
    local file=$1 mode=$2 text
    text="$(cat)"
    if [[ -f "$file" ]] && [[ "$(cat "$file")" == "$text" ]]; then
        return 1
    fi
    printf '%s\n' "$text" >"$file.tmp"
    chmod "$mode" "$file.tmp"
    mv "$file.tmp" "$file"
}

slurm_conf() {
    local cpus memory_mb
    cpus="$(nproc)"
    memory_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) * 8 / 10 / 1024))
    local storage="accounting_storage/none"
    [[ "$ACCOUNTING" == 1 ]] && storage="accounting_storage/slurmdbd"
    cat <<EOF
# Written by ci/slurm.sh: one node, loopback only.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds (120 by default) before it may start again, and pending jobs
# are scheduled every sched_interval (60) or bf_interval (30) seconds: short here, for quick tests.
AuthInfo=cred_expire=10
SchedulerParameters=sched_interval=2,bf_interval=2
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((memory_mb / cpus))
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=$storage
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if alive /run/munge/munged.pid; then
        say "munged running"
        return
    fi
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    [[ -s /etc/munge/munge.key ]] || { mungekey --create --keyfile /etc/munge/munge.key && chown munge:munge /etc/munge/munge.key; }
    runuser -u munge -- /usr/sbin/munged --force
    started munged /run/munge/munged.pid
    wait_for 10 munged munge -n
    say "munged started"
}

start_database() {
    if alive /run/mysqld/mysqld.pid; then
        say "mariadbd running"
    else
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        setsid mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
            >"$LOG_DIR/mariadbd.log" 2>&1 </dev/null &
        started mariadbd /run/mysqld/mysqld.pid
        wait_for 60 mariadbd mariadb-admin ping
        say "mariadbd started on 127.0.0.1"
    fi
    mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurmdbd() {
    write_if_changed "$CONF_DIR/slurmdbd.conf" 600 <<EOF || true
# Written by ci/slurm.sh.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$RUN_DIR/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DB_PASS
EOF
    if alive "$RUN_DIR/slurmdbd.pid"; then
        say "slurmdbd running"
    else
        slurmdbd
        started slurmdbd "$RUN_DIR/slurmdbd.pid"
        wait_daemon 120 slurmdbd "$RUN_DIR/slurmdbd.pid" sacctmgr --noheader list cluster
        say "slurmdbd started"
    fi
    if [[ -z "$(sacctmgr --noheader --parsable2 list cluster format=cluster "cluster=$CLUSTER")" ]]; then
        sacctmgr --immediate add cluster "$CLUSTER" >/dev/null
        say "cluster $CLUSTER added to the accounting database"
    fi
}

node_ready() {
    local state
    state="$(sinfo --noheader --nodes="$NODE" --format=%t 2>/dev/null)" || return 1
    [[ "$state" == idle || "$state" == mix || "$state" == alloc ]]
}

start_slurm() {  # start_slurm CHANGED: CHANGED=1 when slurm.conf was just rewritten
    local changed=$1 started=$SECONDS
    if ((changed)) && { alive "$RUN_DIR/slurmctld.pid" || alive "$RUN_DIR/slurmd.pid"; }; then
        stop_daemon slurmd "$RUN_DIR/slurmd.pid"
        stop_daemon slurmctld "$RUN_DIR/slurmctld.pid"
        say "slurm.conf changed: restarting slurmctld and slurmd"
    fi
    if alive "$RUN_DIR/slurmctld.pid"; then
        say "slurmctld running"
    else
        slurmctld || die "slurmctld did not start$(last_words slurmctld)"
        started slurmctld "$RUN_DIR/slurmctld.pid"
        wait_daemon 30 slurmctld "$RUN_DIR/slurmctld.pid" scontrol ping
        say "slurmctld started (pid $(cat "$RUN_DIR/slurmctld.pid"))"
    fi
    step_done slurmctld
    if alive "$RUN_DIR/slurmd.pid"; then
        say "slurmd running"
    else
        slurmd || die "slurmd did not start$(last_words slurmd)"
        started slurmd "$RUN_DIR/slurmd.pid"
        say "slurmd started"
    fi
    step_done slurmd
    if ! node_ready; then
        sleep 1
        node_ready || scontrol update nodename="$NODE" state=resume 2>/dev/null || true
        wait_for 60 "node $NODE" node_ready
    fi
    say "node $NODE $(sinfo --noheader --nodes="$NODE" --format='%t, %c CPUs, %m MB') (waited $((SECONDS - started))s)"
}

stop_daemon() {  # stop_daemon NAME PIDFILE: SIGTERM, then SIGKILL after 20 s
    local name=$1 pidfile=$2 pid waited=0
    if ! alive "$pidfile"; then
        rm -f "$pidfile"
        return
    fi
    pid="$(cat "$pidfile")"
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited++ == 100)); then
            kill -9 "$pid" 2>/dev/null || true
        fi
        sleep 0.2
    done
    rm -f "$pidfile"
    say "$name stopped"
}

start() {
    trap undo_start EXIT
    mkdir -p "$LOG_DIR" "$RUN_DIR" "$STATE_DIR" "$SPOOL_DIR" "$CONF_DIR"
    install_packages
    step_done packages
    local changed=0
    slurm_conf | write_if_changed "$CONF_DIR/slurm.conf" 644 && changed=1  # the clients read it too
    start_munge
    step_done munged
    if [[ "$ACCOUNTING" == 1 ]]; then
        start_database
        step_done mariadbd
        start_slurmdbd
        step_done slurmdbd
    fi
    start_slurm "$changed"
}

stop() {
    if alive "$RUN_DIR/slurmctld.pid"; then
        local jobs
        jobs="$(squeue --noheader --format=%A 2>/dev/null | sort -u | tr '\n' ' ')"
        if [[ -n "${jobs// /}" ]]; then
            # shellcheck disable=SC2086  # one job id per word
            scancel $jobs 2>/dev/null || true
            say "cancelled jobs $jobs"
        fi
    fi
    stop_daemon slurmd "$RUN_DIR/slurmd.pid"
    stop_daemon slurmctld "$RUN_DIR/slurmctld.pid"
    stop_daemon slurmdbd "$RUN_DIR/slurmdbd.pid"
    stop_daemon mariadbd /run/mysqld/mysqld.pid
    stop_daemon munged /run/munge/munged.pid
    say "stopped"
}

[[ "$(id -u)" == 0 ]] || die "run as root (it installs packages and starts daemons)"
case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) die "usage: bash ci/slurm.sh start|stop" ;;
esac

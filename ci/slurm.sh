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
# Accounting (slurmdbd on MariaDB, so that sacct works as on real clusters) is on by default;
# SLURM_ACCOUNTING=0 starts the cluster without it (AccountingStorageType=accounting_storage/none).
# Every daemon listens on loopback addresses only. Logs: /var/log/slurm/.
set -euo pipefail

ACCOUNTING="${SLURM_ACCOUNTING:-1}"
CLUSTER=ci
NODE="$(hostname -s)"
CONF_DIR=/etc/slurm
RUN_DIR=/var/run/slurm
LOG_DIR=/var/log/slurm
SPOOL=/var/spool
DB_PASS=slurm-ci  # a loopback-only database of a throwaway cluster
PACKAGES=(slurmctld slurmd slurm-client munge)
DB_PACKAGES=(slurmdbd mariadb-server)

say() { echo "slurm.sh: $*"; }
die() { echo "slurm.sh: error: $*" >&2; exit 1; }

alive() {  # alive PIDFILE: the daemon whose PID is in PIDFILE still runs
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll COMMAND until it succeeds
    local limit=$1 what=$2 waited=0
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((waited++ < limit * 5)) || die "$what not ready after ${limit}s (logs in $LOG_DIR)"
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
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>"$LOG_DIR.apt.log" \
        || { cat "$LOG_DIR.apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
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
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds (120 by default) before it may start again, and pending jobs
# are scheduled every sched_interval (60) or bf_interval (30) seconds: short here, for quick tests.
AuthInfo=cred_expire=10
SchedulerParameters=sched_interval=2,bf_interval=2
StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
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
        wait_for 120 slurmdbd sacctmgr --noheader list cluster
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
        slurmctld
        wait_for 30 slurmctld scontrol ping
        say "slurmctld started"
    fi
    if alive "$RUN_DIR/slurmd.pid"; then
        say "slurmd running"
    else
        slurmd
        say "slurmd started"
    fi
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
    mkdir -p "$LOG_DIR" "$RUN_DIR" "$SPOOL/slurmctld" "$SPOOL/slurmd" "$CONF_DIR"
    install_packages
    local changed=0
    slurm_conf | write_if_changed "$CONF_DIR/slurm.conf" 644 && changed=1  # the clients read it too
    start_munge
    if [[ "$ACCOUNTING" == 1 ]]; then
        start_database
        start_slurmdbd
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

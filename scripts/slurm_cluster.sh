#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, from Debian's packages, bound to localhost.
#
# It exists so that `snakemake --profile profiles/slurm` can be proven against a real SLURM
# (tests/test_slurm.py, and CI through .ci/run), not to run production work.
#
#   bash scripts/slurm_cluster.sh install   # apt-get install munge, slurmctld, slurmd, slurmdbd, MariaDB
#   bash scripts/slurm_cluster.sh up        # write configs, start the daemons, wait for an idle node
#   bash scripts/slurm_cluster.sh status    # daemons, node state, accounting
#   bash scripts/slurm_cluster.sh down      # cancel jobs, stop the daemons that `up` started
#
# Every subcommand is idempotent. Needs root (or passwordless sudo); works without systemd:
# the daemons are started directly and remembered by their pid files.
#
# What the cluster looks like:
#   - one node, NodeName=localhost (NodeAddr 127.0.0.1), CPUs = nproc, RealMemory = 90% of RAM;
#     cores and memory are consumable (select/cons_tres, CR_Core_Memory), so --mem and
#     --cpus-per-task are scheduled as on a real cluster, but not enforced (no cgroups, no
#     CPU binding: every job sees all CPUs, as the jobs of a local run do);
#   - one partition "main" (the default), ClusterName=compactbnn;
#   - accounting through slurmdbd + MariaDB (socket only, no TCP), because the Snakemake
#     SLURM executor plugin asks `sacct` for the state of its jobs; an account "compactbnn"
#     with root as a user, so that sacct/sacctmgr answer as on a real cluster;
#   - COMPACTBNN_SLURM_MEMORY_MB overrides RealMemory, for machines with less memory than the
#     workflow's rules request (trainings ask for 8 GB);
#   - COMPACTBNN_SLURM_GPUS (default: nproc) *fake* GPUs as generic resources (GRES gpu; in
#     gres.conf each is a link to /dev/null, since SLURM drops GPUs without a device file).
#     SLURM schedules and accounts `--gpus=1` requests against them exactly as it would real
#     ones (and sets CUDA_VISIBLE_DEVICES), so the profile's GPU requests are exercised
#     unchanged, while the jobs compute on the CPU.
#
# Files: /etc/slurm/{slurm.conf,gres.conf,slurmdbd.conf} (each starts with a marker line;
# a slurm.conf without it is never overwritten), logs in /var/log/slurm/, state in
# /var/spool/slurm{ctld,d}/ and /var/lib/compactbnn-slurm/, MariaDB's data in /var/lib/mysql,
# pid files in /run/slurm/ and /run/compactbnn-slurm/.
set -euo pipefail

readonly MARKER="# Written by compactbnn scripts/slurm_cluster.sh: a single-node test cluster."
readonly CLUSTER=compactbnn
readonly ACCOUNT=compactbnn
readonly ETC=/etc/slurm
readonly RUN=/run/compactbnn-slurm          # which daemons `up` started (and `down` may stop)
readonly STATE=/var/lib/compactbnn-slurm    # database password, fake GPU device links
readonly SLURM_RUN=/run/slurm
readonly LOG=/var/log/slurm
readonly PACKAGES=(munge slurm-wlm slurmdbd slurm-client mariadb-server mariadb-client)
readonly DB_SOCKET=/run/mysqld/mysqld.sock

say() { echo "slurm_cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Run as root: directly, or through sudo when it is there and needs no password.
as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

require_root() {
    if [[ $EUID -ne 0 ]] && ! sudo -n true 2>/dev/null; then
        die "needs root (or passwordless sudo) to install packages and start daemons"
    fi
}

# Poll a command until it succeeds; give up after $1 seconds naming what was awaited.
wait_for() {
    local timeout=$1 what=$2; shift 2
    local waited=0
    until "$@" >/dev/null 2>&1; do
        if (( waited >= timeout )); then
            die "timed out after ${timeout}s waiting for ${what}"
        fi
        sleep 1; waited=$((waited + 1))
    done
}

pid_alive() {  # pid_alive PIDFILE
    [[ -s $1 ]] && as_root kill -0 "$(as_root cat "$1")" 2>/dev/null
}

packages_installed() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
}

cmd_install() {
    if packages_installed; then
        say "packages already installed: ${PACKAGES[*]}"
        return
    fi
    require_root
    export DEBIAN_FRONTEND=noninteractive
    # Package installation must not try to start daemons: `up` does that, configured.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"; added_policy=1
    fi
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null \
        || { (( added_policy )) && as_root rm -f "$policy"; die "apt-get install failed"; }
    (( added_policy )) && as_root rm -f "$policy"
    say "installed: $(dpkg-query -W -f='${Package} ${Version}\n' slurmctld slurmdbd munge mariadb-server | tr '\n' ' ')"
}

# Write a file only when its content changes; return 0 when it changed.
write_if_changed() {  # write_if_changed PATH MODE < content
    local path=$1 mode=$2 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if as_root test -e "$path" && as_root cmp -s "$tmp" "$path"; then
        rm -f "$tmp"; return 1
    fi
    as_root install -m "$mode" -o root -g root "$tmp" "$path"
    rm -f "$tmp"
    return 0
}

# The node's topology as slurmd detects it (CPUs, boards, sockets, cores, threads), so that
# slurmd does not have to "reconfigure socket/core boundaries" it disagrees with.
node_topology() {
    /usr/sbin/slurmd -C | head -1 | tr ' ' '\n' \
        | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' '
}
# 90% of physical memory in MiB (slurmd drains a node that reports less than RealMemory), or
# COMPACTBNN_SLURM_MEMORY_MB. Memory is not enforced here, so a larger value only lets jobs
# that ask for more than the machine has (e.g. 8 GB trainings on a 4 GB machine) be scheduled.
node_memory_mb() {
    if [[ -n ${COMPACTBNN_SLURM_MEMORY_MB:-} ]]; then echo "$COMPACTBNN_SLURM_MEMORY_MB"; return; fi
    awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo
}
# With COMPACTBNN_SLURM_MEMORY_MB, slurmd must trust the configured memory over what it sees.
memory_override() {
    if [[ -n ${COMPACTBNN_SLURM_MEMORY_MB:-} ]]; then
        echo "SlurmdParameters=config_overrides"
    else
        echo "# RealMemory is what this machine has; slurmd checks it."
    fi
}
fake_gpus() { echo "${COMPACTBNN_SLURM_GPUS:-$(nproc)}"; }

slurm_conf() {
    cat <<EOF
$MARKER
# Regenerated by \`bash scripts/slurm_cluster.sh up\`; edit the script, not this file.
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
# No CPU binding: a job sees all of the node's CPUs, as a local run's jobs do. XLA sizes its
# CPU thread pool by the CPUs it may use, and float32 sums (HMC's energies) then differ in the
# last bits between a 1-CPU job and a local one; unbound, cluster and local runs agree exactly.
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$SLURM_RUN/slurmctld.pid
SlurmdPidFile=$SLURM_RUN/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# Scheduling: cores and memory are consumable, so --cpus-per-task and --mem matter.
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# Keep finished jobs visible to squeue for 10 minutes (sacct keeps them for ever).
MinJobAge=600
# Accounting through slurmdbd: the executor plugin polls sacct for job states.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
# Keep the comment (the plugin writes rule_<name>_wildcards_<...>) so sacct shows the rule.
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
# Fake GPUs (see gres.conf): scheduled and accounted, bound to no device.
GresTypes=gpu
$(memory_override)
NodeName=localhost NodeAddr=127.0.0.1 $(node_topology)RealMemory=$(node_memory_mb) Gres=gpu:$(fake_gpus) State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

# SLURM drops GPUs without a device file, so each fake GPU is a link to /dev/null.
make_fake_gpu_devices() {
    local i
    as_root install -d -m 755 "$STATE"
    as_root rm -f "$STATE"/fake_gpu*
    for ((i = 0; i < $(fake_gpus); i++)); do as_root ln -s /dev/null "$STATE/fake_gpu$i"; done
}

gres_conf() {
    cat <<EOF
$MARKER
# $(fake_gpus) fake GPUs: links to /dev/null, so SLURM schedules and accounts --gpus requests
# while no device exists. A real GPU node lists File=/dev/nvidia[0-3] here (or AutoDetect=nvml).
NodeName=localhost Name=gpu File=$STATE/fake_gpu[0-$(($(fake_gpus) - 1))]
EOF
}

db_password() {
    # One random password per machine, kept beside the other state of this cluster.
    local f=$STATE/db_password
    if ! as_root test -s "$f"; then
        as_root install -d -m 700 "$(dirname "$f")"
        head -c 18 /dev/urandom | base64 | tr -d '/+=' | as_root tee "$f" >/dev/null
        as_root chmod 600 "$f"
    fi
    as_root cat "$f"
}

slurmdbd_conf() {
    cat <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$SLURM_RUN/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
# "localhost" makes the MariaDB client use the unix socket; the server listens on no port.
StorageHost=localhost
StorageUser=slurm
StoragePass=$(db_password)
StorageLoc=slurm_acct_db
EOF
}

write_configs() {  # returns 0 when a SLURM config changed
    as_root install -d -m 755 "$ETC" "$LOG" "$SLURM_RUN" "$RUN" /var/spool/slurmctld /var/spool/slurmd
    if as_root test -e "$ETC/slurm.conf" && ! as_root grep -qxF "$MARKER" "$ETC/slurm.conf" \
        && [[ ${SLURM_CLUSTER_FORCE:-0} != 1 ]]; then
        die "$ETC/slurm.conf exists and was not written by this script; refusing to replace it (set SLURM_CLUSTER_FORCE=1 to override)"
    fi
    make_fake_gpu_devices
    local changed=1
    slurm_conf | write_if_changed "$ETC/slurm.conf" 644 && changed=0
    gres_conf | write_if_changed "$ETC/gres.conf" 644 && changed=0
    slurmdbd_conf | write_if_changed "$ETC/slurmdbd.conf" 600 && changed=0
    return $changed
}

start_munge() {
    if as_root munge -n </dev/null 2>/dev/null | as_root unmunge >/dev/null 2>&1; then
        say "munged already running"; return
    fi
    if ! as_root test -s /etc/munge/munge.key; then
        as_root mungekey --create --keyfile=/etc/munge/munge.key
        as_root chown munge:munge /etc/munge/munge.key
        as_root chmod 400 /etc/munge/munge.key
    fi
    as_root install -d -m 755 -o munge -g munge /run/munge
    as_root install -d -m 700 -o munge -g munge /var/log/munge /var/lib/munge
    as_root runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    as_root cp /run/munge/munged.pid "$RUN/munged.pid"
    wait_for 30 "munged" sh -c 'munge -n </dev/null | unmunge'
    say "munged started"
}

db_alive() { as_root mariadb-admin --socket="$DB_SOCKET" ping; }

start_mariadb() {
    if db_alive >/dev/null 2>&1; then
        say "MariaDB already running"
    else
        as_root install -d -m 755 -o mysql -g mysql /run/mysqld
        if ! as_root test -d /var/lib/mysql/mysql; then
            as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
        fi
        # --skip-networking: the socket only, nothing listens on TCP.
        as_root setsid /usr/sbin/mariadbd --user=mysql --skip-networking \
            --socket="$DB_SOCKET" --pid-file=/run/mysqld/mysqld.pid \
            --log-error="$LOG/mariadb.log" </dev/null >/dev/null 2>&1 &
        wait_for 60 "MariaDB" db_alive
        as_root cp /run/mysqld/mysqld.pid "$RUN/mariadbd.pid"
        say "MariaDB started"
    fi
    # Root reaches MariaDB through unix_socket authentication (Debian's default).
    as_root mariadb --socket="$DB_SOCKET" <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$(db_password)';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$(db_password)';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
}

# Start a SLURM daemon unless its pid file names a live process (or restart it when asked).
start_daemon() {  # start_daemon NAME PIDFILE RESTART COMMAND...
    local name=$1 pidfile=$2 restart=$3; shift 3
    if pid_alive "$pidfile"; then
        if [[ $restart == 1 ]]; then
            stop_pid "$name" "$pidfile"
        else
            say "$name already running"; return
        fi
    fi
    as_root "$@"
    wait_for 30 "$name to write $pidfile" pid_alive "$pidfile"
    as_root cp "$pidfile" "$RUN/$name.pid"
    say "$name started"
}

stop_pid() {  # stop_pid NAME PIDFILE: TERM the process it names, wait, then KILL
    local name=$1 pidfile=$2 pid
    pid_alive "$pidfile" || return 0
    pid=$(as_root cat "$pidfile")
    as_root kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while as_root kill -0 "$pid" 2>/dev/null && (( waited < 30 )); do sleep 1; waited=$((waited + 1)); done
    if as_root kill -0 "$pid" 2>/dev/null; then as_root kill -KILL "$pid" 2>/dev/null || true; fi
    say "$name stopped (pid $pid)"
}

accounting_ready() { as_root sacctmgr -n -P show cluster format=cluster; }

setup_accounting() {
    if ! as_root sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
        as_root sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if ! as_root sacctmgr -n -P show account format=account | grep -qx "$ACCOUNT"; then
        as_root sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
            Description="compactbnn workflow tests" Organization=compactbnn >/dev/null
    fi
    local user
    for user in root ${SUDO_USER:-}; do
        if ! as_root sacctmgr -n -P show association where user="$user" account="$ACCOUNT" \
            format=user | grep -qx "$user"; then
            as_root sacctmgr -i add user "$user" Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
        fi
        # Jobs without -A land in this account, as they would in a user's default account.
        as_root sacctmgr -i modify user where name="$user" set DefaultAccount="$ACCOUNT" >/dev/null || true
    done
}

node_state() { sinfo -h -n localhost -o %T 2>/dev/null; }
# Serving jobs: idle, or busy with jobs of an earlier run.
node_serving() { [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]; }
# Registered with slurmctld: any state but unknown/down or not responding (a trailing "*").
node_registered() { [[ -n $(node_state) && ! $(node_state) =~ (^unknown|^down|\*$) ]]; }

cmd_up() {
    require_root
    packages_installed || die "SLURM is not installed: run \`bash $0 install\` first"
    local restart=0
    write_configs && restart=1
    if (( restart )); then say "configuration written to $ETC"; fi
    start_munge
    start_mariadb
    start_daemon slurmdbd "$SLURM_RUN/slurmdbd.pid" "$restart" /usr/sbin/slurmdbd
    wait_for 60 "slurmdbd to answer sacctmgr" accounting_ready
    setup_accounting
    start_daemon slurmctld "$SLURM_RUN/slurmctld.pid" "$restart" /usr/sbin/slurmctld
    wait_for 60 "slurmctld to answer" as_root scontrol ping
    start_daemon slurmd "$SLURM_RUN/slurmd.pid" "$restart" /usr/sbin/slurmd -N localhost
    wait_for 60 "node localhost to register with slurmctld" node_registered
    # A node drained or down after an earlier run (e.g. a killed slurmd) returns to service.
    if ! node_serving; then
        say "node localhost is $(node_state); resuming it"
        as_root scontrol update NodeName=localhost State=RESUME || true
    fi
    wait_for 60 "node localhost to become idle" node_serving
    sinfo
}

cmd_down() {
    require_root
    if pid_alive "$SLURM_RUN/slurmctld.pid"; then
        as_root scancel --full --state=PENDING,RUNNING --user=root 2>/dev/null || true
        [[ -n ${SUDO_USER:-} ]] && as_root scancel --user="$SUDO_USER" 2>/dev/null || true
    fi
    # Stop only what `up` started (its pid copies in $RUN), newest first.
    local name
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        if [[ -e $RUN/$name.pid ]]; then
            stop_pid "$name" "$RUN/$name.pid"
            as_root rm -f "$RUN/$name.pid"
        fi
    done
    say "down"
}

cmd_status() {
    local name rc=0
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        if pid_alive "$RUN/$name.pid"; then
            echo "$name: running (pid $(as_root cat "$RUN/$name.pid"), started by this script)"
        else
            echo "$name: not started by this script"
        fi
    done
    if command -v sinfo >/dev/null && as_root scontrol ping >/dev/null 2>&1; then
        sinfo
        as_root sacctmgr -n -P show association format=cluster,account,user 2>/dev/null || true
    else
        echo "slurmctld: not answering"; rc=1
    fi
    return $rc
}

main() {
    case ${1:-} in
        install) cmd_install ;;
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        *) echo "usage: $0 install|up|down|status" >&2; exit 2 ;;
    esac
}

main "$@"

#!/usr/bin/env bash
# A one-node SLURM cluster for tests, from Debian's packages, without systemd:
#   tests/cluster/slurm-cluster.sh up      install (if missing), configure, start, wait until the node is idle
#   tests/cluster/slurm-cluster.sh down    cancel jobs, stop the daemons by their pid files, remove the config
#   tests/cluster/slurm-cluster.sh status  sinfo and the daemons' pids
# Needs root. Everything lives in $SLURM_TEST_DIR (default /tmp/convlens-slurm): pid files, logs,
# spool and state, a private munge key and socket. The only file outside it is
# /etc/slurm/slurm.conf (+ gres.conf), where every SLURM command looks; it is written only when
# absent or written by this script before, and removed by `down`.
# The node has the machine's CPUs (nproc) and memory (free -m), one stand-in GPU (a GRES on
# /dev/null), and two partitions on it, `cpu` and `gpu`, so that the project's SLURM profile runs unchanged.
set -euo pipefail

DIR=${SLURM_TEST_DIR:-/tmp/convlens-slurm}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by convlens tests/cluster/slurm-cluster.sh"
PACKAGES=(slurmctld slurmd slurm-client munge)

log() { echo "slurm-cluster: $*" >&2; }

ours() { [[ -f $CONF ]] && head -n1 "$CONF" | grep -qxF "$MARK"; }

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
    fi
}

write_config() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(free -m | awk '/^Mem:/ {print $2}')
    mkdir -p "$CONF_DIR"
    cat >"$CONF" <<EOF
$MARK
ClusterName=convlens-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmdSpoolDir=$DIR/spool
StateSaveLocation=$DIR/state
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
# jobs stay visible to squeue for 5 min after they end: the profile's status command is squeue
MinJobAge=300
# a cancelled job gets SIGKILL 5 s after SIGTERM (default 30), so that down is quick
KillWait=5
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
    # a stand-in GPU: SLURM schedules it (and sets CUDA_VISIBLE_DEVICES); slurmd drops a GPU
    # without a device file, and task/none binds nothing, so /dev/null serves
    printf '%s\nNodeName=%s Name=gpu File=/dev/null\n' "$MARK" "$host" >"$CONF_DIR/gres.conf"
    log "node $host: CPUs=$cpus RealMemory=${mem} MB Gres=gpu:1; partitions cpu (default), gpu"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...  (COMMAND itself must not hang)
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    while ((SECONDS < deadline)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    log "timed out after $1 s waiting for $what"
    return 1
}

# SLURM's client commands retry for long when a daemon is missing: each call is bounded
node_idle() { [[ $(timeout 5 sinfo -h -N -o %t 2>/dev/null | head -n1) == idle ]]; }
no_running_jobs() { [[ -z $(timeout 5 squeue -h -t running,completing -o %i 2>/dev/null) ]]; }

up() {
    [[ $(id -u) == 0 ]] || { log "needs root"; exit 1; }
    if pid_alive "$DIR/slurmctld.pid"; then
        log "already up ($DIR)"
        return 0
    fi
    install_packages
    if [[ -f $CONF ]] && ! ours; then
        log "$CONF exists and is not ours: refusing to overwrite a real SLURM setup"
        exit 1
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR/munge" "$DIR/spool" "$DIR/state"
    chmod 700 "$DIR" "$DIR/munge"
    # a private munge key and daemon (its own socket), so a system munged is left alone
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
    munged --force --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munge/munged.seed"
    wait_for 10 munged test -S "$DIR/munge/munge.socket"
    write_config
    slurmctld -c   # -c: start from an empty state
    wait_for 20 slurmctld timeout 5 scontrol ping
    slurmd
    if ! wait_for 30 "the node to be idle" node_idle; then
        sinfo -N -l >&2 || true
        tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
        exit 1
    fi
    log "up: $(sinfo -h -o '%P %D %c %m %G %t' | tr '\n' ';')"
}

stop_pidfile() {  # stop_pidfile FILE NAME: TERM, wait up to 10 s, then KILL
    local file=$1 name=$2 pid
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 40; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name ($pid) did not stop; killing it"
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$file"
}

down() {
    if pid_alive "$DIR/slurmctld.pid" && ours; then
        # the cluster is ours alone: cancel whatever is left, so no job step outlives slurmd
        timeout 10 squeue -h -o %i 2>/dev/null | xargs -r timeout 10 scancel --quiet 2>/dev/null || true
        wait_for 15 "jobs to end" no_running_jobs || true
    fi
    stop_pidfile "$DIR/slurmd.pid" slurmd
    stop_pidfile "$DIR/slurmctld.pid" slurmctld
    stop_pidfile "$DIR/munged.pid" munged
    if ours; then
        rm -f "$CONF" "$CONF_DIR/gres.conf"
    fi
    log "down"
}

status() {
    for d in munged slurmctld slurmd; do
        if pid_alive "$DIR/$d.pid"; then echo "$d: $(cat "$DIR/$d.pid")"; else echo "$d: not running"; fi
    done
    sinfo 2>/dev/null || true
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

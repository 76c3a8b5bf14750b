#!/usr/bin/env bash
# make cluster-test: the integration config (.test/config/config.yaml) run through SLURM
# (--executor slurm with workflow/profiles/slurm) on a one-node test cluster, beside a local run
# of the same config; then tests/cluster/check.py checks that every job was a SLURM job and that
# the results are the local run's. The cluster is always torn down (trap); `make cluster-test`
# wraps this in a hard timeout. Needs root (the cluster's daemons). Keeps the work folder on failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
CLUSTER=$ROOT/tests/cluster/slurm-cluster.sh
CONFIG=$ROOT/.test/config/config.yaml
CPUS=$(nproc)
# a model job's threads in the local run (workflow/rules/common.smk tf_threads: half the cores, 1 to 8)
THREADS=$(( CPUS / 2 < 1 ? 1 : (CPUS / 2 > 8 ? 8 : CPUS / 2) ))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/convlens-cluster-test.XXXXXX")
local_pid= slurm_pid=

stop() {  # stop PID...: TERM, and KILL what is left after 5 s
    local pids=("$@")
    ((${#pids[@]})) || return 0
    kill "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        kill -0 "${pids[@]}" 2>/dev/null || break
        sleep 0.25
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - TERM INT
    # on a failure or a signal: the two runs first (Snakemake's own TERM handling waits for its
    # running jobs), then the cluster, which cancels what is left of the SLURM jobs
    stop $local_pid $slurm_pid
    "$CLUSTER" down || true
    if ((rc == 0)); then
        rm -rf "$WORK"
    else
        echo "cluster-test: failed (exit $rc); logs in $WORK" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

show_tail() {  # show_tail LOG: the end of a failed run's log
    echo "---- last lines of $1" >&2
    tail -n 40 "$1" >&2
}

snakemake() { exec "$PY" -m snakemake -s "$ROOT/Snakefile" --configfile "$CONFIG" "$@"; }

start=$SECONDS
mkdir -p "$WORK/local" "$WORK/slurm"
# The reference: the same config run locally, as tests/test_workflow.py runs it. Model rules get
# $THREADS threads here (the config's one training too, which locally would get every core) and,
# through max-threads, on the cluster: the same thread count makes the two runs' numbers equal. It
# runs at a low priority while the cluster comes up and in the SLURM run's gaps (job start-up,
# status checks), so it barely lengthens the test.
nice -n 15 "$PY" -m snakemake -s "$ROOT/Snakefile" --configfile "$CONFIG" -d "$WORK/local" --cores "$CPUS" \
    --set-threads "train_model=$THREADS" \
    >"$WORK/local.log" 2>&1 &
local_pid=$!

"$CLUSTER" up

# The project's profile unchanged, but for the test node's CPUs and a first status check after 2 s
# instead of 40 (the jobs here take seconds; MinJobAge 300 >= 3 x 2 keeps squeue as the status command).
echo "cluster-test: the SLURM run (workflow/profiles/slurm) in $WORK/slurm"
# In the background, so that a signal (the Makefile's timeout) reaches the trap at once.
snakemake -d "$WORK/slurm" --workflow-profile "$ROOT/workflow/profiles/slurm" \
    --max-threads "$THREADS" --slurm-init-seconds-before-status-checks 2 --slurm-keep-successful-logs \
    >"$WORK/slurm.log" 2>&1 &
slurm_pid=$!
if ! wait "$slurm_pid"; then
    slurm_pid=
    show_tail "$WORK/slurm.log"
    exit 1
fi
slurm_pid=
echo "cluster-test: SLURM run done after $((SECONDS - start)) s"
if ! wait "$local_pid"; then
    local_pid=
    show_tail "$WORK/local.log"
    exit 1
fi
local_pid=
"$PY" "$ROOT/tests/cluster/check.py" "$WORK" "$THREADS"
echo "cluster-test: passed in $((SECONDS - start)) s"

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
WORK=$(mktemp -d "${TMPDIR:-/tmp}/convlens-cluster-test.XXXXXX")
local_pid=

cleanup() {
    local rc=$?
    [[ -n $local_pid ]] && kill "$local_pid" 2>/dev/null && wait "$local_pid" 2>/dev/null
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

snakemake() { "$PY" -m snakemake -s "$ROOT/Snakefile" --configfile "$CONFIG" "$@"; }

start=$SECONDS
mkdir -p "$WORK/local" "$WORK/slurm"
# The reference: the same config run locally, as tests/test_workflow.py runs it. Model rules get
# min(8, CPUs) threads here and, through max-threads, on the cluster: the same thread count makes
# the two runs' numbers equal. It runs at a low priority while the cluster comes up and in the
# SLURM run's gaps (job start-up, status checks), so it barely lengthens the test.
nice -n 15 "$PY" -m snakemake -s "$ROOT/Snakefile" --configfile "$CONFIG" -d "$WORK/local" --cores "$CPUS" \
    >"$WORK/local.log" 2>&1 &
local_pid=$!

"$CLUSTER" up

# The project's profile unchanged, but for the test node's CPUs and a first status check after 2 s
# instead of 40 (the jobs here take seconds; MinJobAge 300 >= 3 x 2 keeps squeue as the status command).
echo "cluster-test: the SLURM run (workflow/profiles/slurm) in $WORK/slurm"
if ! snakemake -d "$WORK/slurm" --workflow-profile "$ROOT/workflow/profiles/slurm" \
    --max-threads "$CPUS" --slurm-init-seconds-before-status-checks 2 --slurm-keep-successful-logs \
    >"$WORK/slurm.log" 2>&1; then
    show_tail "$WORK/slurm.log"
    exit 1
fi
echo "cluster-test: SLURM run done after $((SECONDS - start)) s"
if ! wait "$local_pid"; then
    local_pid=
    show_tail "$WORK/local.log"
    exit 1
fi
local_pid=
"$PY" "$ROOT/tests/cluster/check.py" "$WORK"
echo "cluster-test: passed in $((SECONDS - start)) s"

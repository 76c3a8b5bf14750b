"""After `make cluster-test`'s two runs of the integration config: did every job go through SLURM,
and are the results those of the local run?

    python tests/cluster/check.py WORKDIR THREADS   (WORKDIR holds local/, slurm/, local.log, slurm.log;
                                                 THREADS: the model rules' threads both runs were given)

Run while the test cluster is up: finished jobs are read back from slurmctld (`scontrol show job`,
which keeps them for MinJobAge). What "the same results" means, measured: at the same thread count
the two runs write byte-identical tables, arrays, figures and weights. Only what records a time or
an object address differs, and is compared without it (see FILTERED). Files that differ anyway
are accepted if every number in them agrees to REL_TOL, and reported.
"""

import json
import math
import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

REL_TOL = 1e-6
# rules that run a model declare resources gpu=1: the profile sends them to a GPU partition
GPU_RULES = re.compile(r"^(train_model|load_model|model_extras|model_extras_loaded|measure|draw)$")
SKIP_DIRS = ("logs", "benchmarks", "tensorboard")  # timings; TensorBoard events carry wall times
DATE = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def fail(message: str) -> None:
    print(f"cluster-test: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- the jobs went through SLURM
def complete_log(run: Path) -> str:
    return "".join(p.read_text() for p in sorted((run / ".snakemake" / "log").glob("*.snakemake.log")))


def local_jobs(log: str) -> Counter:
    return Counter(rule for rule in re.findall(r"Finished jobid: \d+ \(Rule: (\S+)\)", log) if rule != "all")


def slurm_jobs(log: str, workdir: Path, node_cpus: int, tf_threads: int) -> Counter:
    ids = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    if not ids:
        fail("no job was submitted to SLURM (no 'SLURM jobid' in its .snakemake/log/)")
    rules = Counter()
    for jobid in ids:
        out = subprocess.run(["scontrol", "show", "job", "-o", jobid], capture_output=True, text=True)
        if out.returncode != 0:
            fail(f"SLURM does not know job {jobid}: {out.stderr.strip()}")
        job = dict(f.split("=", 1) for f in out.stdout.split() if "=" in f)
        rule = re.match(r"rule_(.+?)(_wildcards_.*)?$", job.get("Comment", "")).group(1)
        rules[rule] += 1
        where = f"SLURM job {jobid} (rule {rule})"
        if job["JobState"] != "COMPLETED" or job["ExitCode"] != "0:0":
            fail(f"{where}: {job['JobState']}, exit code {job['ExitCode']}")
        if Path(job["WorkDir"]).resolve() != workdir.resolve():
            fail(f"{where} ran in {job['WorkDir']}, not in {workdir}")
        gpu = GPU_RULES.match(rule) is not None
        want = ("gpu", "gres:gpu:1") if gpu else ("cpu", None)
        got = (job["Partition"], job.get("TresPerJob"))
        if got != want:
            fail(f"{where}: partition and GPU request {got}, expected {want}")
        if int(job["NumCPUs"]) > node_cpus or (gpu and int(job["NumCPUs"]) != tf_threads):
            fail(f"{where} got {job['NumCPUs']} CPUs (node {node_cpus}, model rules {tf_threads})")
    return rules


# ---------------------------------------------------------------- the same results
def numbers_close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(numbers_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(numbers_close(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    return a == b


def csv_close(a: Path, b: Path) -> bool:
    import pandas as pd

    x, y = pd.read_csv(a), pd.read_csv(b)
    if list(x.columns) != list(y.columns) or x.shape != y.shape:
        return False
    for col in x.columns:
        if x[col].dtype.kind in "fi" and y[col].dtype.kind in "fi":
            if not np.allclose(x[col], y[col], rtol=REL_TOL, atol=1e-12, equal_nan=True):
                return False
        elif not x[col].equals(y[col]):
            return False
    return True


def npz_close(a: Path, b: Path) -> bool:
    with np.load(a) as x, np.load(b) as y:
        if sorted(x.files) != sorted(y.files):
            return False
        for k in x.files:
            if x[k].shape != y[k].shape:
                return False
            if x[k].dtype.kind in "fc":
                if not np.allclose(x[k], y[k], rtol=REL_TOL, atol=1e-12, equal_nan=True):
                    return False
            elif not np.array_equal(x[k], y[k]):
                return False
    return True


def keras_model(path: Path) -> dict:
    """The saved model without its save date and the Python object ids in its config."""
    with zipfile.ZipFile(path) as z:
        config = re.sub(rb'"shared_object_id": \d+', b"", z.read("config.json"))
        return {"config.json": config, "model.weights.h5": z.read("model.weights.h5")}


def run_json(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("date", None)
    return data


def pdf_text(path: Path) -> list[str]:
    import pypdf

    return [DATE.sub(b"<date>", p.extract_text().encode()).decode() for p in pypdf.PdfReader(path).pages]


# files that record when they were written: compared without that
FILTERED = {
    "model.keras": keras_model,
    "run.json": run_json,
    "report.html": lambda p: DATE.sub(b"<date>", p.read_bytes()),
    "report.pdf": pdf_text,
}
CLOSE = {
    ".csv": csv_close,
    ".npz": npz_close,
    ".json": lambda a, b: numbers_close(json.loads(a.read_text()), json.loads(b.read_text())),
}


def result_files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not set(p.relative_to(root).parts) & set(SKIP_DIRS)
    }


def compare(slurm: Path, local: Path) -> tuple[int, int, list[str]]:
    a, b = result_files(slurm), result_files(local)
    if a != b:
        fail(f"different files: only on SLURM {sorted(a - b)[:10]}, only local {sorted(b - a)[:10]}")
    identical, filtered, close = 0, 0, []
    for name in sorted(a):
        x, y = slurm / name, local / name
        if x.read_bytes() == y.read_bytes():
            identical += 1
        elif x.name in FILTERED:
            if FILTERED[x.name](x) != FILTERED[x.name](y):
                fail(f"{name} differs (beyond its date)")
            filtered += 1
        elif x.suffix in CLOSE and CLOSE[x.suffix](x, y):
            close.append(name)
        else:
            fail(f"{name} differs between the SLURM run and the local run")
    return identical, filtered, close


def main() -> None:
    work, threads = Path(sys.argv[1]), int(sys.argv[2])
    node_cpus = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    # Snakemake's complete logs: the console (local.log, slurm.log) shows no per-job lines (workflow_console)
    slurm_log, local_log = complete_log(work / "slurm"), complete_log(work / "local")
    rules = slurm_jobs(slurm_log, work / "slurm", node_cpus, threads)
    if rules != local_jobs(local_log):
        fail(f"SLURM ran {dict(rules)}, the local run {dict(local_jobs(local_log))}")
    print(
        f"cluster-test: {sum(rules.values())} jobs of {len(rules)} rules ran as SLURM jobs, all COMPLETED; "
        "model rules on partition gpu with gres:gpu:1, the rest on cpu"
    )
    identical, filtered, close = compare(work / "slurm" / "results", work / "local" / "results")
    print(
        f"cluster-test: results equal to the local run's: {identical} files byte-identical, "
        f"{filtered} equal but for their date ({', '.join(FILTERED)}), {len(close)} within rel. {REL_TOL}"
        + (f": {', '.join(close)}" if close else "")
    )


if __name__ == "__main__":
    main()

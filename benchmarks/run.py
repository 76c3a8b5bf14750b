"""convlens against the bare-TensorFlow limit and its peers, on the same images and model.

    python benchmarks/run.py [--plan "shapes:100,1000,10000 vgg16:32,128"] [--out benchmarks/results.json]
    python benchmarks/run.py --sizes 8,32,128 --models vgg16,shapes   # the same sizes for every model
    python benchmarks/run.py --report benchmarks/results.json      # print the tables of a saved run

For every model and study size (images x 6 transforms) it measures, one after another:
  limit     bare TensorFlow in one process (benchmarks/limit.py): import, model build/load, one
            compiled batched step with every conv/pool map and Grad-CAM; no files, no figures
  convlens  the dry run (``snakemake -n``: jobs planned, seconds), then the whole ``snakemake`` run
            of the same study in a temporary work folder (config made here), its per-rule
            ``benchmark:`` times, the measure jobs' own split and peak memory, the results' bytes
            by part, the PDF's pages and size, and a rerun with nothing changed
and per model, once:
  gradcam   convlens's Grad-CAM (alone, and in the study's step) against tf-keras-vis on the same
            batch (peers.py)
  notebook  the one-image-at-a-time Keras style on the first few images, extrapolated (peers.py)
The results go to a JSON file (written after every step) and tables on stdout; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness  # noqa: E402
from benchmarks.harness import fmt, markdown_table, ratio  # noqa: E402

HERE = Path(__file__).resolve().parent
STEPS = ("limit", "convlens", "gradcam", "notebook")
EXTRA_STEPS = ("dryrun",)  # --steps dryrun: only the dry run of convlens (the full run does it first anyway)
# issue 12's measurement: the small model at 100 (the base of the scale check), 1,000 and 10,000
# images, VGG16 at 32 and 128
DEFAULT_PLAN = "shapes:100,1000,10000 vgg16:32,128"
# issue 12's targets: model -> (images, most convlens e2e / limit e2e)
RATIO_TARGETS = {"shapes": (10000, 2.0), "vgg16": (128, 1.25)}
# ... and for the scale of a study: (small, large) images, most time ratio, most bytes per added
# image, most page difference, most PDF MB; the dry run at DRY_RUN_IMAGES: most jobs, most seconds
SCALE_TARGETS = {"small": 100, "large": 1000, "time_ratio": 2.5, "bytes_per_image": 100e3, "pages": 3, "pdf_mb": 25.0}
DRY_RUN_TARGET = {"images": 10000, "jobs": 300, "seconds": 20.0}


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load1() -> float | None:
    """The 1-minute load average: above 0.3 or so before a step, someone else was using the cores."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def child(
    cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None
) -> tuple[dict | None, float, int]:
    """Run a child process; (its last JSON line on stdout or None, wall seconds, exit code)."""
    t = time.perf_counter()
    with open(log, "w") as err:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines and p.returncode == 0 else None), wall, p.returncode


def versions() -> dict:
    out = {"python": platform.python_version()}
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return out
    for name in ("tensorflow-cpu", "tensorflow", "keras", "snakemake", "numpy", "tf-keras-vis"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def git(*args) -> str | None:
    p = subprocess.run(["git", *args], cwd=harness.ROOT, capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


CODE_PATHS = ("convlens/", "workflow/", "scripts/", "reports/", "Snakefile", "config/")


def git_state(at_commit: str | None, copied: bool = False) -> dict:
    """Which convlens was measured: a commit (snapshot), or the working tree (as it is, or a copy of it
    taken at the start) with its changed files; ``code_changes`` lists those in the workflow's code."""
    if at_commit:
        return {"measured": "commit snapshot", "commit": git("rev-parse", at_commit), "changed_files": 0}
    status = git("status", "--short")
    lines = [s for s in (status or "").splitlines() if s.strip()]
    code = [line for line in lines if any(line[3:].startswith(c) or f" -> {c}" in line for c in CODE_PATHS)]
    return {
        "measured": "working tree copy" if copied else "working tree",
        "commit": git("rev-parse", "HEAD"),
        "short": git("log", "-1", "--format=%h"),
        "changed_files": None if status is None else len(lines),
        "code_changes": code,
    }


def copy_worktree(dest: Path) -> Path:
    """A copy of the working tree as it is now (tracked and untracked files, not the ignored ones): a
    run is not disturbed by edits made while it runs."""
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if files is None:
        raise SystemExit("--copy-tree needs a git checkout")
    dest.mkdir(parents=True, exist_ok=True)
    for rel in filter(None, files.split("\0")):
        src = harness.ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def snapshot(rev: str, dest: Path) -> Path:
    """A copy of commit ``rev`` (``git archive``; the repository itself is not touched)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=harness.ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


# ---------------------------------------------------------------------------------------------
# the contenders


def run_limit(model: str, d: Path, model_file: str | None, a) -> dict:
    cmd = [
        sys.executable,
        str(HERE / "limit.py"),
        "--model",
        model,
        "--images",
        str(d / "images"),
        "--batch-size",
        str(a.batch_size),
        "--threads",
        str(a.cores),
    ]
    if model_file:
        cmd += ["--model-file", model_file]
    before = load1()
    out, wall, rc = child(cmd, d / "limit.log")
    if out is None:
        return {"error": f"exit {rc}; see {d / 'limit.log'}"}
    out["e2e_s"] = wall  # the whole process, as the parent sees it (interpreter start included)
    out["load1_before"] = before
    return out


def snakemake_cmd(tree: Path, cores: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(tree / "Snakefile"),
        "--configfile",
        "study.yaml",
        "--cores",
        str(cores),
    ]


def dry_run(d: Path, a) -> dict:
    """``snakemake -n`` of the study from an empty results folder: jobs planned and wall seconds."""
    t = time.perf_counter()
    p = subprocess.run(snakemake_cmd(a.tree, a.cores) + ["-n"], cwd=d, capture_output=True, text=True)
    out = {"s": time.perf_counter() - t, **harness.parse_dry_run(p.stdout + p.stderr)}
    (d / "dryrun.log").write_text(p.stdout + p.stderr)
    if p.returncode:
        out["error"] = f"snakemake -n exit {p.returncode}; see {d / 'dryrun.log'}"
    return out


def shard_logs(d: Path, model: str) -> list[str]:
    """The measure jobs' logs (``analyze_<shard>`` in older trees)."""
    folder = d / "results" / "logs" / model
    paths = sorted(folder.glob("measure_*.log")) or sorted(folder.glob("analyze_*.log"))
    return [p.read_text(errors="replace") for p in paths]


def run_convlens(model: str, d: Path, model_file: str | None, a, dry_only: bool = False) -> dict:
    """The study with convlens: the dry run, then (unless ``dry_only``) the run, its rerun and figures."""
    import yaml

    from convlens.config import assign_shards, list_images, validate

    cfg = harness.study_config(
        model,
        "images",
        model_file,
        images_per_job=a.images_per_job,
        batch_size=a.batch_size,
        n_filters=a.n_filters,
        filter_steps=a.filter_steps,
        quality_images=a.quality_images,
    )
    (d / "study.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    checked = validate(cfg, base_dir=d)
    per_job = checked["images_per_job"]
    try:  # images_per_job: auto sizes a model's shards by its cost (issue 24); a tree before it: a number
        from convlens.model_cost import images_per_job

        per_job = images_per_job(checked["models"][model], checked)
    except ImportError:
        pass
    shards = assign_shards(list_images(checked, d), per_job)
    res = {"images_per_job": per_job, "shards": {k: len(v) for k, v in shards.items()}}
    if not a.no_dry_run:
        res["dry_run"] = dry_run(d, a)
        say(f"  dry run: {res['dry_run'].get('jobs')} jobs planned in {fmt(res['dry_run']['s'])} s")
    if dry_only:
        return res
    res["load1_before"] = load1()
    t = time.perf_counter()
    with open(d / "snakemake.log", "w") as log:
        p = subprocess.Popen(snakemake_cmd(a.tree, a.cores), cwd=d, stdout=log, stderr=subprocess.STDOUT)
        own = None
        while p.poll() is None:  # snakemake's own CPU (scheduler, file checks), not its jobs'
            own = harness.own_cpu_s(p.pid) or own
            time.sleep(0.5)
    res["wall_s"] = time.perf_counter() - t
    res["snakemake_own_cpu_s"] = own
    res["load1_after"] = load1()
    if p.returncode:
        res["error"] = f"snakemake exit {p.returncode}; see {d / 'snakemake.log'}"
        return res
    t = time.perf_counter()
    p = subprocess.run(snakemake_cmd(a.tree, a.cores), cwd=d, capture_output=True, text=True)
    res["rerun_s"] = time.perf_counter() - t
    res["rerun_nothing_done"] = p.returncode == 0 and "Nothing to be done" in (p.stdout + p.stderr)
    jobs = harness.parse_benchmarks(d / "results" / "benchmarks")
    rules = harness.per_rule(jobs)
    res["rules"] = rules
    res["jobs_s"] = sum(r["s"] for r in rules.values())
    res["extras_s"] = {r: rules[r]["s"] for r in harness.EXTRA_RULES if r in rules}
    # model jobs run side by side (each with half the cores): the extras' share of the job-seconds
    # is taken off the wall time (with jobs one after another this is their own seconds)
    share = sum(res["extras_s"].values()) / res["jobs_s"] if res["jobs_s"] else 0.0
    res["wall_excl_extras_s"] = res["wall_s"] * (1.0 - share)
    res["measure_jobs"] = [
        {"file": j["file"], "s": j["s"], "max_rss_mb": j["max_rss"]} for j in jobs if j["rule"] in harness.MEASURE_RULES
    ]
    res["measure_split"] = harness.parse_shard_logs(shard_logs(d, model))
    draw_log = d / "results" / "logs" / model / "draw.log"
    if draw_log.is_file():
        res["draw_split"] = harness.parse_shard_logs([draw_log.read_text(errors="replace")])
    res["results_bytes"] = harness.du_bytes(d / "results")
    res["results_mb"] = res["results_bytes"] / 2**20
    res["results_parts"] = harness.du_parts(d / "results")
    res["pdf"] = harness.pdf_info(d / "results" / "report" / "report.pdf")
    html = d / "results" / "report" / "report.html"
    res["html_bytes"] = html.stat().st_size if html.is_file() else None
    return res


def run_gradcam(model: str, images: Path, model_file: str | None, a, log: Path) -> dict:
    cmd = [
        sys.executable,
        str(HERE / "peers.py"),
        "gradcam",
        "--model",
        model,
        "--images",
        str(images),
        "--batch-size",
        str(a.batch_size),
        "--reps",
        str(a.reps),
        "--threads",
        str(a.cores),
    ]
    if model_file:
        cmd += ["--model-file", model_file]
    env = dict(os.environ)
    if a.peer_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (a.peer_path, env.get("PYTHONPATH")) if p)
    out, wall, rc = child(cmd, log, env=env)
    return out if out is not None else {"error": f"exit {rc}; see {log}"}


def run_notebook(model: str, images: Path, model_file: str | None, a, log: Path) -> dict:
    cmd = [
        sys.executable,
        str(HERE / "peers.py"),
        "notebook",
        "--model",
        model,
        "--images",
        str(images),
        "--max-images",
        str(a.notebook_images),
        "--threads",
        str(a.cores),
    ]
    if model_file:
        cmd += ["--model-file", model_file]
    out, wall, rc = child(cmd, log)
    if out is None:
        return {"error": f"exit {rc}; see {log}"}
    out["e2e_s"] = wall
    return out


def rule_s(size: dict, names) -> float | None:
    """Summed job seconds of these rules in one size's convlens run (None when none ran)."""
    rules = size.get("convlens", {}).get("rules", {})
    values = [rules[r]["s"] for r in names if r in rules]
    return sum(values) if values else None


def fits(mres: dict) -> dict:
    """Linear fits over the study sizes of the end-to-end and compute times."""
    series = {
        "limit e2e": lambda s: s.get("limit", {}).get("e2e_s"),
        "limit compute": lambda s: s.get("limit", {}).get("compute_s"),
        "convlens wall": lambda s: s.get("convlens", {}).get("wall_s"),
        "convlens wall excl. extras": lambda s: s.get("convlens", {}).get("wall_excl_extras_s"),
        "convlens measure (sum)": lambda s: rule_s(s, harness.MEASURE_RULES),
        "convlens sensitivity": lambda s: rule_s(s, ("sensitivity",)),
        "convlens draw": lambda s: rule_s(s, harness.DRAW_RULES),
        "convlens report": lambda s: rule_s(s, ("report",)),
    }
    out = {}
    for name, get in series.items():
        pts = [(int(n), get(s)) for n, s in mres.get("sizes", {}).items() if get(s) is not None]
        if len({n for n, _ in pts}) >= 2:
            out[name] = harness.linear_fit([n for n, _ in pts], [y for _, y in pts])
    return out


# ---------------------------------------------------------------------------------------------
# tables


def breakdown_rows(cl: dict, lim: dict) -> list[list]:
    """The per-rule rows of one convlens run, with the measure jobs' (and the draw job's) own split."""
    rules = cl["rules"]
    rows = [[r, v["jobs"], fmt(v["s"]), fmt(v["s_max"]), fmt(v["max_rss"], 0)] for r, v in rules.items()]
    rows.append(["**all jobs**", sum(v["jobs"] for v in rules.values()), fmt(cl.get("jobs_s")), "", ""])
    rows.append(["**wall (snakemake e2e)**", "", fmt(cl.get("wall_s")), "", ""])
    if cl.get("snakemake_own_cpu_s") is not None:
        rows.append(
            [
                "(snakemake's own process: CPU s, its jobs not included; read every 0.5 s)",
                "",
                fmt(cl["snakemake_own_cpu_s"]),
                "",
                "",
            ]
        )
    for tier, names, split in (
        ("measure", harness.MEASURE_RULES, cl.get("measure_split", cl.get("analyze_split"))),
        ("draw", ("draw",), cl.get("draw_split")),
    ):
        rule = next((r for r in names if r in rules), None)
        if not split or rule is None:
            continue
        rows.append(
            [
                f"↳ {rule}: before the job's work (interpreter, imports)",
                "",
                fmt(rules[rule]["s"] - split["in_job_s"]),
                "",
                "",
            ]
        )
        named = sum(split["parts"].values())
        rows.append(
            [f"↳ {rule}: in-job set-up (TF, model load, probe; unnamed)", "", fmt(split["in_job_s"] - named), "", ""]
        )
        for part, v in split["parts"].items():
            rows.append([f"↳ {rule}: {part}", "", fmt(v), "", ""])
        if tier == "measure":
            rows.append(["(limit compute, to set beside the model step)", "", fmt(lim.get("compute_s")), "", ""])
    return rows


def scale_of(m: dict) -> dict | None:
    """The scale check of a model's sizes (SCALE_TARGETS' small and large), when both ran."""
    return harness.scale_checks(m.get("sizes", {}), SCALE_TARGETS["small"], SCALE_TARGETS["large"])


def _holds(value, most) -> str:
    return "–" if value is None else ("**yes**" if value <= most else "**no**")


def issue_targets(results: dict) -> list[dict]:
    """Issue 12's targets, each with what this run measured and whether it holds (only those measured)."""
    out = []
    models = results.get("models", {})
    for model, (n, most) in RATIO_TARGETS.items():
        s = models.get(model, {}).get("sizes", {}).get(str(n))
        if not s:
            continue
        lim, cl = s.get("limit", {}), s.get("convlens", {})
        r = ratio(cl.get("wall_s"), lim.get("e2e_s"))
        rx = ratio(cl.get("wall_excl_extras_s"), lim.get("e2e_s"))
        out.append(
            {
                "target": f"{model} at {n} images: convlens e2e ≤ {most} × bare TensorFlow",
                "measured": f"{fmt(r, 2)} × ({fmt(cl.get('wall_s'))} s against {fmt(lim.get('e2e_s'))} s); "
                f"{fmt(rx, 2)} × without the extras (filters, method check, training views)",
                "holds": _holds(r, most),
                "ratio": r,
                "ratio_excl_extras": rx,
            }
        )
    for model, m in models.items():
        for n, s in m.get("sizes", {}).items():
            dry = s.get("convlens", {}).get("dry_run")
            if int(n) == DRY_RUN_TARGET["images"] and dry and dry.get("jobs") is not None:
                ok = dry["jobs"] <= DRY_RUN_TARGET["jobs"] and dry["s"] < DRY_RUN_TARGET["seconds"]
                out.append(
                    {
                        "target": f"dry run over {n} images ({model}): ≤ {DRY_RUN_TARGET['jobs']} jobs in "
                        f"< {DRY_RUN_TARGET['seconds']:.0f} s",
                        "measured": f"{dry['jobs']} jobs in {fmt(dry['s'])} s",
                        "holds": "**yes**" if ok else "**no**",
                    }
                )
        sc = m.get("scale") or scale_of(m)
        if not sc:
            continue
        pre = f"{model}, {sc['small']} → {sc['large']} images:"
        out.append(
            {
                "target": f"{pre} time ≤ {SCALE_TARGETS['time_ratio']} ×",
                "measured": f"{fmt(sc['time_ratio'], 2)} × ({fmt(sc.get('time_ratio_excl_extras'), 2)} × "
                "without the extras)",
                "holds": _holds(sc["time_ratio"], SCALE_TARGETS["time_ratio"]),
            }
        )
        if sc.get("bytes_per_added_image") is not None:
            out.append(
                {
                    "target": f"{pre} ≤ {SCALE_TARGETS['bytes_per_image'] / 1e3:.0f} KB of results per image",
                    "measured": f"{sc['bytes_per_added_image'] / 1e3:.1f} KB per added image "
                    f"({sc['bytes_per_image_at_large'] / 1e3:.1f} KB per image in all at "
                    f"{sc['large']})",
                    "holds": _holds(sc["bytes_per_added_image"], SCALE_TARGETS["bytes_per_image"]),
                }
            )
        if sc.get("pages") is not None:
            out.append(
                {
                    "target": f"{pre} PDF pages the same within {SCALE_TARGETS['pages']}",
                    "measured": f"{sc['pages'][0]} → {sc['pages'][1]} pages",
                    "holds": _holds(abs(sc["pages_difference"]), SCALE_TARGETS["pages"]),
                }
            )
        if sc.get("pdf_mb_at_large") is not None:
            out.append(
                {
                    "target": f"{pre} PDF ≤ {SCALE_TARGETS['pdf_mb']:.0f} MB at {sc['large']}",
                    "measured": f"{fmt(sc['pdf_mb_at_large'], 1)} MB",
                    "holds": _holds(sc["pdf_mb_at_large"], SCALE_TARGETS["pdf_mb"]),
                }
            )
    return out


def size_row(n: str, s: dict, m: dict) -> list:
    """One row of a model's table: the limit's and convlens's measures at n images."""
    lim, cl = s.get("limit", {}), s.get("convlens", {})
    nb = m.get("notebook", {})
    nb_est = None
    if nb.get("per_input_s") is not None:
        nb_est = nb["total_s"] - nb["loop_s"] + nb["per_input_s"] * int(n) * harness.N_TRANSFORMS
    shard_jobs = cl.get("measure_jobs", cl.get("analyze_jobs", []))
    peak = max((j["max_rss_mb"] or 0 for j in shard_jobs), default=None)
    biggest = max(cl.get("shards", {}).values(), default=None)
    dry = cl.get("dry_run") or {}
    pdf = cl.get("pdf") or {}
    return [
        n,
        int(n) * harness.N_TRANSFORMS,
        fmt(lim.get("compute_s")),
        fmt(lim.get("e2e_s")),
        fmt(cl.get("wall_s")),
        fmt(cl.get("wall_excl_extras_s")),
        fmt(ratio(cl.get("wall_s"), lim.get("e2e_s")), 2),
        fmt(ratio(cl.get("wall_excl_extras_s"), lim.get("e2e_s")), 2),
        fmt(cl.get("rerun_s")),
        f"{len(cl.get('shards', {}))} × ≤{biggest}" if biggest else "–",
        f"{dry.get('jobs', '–')} in {fmt(dry.get('s'))} s" if dry else "–",
        fmt(peak, 0),
        fmt(lim.get("max_rss_mb"), 0),
        fmt(ratio(cl.get("results_bytes"), int(n) * 1e3), 1),
        f"{pdf.get('pages', '–')} / {fmt(ratio(pdf.get('bytes'), 2**20), 1)}" if pdf else "–",
        fmt(nb_est),
        f"{fmt(lim.get('load1_before'))} / {fmt(cl.get('load1_before'))}",
    ]


def gradcam_lines(model: str, g: dict) -> list[str]:
    """The Grad-CAM comparison of a model: heading, table and notes."""
    out = []
    out.append(
        f"\n### {model}: Grad-CAM on one batch ({g.get('batch')} inputs), "
        f"median of {g.get('reps')} after a first call\n"
    )
    base = g.get("convlens_gradcam", {}).get("median_s")
    grow = []
    for key, label in (
        ("convlens_gradcam", "convlens, Grad-CAM only"),
        ("convlens_full_step", "convlens, Grad-CAM + every conv/pool map"),
        ("tf_keras_vis", " ".join(filter(None, ["tf-keras-vis", g.get("tf_keras_vis_version"), "Gradcam"]))),
    ):
        v = g.get(key)
        if not v:
            error = g.get("tf_keras_vis_error" if key == "tf_keras_vis" else "convlens_error", "not run")
            if "No module named 'tf_keras_vis'" in str(error):
                error = "not installed: pip install -r benchmarks/requirements-bench.txt"
            grow.append([label, "–", "–", "–", "–", error])
            continue
        grow.append(
            [
                label,
                fmt(v["first_s"], 2),
                fmt(v["median_s"], 3),
                fmt(g["batch"] / v["median_s"], 1),
                fmt(ratio(v["median_s"], base), 2),
                "",
            ]
        )
    out.append(
        markdown_table(["method", "first call s", "s / batch", "inputs / s", "time ÷ convlens Grad-CAM", "note"], grow)
    )
    if g.get("convlens_error"):
        out.append(f"\nconvlens error: {g['convlens_error']}")
    if g.get("tf_keras_vis_error"):
        out.append(f"\ntf-keras-vis error: {g['tf_keras_vis_error']}")
    if g.get("agreement_max_abs_diff_rel") is not None:
        out.append(
            f"\nsame maps: max |convlens − tf-keras-vis| / max = {g['agreement_max_abs_diff_rel']:.1e} "
            "(raw Grad-CAM at the layer)"
        )
    return out


def tables(results: dict, predict: list[int] | None = None) -> str:
    out = []
    meta = results.get("meta", {})
    out.append(
        f"# convlens benchmark — {meta.get('date', '?')}, {meta.get('machine', {}).get('cores', '?')} cores "
        f"({meta.get('machine', {}).get('cpu_model', '?')}), command: `{meta.get('command', '?')}`"
    )
    targets = issue_targets(results)
    if targets:
        out.append("\n## Issue 12's targets\n")
        out.append(
            markdown_table(
                ["target", "measured", "holds?"], [[t["target"], t["measured"], t["holds"]] for t in targets]
            )
        )
    for model, m in results.get("models", {}).items():
        out.append(f"\n## {model}\n")
        rows = [size_row(n, s, m) for n, s in sorted(m.get("sizes", {}).items(), key=lambda kv: int(kv[0]))]
        out.append(
            markdown_table(
                [
                    "images",
                    "inputs",
                    "limit compute s",
                    "limit e2e s",
                    "convlens e2e s",
                    "convlens e2e excl. extras s",
                    "convlens ÷ limit",
                    "excl. extras ÷ limit",
                    "rerun s",
                    "shards",
                    "dry run: jobs, s",
                    "measure peak MB",
                    "limit peak MB",
                    "results KB / image",
                    "PDF pages / MB",
                    "notebook style s (est.)",
                    "load before (limit / convlens)",
                ],
                rows,
            )
        )
        scale = m.get("scale") or scale_of(m)
        if scale:
            out.append(
                f"\n{model}, {scale['small']} → {scale['large']} images: time × {fmt(scale['time_ratio'], 2)} "
                f"(× {fmt(scale.get('time_ratio_excl_extras'), 2)} without the extras), "
                f"{fmt(ratio(scale.get('bytes_per_added_image'), 1e3), 1)} KB of results per added image, "
                f"PDF pages {' → '.join(map(str, scale['pages'])) if scale.get('pages') else '–'}, "
                f"PDF {fmt(scale.get('pdf_mb_at_large'), 1)} MB at "
                f"{scale['large']}"
            )
        for n, s in sorted(m.get("sizes", {}).items(), key=lambda kv: int(kv[0])):
            lim, cl = s.get("limit", {}), s.get("convlens", {})
            if "error" in cl or "error" in lim:
                out.append(f"\nerrors at {n} images: limit {lim.get('error')}, convlens {cl.get('error')}")
            if not cl.get("rules"):
                continue
            out.append(f"\n### {model}, {n} images: where convlens's time goes (job seconds)\n")
            out.append(markdown_table(["rule", "jobs", "Σ s", "max s", "peak MB"], breakdown_rows(cl, lim)))
            stage_rows = [[name, fmt(v)] for name, v in harness.per_stage(cl["rules"])]
            out.append("\n" + markdown_table(["stage", "job s"], stage_rows))
            parts = cl.get("results_parts") or {}
            biggest_parts = sorted(parts.items(), key=lambda kv: -kv[1])[:6]
            out.append(
                f"\noutputs: {fmt(cl.get('results_mb'), 1)} MB under results/"
                + (f" ({', '.join(f'{k} {v / 2**20:.1f}' for k, v in biggest_parts)} MB)" if parts else "")
                + f"; rerun with nothing changed: {fmt(cl.get('rerun_s'))} s "
                f"({'nothing redone' if cl.get('rerun_nothing_done') else 'CHECK: jobs ran'})"
            )
        g = m.get("gradcam")
        if g:
            out += gradcam_lines(model, g)
        nb = m.get("notebook")
        if nb and nb.get("per_input_s") is not None:
            out.append(f"\n### {model}: one-image-at-a-time Keras style ({nb['n_inputs']} inputs measured)\n")
            out.append(
                markdown_table(
                    ["part", "s"],
                    [
                        ["start-up (import, model)", fmt(nb["total_s"] - nb["loop_s"])],
                        ["per input: sub-model per layer + predict", fmt(nb["activations_s"] / nb["n_inputs"], 2)],
                        [
                            "per input: Grad-CAM (fresh grad model, GradientTape)",
                            fmt(nb["gradcam_s"] / nb["n_inputs"], 2),
                        ],
                        ["per input, all", fmt(nb["per_input_s"], 2)],
                    ],
                )
            )
        elif nb:
            out.append(f"\nnotebook style: {nb.get('error')}")
        f = m.get("fits")
        if f:
            sizes = sorted({int(n) for n in m.get("sizes", {})} | set(predict or []))
            out.append(
                f"\n### {model}: linear fit over images ({', '.join(map(str, sorted(int(n) for n in m['sizes'])))})\n"
            )
            frows = [
                [name, fmt(v["slope"], 2), fmt(v["intercept"], 1), fmt(v["r2"], 4)]
                + [fmt(v["intercept"] + v["slope"] * n) for n in sizes]
                for name, v in f.items()
            ]
            out.append(
                markdown_table(["series", "slope s/image", "intercept s", "r²"] + [f"at {n}" for n in sizes], frows)
            )
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------


def make_plan(plan: str | None, sizes: str | None, models: str | None) -> dict[str, list[int]]:
    """model -> sizes from --plan, or from --sizes and --models (the older CLI), or the default plan."""
    if plan:
        if sizes or models:
            raise ValueError("give --plan, or --sizes and --models, not both")
        return harness.parse_plan(plan)
    if sizes or models:
        values = sorted({int(s) for s in (sizes or "8,32,128").split(",") if s})
        return {m: values for m in (models or "vgg16,shapes").split(",") if m}
    return harness.parse_plan(DEFAULT_PLAN)


def link(src: Path, dest: Path) -> None:
    """A study's image: a hard link to the pool's file (a copy across file systems)."""
    if dest.exists():
        return
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy(src, dest)


def prepare_model(model: str, spec: dict, root: Path, mres: dict) -> str | None:
    """The model's file, made by prep.py when the model has one (its timing in mres["prep"])."""
    if "file" not in spec:
        return None
    model_file = str(root / spec["file"])
    say(f"{model}: making {spec['file']}")
    prep, wall, rc = child([sys.executable, str(HERE / "prep.py"), spec["prep"], model_file], root / "prep.log")
    if prep is None:
        raise SystemExit(f"prep of {model} failed (exit {rc}); see {root / 'prep.log'}")
    mres["prep"] = {**prep, "wall_s": wall}
    return model_file


def run_sizes(model: str, sizes: list[int], paths: list, root: Path, mres: dict, model_file, steps: set, a, save):
    """The limit's and convlens's studies of a model at each size (the first n images of ``paths``)."""
    for n in sizes:
        d = root / f"n{n}"
        (d / "images").mkdir(parents=True, exist_ok=True)
        for p in paths[:n]:
            link(p, d / "images" / p.name)
        sres = mres["sizes"].setdefault(str(n), {})
        if "limit" in steps:
            say(f"{model} × {n} images: limit (bare TensorFlow)")
            sres["limit"] = run_limit(model, d, model_file, a)
            say(f"  -> {fmt(sres['limit'].get('e2e_s'))} s e2e, {fmt(sres['limit'].get('compute_s'))} s compute")
            save()
        if "dryrun" in steps and "convlens" not in steps:
            say(f"{model} × {n} images: convlens dry run only")
            sres["convlens"] = run_convlens(model, d, model_file, a, dry_only=True)
            save()
        if "convlens" in steps:
            say(f"{model} × {n} images: convlens (snakemake --cores {a.cores})")
            sres["convlens"] = run_convlens(model, d, model_file, a)
            say(
                f"  -> {fmt(sres['convlens'].get('wall_s'))} s wall, "
                f"rerun {fmt(sres['convlens'].get('rerun_s'))} s"
                + (f"; {sres['convlens']['error']}" if "error" in sres["convlens"] else "")
            )
            save()
            if not a.keep:
                shutil.rmtree(d / "results", ignore_errors=True)
                shutil.rmtree(d / ".snakemake", ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    ap.add_argument(
        "--plan",
        help=f'models and their sizes, e.g. "shapes:100,1000 vgg16:32" (default, when '
        f'neither --sizes nor --models is given: "{DEFAULT_PLAN}")',
    )
    ap.add_argument("--sizes", help="numbers of images for every model of --models, comma-separated")
    ap.add_argument(
        "--models", help=f"comma-separated: {', '.join(harness.MODELS)} (default vgg16,shapes with --sizes)"
    )
    ap.add_argument("--out", default=str(HERE / "results.json"), help="JSON results (default benchmarks/results.json)")
    ap.add_argument(
        "--steps",
        default=",".join(STEPS),
        help=f"which to run (default all: {','.join(STEPS)}; dryrun: only convlens's dry run)",
    )
    ap.add_argument("--cores", type=int, default=2, help="snakemake --cores and TensorFlow threads (default 2)")
    ap.add_argument("--images-per-job", type=int, help="convlens images_per_job (default: the workflow's)")
    ap.add_argument("--no-dry-run", action="store_true", help="skip the timed `snakemake -n` before each study")
    ap.add_argument("--batch-size", type=int, default=32, help="convlens batch_size, and the limit's (default 32)")
    ap.add_argument("--n-filters", type=int, default=4)
    ap.add_argument("--filter-steps", type=int, default=5)
    ap.add_argument(
        "--quality-images",
        type=int,
        default=1,
        help="heatmaps.quality_images where the workflow has it (default 1, the fewest that "
        "currently renders; not part of the study)",
    )
    ap.add_argument("--reps", type=int, default=3, help="timed repeats of the Grad-CAM batch (default 3)")
    ap.add_argument(
        "--notebook-images",
        type=int,
        default=2,
        help="images the one-at-a-time style is measured on; extrapolated to each size (default 2)",
    )
    ap.add_argument(
        "--peer-path", help="a folder to put on the peer's PYTHONPATH (tf-keras-vis installed with --target)"
    )
    ap.add_argument(
        "--at-commit",
        metavar="REV",
        help="measure this commit of convlens (a git-archive copy in the work folder) instead of "
        "the working tree, e.g. HEAD while the working tree is being edited",
    )
    ap.add_argument(
        "--copy-tree",
        action="store_true",
        help="measure a copy of the working tree taken at the start (uncommitted changes included), "
        "so that edits made during the run do not reach it",
    )
    ap.add_argument("--workdir", help="where the studies run (default: a new temporary folder, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder and every study's results/")
    ap.add_argument("--predict", default="", help="more sizes to extrapolate the fits to in the table")
    ap.add_argument(
        "--append",
        action="store_true",
        help="add these models to the results already in --out (e.g. another size set per model)",
    )
    ap.add_argument("--report", metavar="JSON", help="only print the tables of a saved results file")
    a = ap.parse_args(argv)
    predict = [int(s) for s in a.predict.split(",") if s]
    if a.report:
        print(tables(json.loads(Path(a.report).read_text()), predict))
        return 0

    try:
        plan = make_plan(a.plan, a.sizes, a.models)
    except ValueError as exc:
        ap.error(str(exc))
    a.plan = " ".join(f"{m}:{','.join(map(str, v))}" for m, v in plan.items())
    steps = set(a.steps.split(","))
    unknown = [m for m in plan if m not in harness.MODELS] + sorted(steps - set(STEPS) - set(EXTRA_STEPS))
    if unknown:
        ap.error(f"unknown: {', '.join(unknown)}")
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="convlens-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if a.at_commit and a.copy_tree:
        ap.error("give --at-commit or --copy-tree, not both")
    a.tree = (
        snapshot(a.at_commit, work / "tree")
        if a.at_commit
        else copy_worktree(work / "tree")
        if a.copy_tree
        else harness.ROOT
    )
    sys.path.insert(0, str(a.tree))  # convlens (config, transforms) from the tree measured
    os.environ["CONVLENS_BENCH_TREE"] = str(a.tree)  # ... and in the child processes
    out_path = Path(a.out)
    previous = json.loads(out_path.read_text()) if a.append and out_path.is_file() else None
    results = {
        "meta": {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["python", "benchmarks/run.py"] + (argv if argv is not None else sys.argv[1:])),
            "tree": str(a.tree),
            "machine": {"cores": os.cpu_count(), "cpu_model": harness.cpu_model(), "platform": platform.platform()},
            "versions": versions(),
            "git": git_state(a.at_commit, a.copy_tree),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items() if k != "report"},
            "transforms": harness.TRANSFORMS,
            "workdir": str(work),
        },
        "models": {},
    }
    if previous:  # another model or size set added to a saved run: keep both commands
        runs = previous["meta"].get("runs") or [
            {k: previous["meta"].get(k) for k in ("date", "command", "git", "total_s")}
        ]
        previous["meta"]["runs"] = runs + [{k: results["meta"][k] for k in ("date", "command", "git")}]
        previous["meta"]["command"] = " && ".join(r["command"] for r in previous["meta"]["runs"])
        results = previous

    def save():
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=1, default=float))

    t_all = time.perf_counter()
    try:
        for model, sizes in plan.items():
            spec = harness.MODELS[model]
            mres = results["models"].setdefault(model, {"sizes": {}})
            root = work / model
            root.mkdir(parents=True, exist_ok=True)
            say(f"{model}: {max(sizes)} images at {spec['input_size']} px")
            pool = root / "images_all"
            t = time.perf_counter()
            paths = harness.make_images(pool, max(sizes), spec["input_size"])
            mres["images_s"] = time.perf_counter() - t
            model_file = prepare_model(model, spec, root, mres)
            run_sizes(model, sizes, paths, root, mres, model_file, steps, a, save)
            first = root / f"n{min(sizes)}" / "images"  # the peers read every image of their folder
            if "gradcam" in steps:
                say(f"{model}: Grad-CAM, convlens step against tf-keras-vis on one batch")
                mres["gradcam"] = run_gradcam(model, first, model_file, a, root / "gradcam.log")
                save()
            if "notebook" in steps:
                say(f"{model}: one-image-at-a-time Keras style on {a.notebook_images} images")
                mres["notebook"] = run_notebook(model, first, model_file, a, root / "notebook.log")
                save()
            mres["fits"] = fits(mres)
            scale = scale_of(mres)
            if scale:
                mres["scale"] = scale
            save()
    finally:
        results["meta"]["total_s"] = time.perf_counter() - t_all
        if results["meta"].get("runs"):
            results["meta"]["runs"][-1]["total_s"] = results["meta"]["total_s"]
        save()
        failed = '"error"' in json.dumps(results)
        if failed:
            say(f"some steps failed; their logs are kept in {work}")
        elif not a.workdir and not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["targets"] = issue_targets(results)
    save()
    print(tables(results, predict))
    say(f"done in {time.perf_counter() - t_all:.0f} s; results in {out_path}")
    return 1 if failed else 0  # a step that failed fails the command (make bench, the harness test)


if __name__ == "__main__":
    sys.exit(main())

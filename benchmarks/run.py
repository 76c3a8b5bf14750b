"""convlens against the bare-TensorFlow limit and its peers, on the same images and model.

    python benchmarks/run.py [--sizes 8,32,128] [--models vgg16,shapes] [--out benchmarks/results.json]
    python benchmarks/run.py --report benchmarks/results.json      # print the tables of a saved run

For every model and study size (images x 6 transforms) it measures, one after another:
  limit     bare TensorFlow in one process (benchmarks/limit.py): import, model build/load, one
            compiled batched step with every conv/pool map and Grad-CAM; no files, no figures
  convlens  the whole ``snakemake`` run of the same study in a temporary work folder (config made
            here), its per-rule ``benchmark:`` times, the analysis jobs' peak memory, and a rerun
            with nothing changed
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


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load1() -> float | None:
    """The 1-minute load average: above 0.3 or so before a step, someone else was using the cores."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def child(cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> tuple[dict | None, float, int]:
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


def git_state(at_commit: str | None) -> dict:
    """Which convlens was measured: a commit (snapshot) or the working tree with its changed files."""
    if at_commit:
        return {"measured": "commit snapshot", "commit": git("rev-parse", at_commit), "changed_files": 0}
    status = git("status", "--short")
    return {"measured": "working tree", "commit": git("rev-parse", "HEAD"),
            "changed_files": None if status is None else len([s for s in status.splitlines() if s.strip()])}


def snapshot(rev: str, dest: Path) -> Path:
    """A copy of commit ``rev`` (``git archive``; the repository itself is not touched)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=harness.ROOT, capture_output=True,
                             check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


# ---------------------------------------------------------------------------------------------
# the contenders


def run_limit(model: str, d: Path, model_file: str | None, a) -> dict:
    cmd = [sys.executable, str(HERE / "limit.py"), "--model", model, "--images", str(d / "images"),
           "--batch-size", str(a.batch_size), "--threads", str(a.cores)]
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
    return [sys.executable, "-m", "snakemake", "-s", str(tree / "Snakefile"), "--configfile", "study.yaml",
            "--cores", str(cores)]


def run_convlens(model: str, d: Path, model_file: str | None, a) -> dict:
    import yaml

    from convlens.config import assign_shards, list_images, validate

    cfg = harness.study_config(model, "images", model_file, images_per_job=a.images_per_job,
                               batch_size=a.batch_size, n_filters=a.n_filters, filter_steps=a.filter_steps,
                               quality_images=a.quality_images)
    (d / "study.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    shards = assign_shards(list_images(validate(cfg, base_dir=d), d), a.images_per_job)
    res = {"images_per_job": a.images_per_job, "shards": {k: len(v) for k, v in shards.items()},
           "load1_before": load1()}
    t = time.perf_counter()
    with open(d / "snakemake.log", "w") as log:
        p = subprocess.run(snakemake_cmd(a.tree, a.cores), cwd=d, stdout=log, stderr=subprocess.STDOUT)
    res["wall_s"] = time.perf_counter() - t
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
    # TF jobs hold every core (threads lowered to --cores), so nothing runs beside these jobs
    res["wall_excl_extras_s"] = res["wall_s"] - sum(res["extras_s"].values())
    res["analyze_jobs"] = [{"file": j["file"], "s": j["s"], "max_rss_mb": j["max_rss"]} for j in jobs
                           if j["rule"] == "analyze"]
    logs = sorted((d / "results" / "logs" / model).glob("analyze_*.log"))
    res["analyze_split"] = harness.parse_shard_logs([p.read_text(errors="replace") for p in logs])
    res["results_mb"] = harness.du_bytes(d / "results") / 2**20
    return res


def run_gradcam(model: str, images: Path, model_file: str | None, a, log: Path) -> dict:
    cmd = [sys.executable, str(HERE / "peers.py"), "gradcam", "--model", model, "--images", str(images),
           "--batch-size", str(a.batch_size), "--reps", str(a.reps), "--threads", str(a.cores)]
    if model_file:
        cmd += ["--model-file", model_file]
    env = dict(os.environ)
    if a.peer_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (a.peer_path, env.get("PYTHONPATH")) if p)
    out, wall, rc = child(cmd, log, env=env)
    return out if out is not None else {"error": f"exit {rc}; see {log}"}


def run_notebook(model: str, images: Path, model_file: str | None, a, log: Path) -> dict:
    cmd = [sys.executable, str(HERE / "peers.py"), "notebook", "--model", model, "--images", str(images),
           "--max-images", str(a.notebook_images), "--threads", str(a.cores)]
    if model_file:
        cmd += ["--model-file", model_file]
    out, wall, rc = child(cmd, log)
    if out is None:
        return {"error": f"exit {rc}; see {log}"}
    out["e2e_s"] = wall
    return out


def fits(mres: dict) -> dict:
    """Linear fits over the study sizes of the end-to-end and compute times."""
    series = {
        "limit e2e": lambda s: s.get("limit", {}).get("e2e_s"),
        "limit compute": lambda s: s.get("limit", {}).get("compute_s"),
        "convlens wall": lambda s: s.get("convlens", {}).get("wall_s"),
        "convlens wall excl. extras": lambda s: s.get("convlens", {}).get("wall_excl_extras_s"),
        "convlens analyze": lambda s: s.get("convlens", {}).get("rules", {}).get("analyze", {}).get("s"),
        "convlens render_image (sum)": lambda s: s.get("convlens", {}).get("rules", {}).get("render_image", {}).get("s"),
        "convlens report": lambda s: s.get("convlens", {}).get("rules", {}).get("report", {}).get("s"),
    }
    out = {}
    for name, get in series.items():
        pts = [(int(n), get(s)) for n, s in mres.get("sizes", {}).items() if get(s) is not None]
        if len({n for n, _ in pts}) >= 2:
            out[name] = harness.linear_fit([n for n, _ in pts], [y for _, y in pts])
    return out


# ---------------------------------------------------------------------------------------------
# tables


def tables(results: dict, predict: list[int] | None = None) -> str:
    out = []
    meta = results.get("meta", {})
    out.append(f"# convlens benchmark — {meta.get('date', '?')}, {meta.get('machine', {}).get('cores', '?')} cores "
               f"({meta.get('machine', {}).get('cpu_model', '?')}), command: `{meta.get('command', '?')}`")
    for model, m in results.get("models", {}).items():
        out.append(f"\n## {model}\n")
        rows = []
        for n, s in sorted(m.get("sizes", {}).items(), key=lambda kv: int(kv[0])):
            lim, cl = s.get("limit", {}), s.get("convlens", {})
            nb = m.get("notebook", {})
            nb_est = None
            if nb.get("per_input_s") is not None:
                nb_est = nb["total_s"] - nb["loop_s"] + nb["per_input_s"] * int(n) * harness.N_TRANSFORMS
            peak = max((j["max_rss_mb"] or 0 for j in cl.get("analyze_jobs", [])), default=None)
            biggest = max(cl.get("shards", {}).values(), default=None)
            rows.append([n, int(n) * harness.N_TRANSFORMS, fmt(lim.get("compute_s")), fmt(lim.get("e2e_s")),
                         fmt(cl.get("wall_s")), fmt(cl.get("wall_excl_extras_s")),
                         fmt(ratio(cl.get("wall_s"), lim.get("e2e_s")), 2),
                         fmt(ratio(cl.get("wall_excl_extras_s"), lim.get("e2e_s")), 2),
                         fmt(cl.get("rerun_s")), f"{len(cl.get('shards', {}))} × ≤{biggest}" if biggest else "–",
                         fmt(peak, 0), fmt(lim.get("max_rss_mb"), 0), fmt(nb_est),
                         f"{fmt(lim.get('load1_before'))} / {fmt(cl.get('load1_before'))}"])
        out.append(markdown_table(
            ["images", "inputs", "limit compute s", "limit e2e s", "convlens e2e s", "convlens e2e excl. extras s",
             "convlens ÷ limit", "excl. extras ÷ limit", "rerun s", "shards", "analyze peak MB",
             "limit peak MB", "notebook style s (est.)", "load before (limit / convlens)"], rows))
        for n, s in sorted(m.get("sizes", {}).items(), key=lambda kv: int(kv[0])):
            lim, cl = s.get("limit", {}), s.get("convlens", {})
            if "error" in cl or "error" in lim:
                out.append(f"\nerrors at {n} images: limit {lim.get('error')}, convlens {cl.get('error')}")
            if not cl.get("rules"):
                continue
            out.append(f"\n### {model}, {n} images: where convlens's time goes (job seconds; render jobs run 2 at a time)\n")
            rule_rows = [[r, v["jobs"], fmt(v["s"]), fmt(v["s_max"]), fmt(v["max_rss"], 0)]
                         for r, v in cl["rules"].items()]
            rule_rows.append(["**all jobs**", sum(v["jobs"] for v in cl["rules"].values()), fmt(cl.get("jobs_s")), "",
                              ""])
            rule_rows.append(["**wall (snakemake e2e)**", "", fmt(cl.get("wall_s")), "", ""])
            split = cl.get("analyze_split")
            if split and "analyze" in cl["rules"]:
                start = cl["rules"]["analyze"]["s"] - split["in_job_s"]
                rule_rows.append(["↳ analyze: before the shard's work (interpreter, imports)", "", fmt(start), "", ""])
                named = sum(split["parts"].values())
                rule_rows.append(["↳ analyze: in-job set-up (TF, model load, probe, image reads; unnamed)", "",
                                  fmt(split["in_job_s"] - named), "", ""])
                for part, v in split["parts"].items():
                    rule_rows.append([f"↳ analyze: {part}", "", fmt(v), "", ""])
                rule_rows.append(["(limit compute, to set beside the model step)", "", fmt(lim.get("compute_s")), "", ""])
            out.append(markdown_table(["rule", "jobs", "Σ s", "max s", "peak MB"], rule_rows))
            stage_rows = [[name, fmt(v)] for name, v in harness.per_stage(cl["rules"])]
            out.append("\n" + markdown_table(["stage", "job s"], stage_rows))
            out.append(f"\noutputs: {fmt(cl.get('results_mb'), 0)} MB under results/; rerun with nothing changed: "
                       f"{fmt(cl.get('rerun_s'))} s ({'nothing redone' if cl.get('rerun_nothing_done') else 'CHECK: jobs ran'})")
        g = m.get("gradcam")
        if g:
            out.append(f"\n### {model}: Grad-CAM on one batch ({g.get('batch')} inputs), median of {g.get('reps')} after a first call\n")
            base = g.get("convlens_gradcam", {}).get("median_s")
            grow = []
            for key, label in (("convlens_gradcam", "convlens, Grad-CAM only"),
                               ("convlens_full_step", "convlens, Grad-CAM + every conv/pool map"),
                               ("tf_keras_vis", " ".join(filter(None, ["tf-keras-vis", g.get("tf_keras_vis_version"), "Gradcam"])))):
                v = g.get(key)
                if not v:
                    error = g.get("tf_keras_vis_error" if key == "tf_keras_vis" else "convlens_error", "not run")
                    if "No module named 'tf_keras_vis'" in str(error):
                        error = "not installed: pip install -r benchmarks/requirements-bench.txt"
                    grow.append([label, "–", "–", "–", "–", error])
                    continue
                grow.append([label, fmt(v["first_s"], 2), fmt(v["median_s"], 3), fmt(g["batch"] / v["median_s"], 1),
                             fmt(ratio(v["median_s"], base), 2), ""])
            out.append(markdown_table(["method", "first call s", "s / batch", "inputs / s", "time ÷ convlens Grad-CAM",
                                       "note"], grow))
            if g.get("convlens_error"):
                out.append(f"\nconvlens error: {g['convlens_error']}")
            if g.get("tf_keras_vis_error"):
                out.append(f"\ntf-keras-vis error: {g['tf_keras_vis_error']}")
            if g.get("agreement_max_abs_diff_rel") is not None:
                out.append(f"\nsame maps: max |convlens − tf-keras-vis| / max = {g['agreement_max_abs_diff_rel']:.1e} "
                           "(raw Grad-CAM at the layer)")
        nb = m.get("notebook")
        if nb and nb.get("per_input_s") is not None:
            out.append(f"\n### {model}: one-image-at-a-time Keras style ({nb['n_inputs']} inputs measured)\n")
            out.append(markdown_table(["part", "s"], [
                ["start-up (import, model)", fmt(nb["total_s"] - nb["loop_s"])],
                ["per input: sub-model per layer + predict", fmt(nb["activations_s"] / nb["n_inputs"], 2)],
                ["per input: Grad-CAM (fresh grad model, GradientTape)", fmt(nb["gradcam_s"] / nb["n_inputs"], 2)],
                ["per input, all", fmt(nb["per_input_s"], 2)],
            ]))
        elif nb:
            out.append(f"\nnotebook style: {nb.get('error')}")
        f = m.get("fits")
        if f:
            sizes = sorted({int(n) for n in m.get("sizes", {})} | set(predict or []))
            out.append(f"\n### {model}: linear fit over images ({', '.join(map(str, sorted(int(n) for n in m['sizes'])))})\n")
            frows = [[name, fmt(v["slope"], 2), fmt(v["intercept"], 1), fmt(v["r2"], 4)]
                     + [fmt(v["intercept"] + v["slope"] * n) for n in sizes] for name, v in f.items()]
            out.append(markdown_table(["series", "slope s/image", "intercept s", "r²"] + [f"at {n}" for n in sizes],
                                      frows))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--sizes", default="8,32,128", help="numbers of images, comma-separated (default 8,32,128)")
    ap.add_argument("--models", default="vgg16,shapes", help=f"comma-separated: {', '.join(harness.MODELS)}")
    ap.add_argument("--out", default=str(HERE / "results.json"), help="JSON results (default benchmarks/results.json)")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"which to run (default all: {','.join(STEPS)})")
    ap.add_argument("--cores", type=int, default=2, help="snakemake --cores and TensorFlow threads (default 2)")
    ap.add_argument("--images-per-job", type=int, default=32, help="convlens images_per_job (default 32)")
    ap.add_argument("--batch-size", type=int, default=32, help="convlens batch_size, and the limit's (default 32)")
    ap.add_argument("--n-filters", type=int, default=4)
    ap.add_argument("--filter-steps", type=int, default=5)
    ap.add_argument("--quality-images", type=int, default=1,
                    help="heatmaps.quality_images where the workflow has it (default 1, the fewest that "
                         "currently renders; not part of the study)")
    ap.add_argument("--reps", type=int, default=3, help="timed repeats of the Grad-CAM batch (default 3)")
    ap.add_argument("--notebook-images", type=int, default=2,
                    help="images the one-at-a-time style is measured on; extrapolated to each size (default 2)")
    ap.add_argument("--peer-path", help="a folder to put on the peer's PYTHONPATH (tf-keras-vis installed with --target)")
    ap.add_argument("--at-commit", metavar="REV",
                    help="measure this commit of convlens (a git-archive copy in the work folder) instead of "
                         "the working tree, e.g. HEAD while the working tree is being edited")
    ap.add_argument("--workdir", help="where the studies run (default: a new temporary folder, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder and every study's results/")
    ap.add_argument("--predict", default="128", help="sizes to extrapolate the fits to in the table (default 128)")
    ap.add_argument("--append", action="store_true",
                    help="add these models to the results already in --out (e.g. another size set per model)")
    ap.add_argument("--report", metavar="JSON", help="only print the tables of a saved results file")
    a = ap.parse_args(argv)
    predict = [int(s) for s in a.predict.split(",") if s]
    if a.report:
        print(tables(json.loads(Path(a.report).read_text()), predict))
        return 0

    sizes = sorted({int(s) for s in a.sizes.split(",") if s})
    models = [m for m in a.models.split(",") if m]
    steps = set(a.steps.split(","))
    unknown = [m for m in models if m not in harness.MODELS] + sorted(steps - set(STEPS))
    if unknown:
        ap.error(f"unknown: {', '.join(unknown)}")
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="convlens-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    a.tree = snapshot(a.at_commit, work / "tree") if a.at_commit else harness.ROOT
    sys.path.insert(0, str(a.tree))  # convlens (config, transforms) from the tree measured
    os.environ["CONVLENS_BENCH_TREE"] = str(a.tree)  # ... and in the child processes
    out_path = Path(a.out)
    previous = json.loads(out_path.read_text()) if a.append and out_path.is_file() else None
    results = {"meta": {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/run.py"] + (argv if argv is not None else sys.argv[1:])),
        "tree": str(a.tree), "machine": {"cores": os.cpu_count(), "cpu_model": harness.cpu_model(), "platform": platform.platform()},
        "versions": versions(), "git": git_state(a.at_commit),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items() if k != "report"},
        "transforms": harness.TRANSFORMS, "workdir": str(work)}, "models": {}}
    if previous:  # another model or size set added to a saved run: keep both commands
        runs = previous["meta"].get("runs") or [{k: previous["meta"].get(k) for k in ("date", "command", "git", "total_s")}]
        previous["meta"]["runs"] = runs + [{k: results["meta"][k] for k in ("date", "command", "git")}]
        previous["meta"]["command"] = " && ".join(r["command"] for r in previous["meta"]["runs"])
        results = previous

    def save():
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=1, default=float))

    t_all = time.perf_counter()
    try:
        for model in models:
            spec = harness.MODELS[model]
            mres = results["models"].setdefault(model, {"sizes": {}})
            root = work / model
            root.mkdir(parents=True, exist_ok=True)
            say(f"{model}: {max(sizes)} images at {spec['input_size']} px")
            pool = root / "images_all"
            paths = harness.make_images(pool, max(sizes), spec["input_size"])
            model_file = None
            if "file" in spec:
                model_file = str(root / spec["file"])
                say(f"{model}: making {spec['file']}")
                prep, wall, rc = child([sys.executable, str(HERE / "prep.py"), spec["prep"], model_file],
                                       root / "prep.log")
                if prep is None:
                    raise SystemExit(f"prep of {model} failed (exit {rc}); see {root / 'prep.log'}")
                mres["prep"] = {**prep, "wall_s": wall}
            for n in sizes:
                d = root / f"n{n}"
                (d / "images").mkdir(parents=True, exist_ok=True)
                for p in paths[:n]:
                    shutil.copy(p, d / "images" / p.name)
                sres = mres["sizes"].setdefault(str(n), {})
                if "limit" in steps:
                    say(f"{model} × {n} images: limit (bare TensorFlow)")
                    sres["limit"] = run_limit(model, d, model_file, a)
                    say(f"  -> {fmt(sres['limit'].get('e2e_s'))} s e2e, {fmt(sres['limit'].get('compute_s'))} s compute")
                    save()
                if "convlens" in steps:
                    say(f"{model} × {n} images: convlens (snakemake --cores {a.cores})")
                    sres["convlens"] = run_convlens(model, d, model_file, a)
                    say(f"  -> {fmt(sres['convlens'].get('wall_s'))} s wall, rerun {fmt(sres['convlens'].get('rerun_s'))} s"
                        + (f"; {sres['convlens']['error']}" if "error" in sres["convlens"] else ""))
                    save()
                    if not a.keep:
                        shutil.rmtree(d / "results", ignore_errors=True)
                        shutil.rmtree(d / ".snakemake", ignore_errors=True)
            if "gradcam" in steps:
                say(f"{model}: Grad-CAM, convlens step against tf-keras-vis on one batch")
                mres["gradcam"] = run_gradcam(model, pool, model_file, a, root / "gradcam.log")
                save()
            if "notebook" in steps:
                say(f"{model}: one-image-at-a-time Keras style on {a.notebook_images} images")
                mres["notebook"] = run_notebook(model, pool, model_file, a, root / "notebook.log")
                save()
            mres["fits"] = fits(mres)
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
    print(tables(results, predict))
    say(f"done in {time.perf_counter() - t_all:.0f} s; results in {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

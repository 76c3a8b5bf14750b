"""The benchmark's own logic, without TensorFlow: models, study configs, images, the per-rule
timings Snakemake writes, the linear fit and the tables.

``benchmarks/run.py`` drives it; ``tests/test_benchmarks.py`` checks it on known answers.
"""

from __future__ import annotations

import copy
import csv
import math
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAKEFILE = ROOT / "Snakefile"

# 5 transforms + the identity convlens always adds first = 6 rows per image
TRANSFORMS = [
    {"kind": "shift", "dx": 8, "dy": 8},
    {"kind": "rotate", "angle_deg": 15},
    {"kind": "hflip"},
    {"kind": "scale", "factor": 1.2},
    {"kind": "vflip"},
]
N_TRANSFORMS = len(TRANSFORMS) + 1

SHAPES_CLASSES = ["circle", "square", "triangle"]

# name -> how the benchmark gets the model, and the convlens config entry that names the same model.
# ``file`` models are made once per benchmark run by ``prep.py`` (trained or built) and loaded by every
# contender; ``application`` models are built by each contender (random weights: the same compute).
MODELS = {
    "vgg16": {
        "input_size": 224,
        "preprocess": "caffe",
        "application": "VGG16",
        "entry": {"source": "load", "application": "VGG16", "weights": None, "input_size": 224, "classes": 1000},
    },
    "shapes": {
        "input_size": 28,
        "preprocess": "unit",
        "file": "shapes_cnn.keras",
        "prep": "shapes",  # the default shapes_cnn, trained 1 epoch on the generated shapes
        "entry": {"source": "load", "class_names": SHAPES_CLASSES},
    },
    "vggtiny": {  # a small VGG-like network for developing the benchmark itself (seconds, not minutes)
        "input_size": 64,
        "preprocess": "caffe",
        "file": "vggtiny.keras",
        "prep": "vggtiny",
        "entry": {"source": "load", "preprocess": "caffe"},
    },
}

# rules whose benchmark file name is not the rule name
_RULE_OF_STEM = {"load": "load_model", "train": "train_model"}

# jobs that are not part of the study being compared (each runs alone: a TensorFlow job takes every core):
# one model_extras job per model since issue 24 (filters, method check, training views in one process);
# a job of each before it
EXTRA_RULES = ("model_extras", "filters", "method_quality", "training_views")

# the rules of the measure tier (one job per shard) and of the draw tier, in this and older trees
# (``analyze_<shard>`` and per-image ``render_image`` before issue 12; the study-wide exemplar choice and
# side-by-side figures since issue 23)
MEASURE_RULES = ("measure", "analyze")
DRAW_RULES = ("choose_exemplars", "draw", "side_by_side", "render_image")

# how the per-rule rows are grouped in the breakdown
STAGES = [
    ("setup (model, transforms)", ("dataset", "train_model", "load_model", "model_figures", "transform_table")),
    ("measure (TF: maps, Grad-CAM, metrics; per shard)", MEASURE_RULES),
    ("sensitivity study (gather the shards, tables, plots)", ("sensitivity",)),
    ("draw (exemplars: raw arrays, figures)", DRAW_RULES),
    ("extras: filters, method check, training views (not in the study)", EXTRA_RULES),
    ("report (HTML + PDF)", ("report",)),
]


# ---------------------------------------------------------------------------------------------
# configs


def model_entry(model: str, model_file: str | Path | None = None) -> dict:
    """The ``models.<name>`` entry of the convlens config for a benchmark model."""
    spec = MODELS[model]
    entry = dict(spec["entry"])
    if "file" in spec:
        if model_file is None:
            raise ValueError(f"model {model!r} is loaded from a file; give its path")
        entry["path"] = str(model_file)
    return entry


# The study the limit computes is warps, maps and Grad-CAM, as before issue 21 added the Lie derivative,
# CKA and the equivariance ladder (on by default): they are off here; benchmarks/new_measures.py times them.
NEW_MEASURES_OFF = {
    "lie_derivative": False,
    "cka": {"enabled": False},
    "equivariance": {"perm": False, "linear": False},
}


def study_config(
    model: str,
    images_folder: str = "images",
    model_file: str | Path | None = None,
    images_per_job: int | None = None,
    batch_size: int = 32,
    n_filters: int = 4,
    filter_steps: int = 5,
    quality_images: int | None = 1,
    seed: int = 42,
) -> dict:
    """The convlens config of one benchmark study: one model, a folder of images, 6 transforms.

    Grad-CAM is the heatmap (the default); the filter step (``filter_steps`` for the plain and,
    where the workflow has them, the regularized patterns) and the heatmap-method quality check
    (``quality_images``) are kept small: they are not part of the study being compared and are
    reported as their own rows. ``images_per_job`` None leaves the workflow's default.
    """
    cfg = {
        "seed": seed,
        "batch_size": batch_size,
        "fill_mode": "constant",
        "fill_value": 0.0,
        "datasets": {},
        "models": {model: model_entry(model, model_file)},
        "images": [{"folder": images_folder}],
        "transforms": [dict(t) for t in TRANSFORMS],
        "filters": {"n_filters": n_filters, "steps": filter_steps},
        "report": {"title": f"convlens benchmark: {model}"},
    }
    if images_per_job is not None:
        cfg["images_per_job"] = images_per_job
    if schema_knows("lie_derivative"):  # a tree with the measures issue 21 added (on by default)
        cfg.update(copy.deepcopy(NEW_MEASURES_OFF))
    if schema_knows("filters", "regularized"):  # the regularized patterns take the same few steps
        cfg["filters"]["regularized"] = {"steps": filter_steps}
    if quality_images is not None and schema_knows("heatmaps", "quality_images"):
        cfg["heatmaps"] = {"quality_images": quality_images}
        if schema_knows("heatmaps", "quality_steps"):
            cfg["heatmaps"]["quality_steps"] = 2
    return cfg


def schema_knows(*keys: str) -> bool:
    """Whether the workflow's config schema has this key path (the workflow grows keys over time)."""
    from convlens.config import load_schema

    node = load_schema()
    for key in keys:
        node = node.get("properties", {}).get(key)
        if node is None:
            return False
    return True


def transform_matrices(height: int, width: int):
    """(T, 3, 3) forward matrices of the benchmark's transforms, identity first (numpy only)."""
    import numpy as np

    from convlens.transforms import build_transforms

    return np.stack([t.matrix(height, width) for t in build_transforms(TRANSFORMS)])


# ---------------------------------------------------------------------------------------------
# images


def _sample_photos() -> list:
    """The scikit-image sample photos that ship with the package, as RGB uint8 arrays."""
    import numpy as np
    from skimage import data

    out = []
    for name in (
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "hubble_deep_field",
        "immunohistochemistry",
        "retina",
        "colorwheel",
        "camera",
        "moon",
        "brick",
        "grass",
        "gravel",
        "coins",
        "cell",
    ):
        try:
            img = np.asarray(getattr(data, name)())
        except Exception:  # a sample that needs a download: skip it
            continue
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append((name, img[..., :3].astype(np.uint8)))
    return out


CROP_FRACTIONS = (0.9, 0.7, 0.55)
CROP_PLACES = ("centre", "top-left", "top-right", "bottom-left", "bottom-right")


def image_variant(index: int, n_sources: int) -> tuple[int, float, str, bool]:
    """(source, crop fraction, crop place, mirrored) of the index-th benchmark image.

    Sources cycle fastest, so any first n images mix all photos; each source has
    2 * 3 * 5 = 30 distinct variants.
    """
    source, v = index % n_sources, index // n_sources
    mirrored, k = bool(v % 2), v // 2
    return source, CROP_FRACTIONS[k % 3], CROP_PLACES[(k // 3) % 5], mirrored


def crop_box(index: int, n_sources: int, h: int, w: int) -> tuple[int, int, int, bool]:
    """(top, left, side, mirrored) of the index-th benchmark image's square crop of an h x w photo.

    The first ``30 * n_sources`` images are the named variants of ``image_variant`` (the images of
    every earlier benchmark); later ones are crops of a random size (0.3-0.95 of the short side) at
    a random place, seeded by the index, so any number of images is distinct and reproducible.
    """
    if index < 30 * n_sources:
        _, frac, place, mirrored = image_variant(index, n_sources)
        side = int(min(h, w) * frac)
        top = {"centre": (h - side) // 2, "top-left": 0, "top-right": 0}.get(place, h - side)
        left = {"centre": (w - side) // 2, "top-left": 0, "bottom-left": 0}.get(place, w - side)
        return top, left, side, mirrored
    import numpy as np

    rng = np.random.default_rng(index)
    side = int(min(h, w) * rng.uniform(0.3, 0.95))
    return int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side, bool(rng.integers(2))


def image_name(index: int, photo: str) -> str:
    """File name of the index-th image: zero-padded so that name order is index order."""
    return f"img{index:05d}_{photo}.png" if index >= 1000 else f"img{index:03d}_{photo}.png"


def make_images(folder: str | Path, n: int, size: int) -> list[Path]:
    """Write n distinct size x size PNGs (crops and mirror images of scikit-image photos).

    Each photo is first scaled so that its short side is at most 8 x size: a crop of it then needs
    one small resize, which keeps 10,000 images at 28 px to seconds.
    """
    import numpy as np
    from PIL import Image

    photos = []
    for name, img in _sample_photos():
        pil = Image.fromarray(img)
        scale = 8 * size / min(pil.size)
        if scale < 1:
            pil = pil.resize(
                (max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.Resampling.BICUBIC
            )
        photos.append((name, np.asarray(pil)))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        s = i % len(photos)
        name, img = photos[s]
        top, left, side, mirrored = crop_box(i, len(photos), *img.shape[:2])
        crop = img[top : top + side, left : left + side]
        if mirrored:
            crop = crop[:, ::-1]
        out = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.Resampling.BICUBIC)
        # image ids are file stems: the first 1000 keep their names of earlier benchmarks
        path = folder / image_name(i, name)
        out.save(path, compress_level=1)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------
# Snakemake's per-rule benchmark files


def rule_of(relative: str | Path) -> str:
    """The rule a file under results/benchmarks/ belongs to (see the ``benchmark:`` lines).

    ``<model>/measure_s03.tsv`` -> measure, ``<model>/draw.tsv`` -> draw (issue 12's tiers),
    ``<model>/analyze_s3.tsv`` -> analyze, ``<model>/render/<image>.tsv`` -> render_image (older trees),
    ``data/<dataset>.tsv`` -> dataset, ``<model>/load.tsv`` -> load_model, ``report.tsv`` -> report.
    """
    p = Path(relative)
    stem = p.name[:-4] if p.name.endswith(".tsv") else p.stem
    if len(p.parts) >= 2 and p.parts[-2] == "render":
        return "render_image"
    if len(p.parts) == 2 and p.parts[0] == "data":
        return "dataset"
    if re.fullmatch(r"measure_.+", stem):
        return "measure"
    if re.fullmatch(r"analyze_.+", stem):
        return "analyze"
    return _RULE_OF_STEM.get(stem, stem)


def _number(text: str | None) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def read_benchmark_tsv(path: str | Path) -> list[dict]:
    """The rows of one Snakemake benchmark file: s, max_rss (MB), cpu_time, ... as floats (None for NA)."""
    with open(path, newline="") as fh:
        return [{k: _number(v) for k, v in row.items() if k != "h:m:s"} for row in csv.DictReader(fh, delimiter="\t")]


def column_mean(rows: list[dict], key: str) -> float | None:
    """The mean of a benchmark column over the rows that have it (None: none has)."""
    values = [r.get(key) for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def parse_benchmarks(root: str | Path) -> list[dict]:
    """Every job's timing under ``root`` (results/benchmarks): dicts with file, rule, s, max_rss, cpu_time.

    A file with several rows (``--benchmark-repeats``) counts its mean.
    """
    root = Path(root)
    jobs = []
    for path in sorted(root.rglob("*.tsv")):
        rows = read_benchmark_tsv(path)
        if not rows:
            continue

        rel = path.relative_to(root)
        jobs.append(
            {
                "file": str(rel),
                "rule": rule_of(rel),
                "s": column_mean(rows, "s"),
                "max_rss": column_mean(rows, "max_rss"),
                "cpu_time": column_mean(rows, "cpu_time"),
            }
        )
    return jobs


def per_rule(jobs: list[dict]) -> dict[str, dict]:
    """rule -> jobs, s (sum), s_max, max_rss (largest, MB), cpu_time (sum)."""
    out: dict[str, dict] = {}
    for job in jobs:
        r = out.setdefault(job["rule"], {"jobs": 0, "s": 0.0, "s_max": 0.0, "max_rss": None, "cpu_time": 0.0})
        r["jobs"] += 1
        r["s"] += job["s"] or 0.0
        r["s_max"] = max(r["s_max"], job["s"] or 0.0)
        r["cpu_time"] += job["cpu_time"] or 0.0
        if job["max_rss"] is not None:
            r["max_rss"] = job["max_rss"] if r["max_rss"] is None else max(r["max_rss"], job["max_rss"])
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["s"]))


def per_stage(rules: dict[str, dict]) -> list[tuple[str, float]]:
    """(stage, summed job seconds) in STAGES order; rules not in STAGES go to 'other'."""
    known = {r for _, group in STAGES for r in group}
    rows = [(name, sum(rules[r]["s"] for r in group if r in rules)) for name, group in STAGES]
    others = sorted(r for r in rules if r not in known)
    if others:
        rows.append((f"other ({', '.join(others)})", sum(rules[r]["s"] for r in others)))
    return rows


SHARD_DONE = re.compile(r"shard done in ([\d.]+) s \(([^)]*)\)")
SHARD_PART = re.compile(r"(.+?) ([\d.]+) s")


def parse_shard_logs(texts: list[str]) -> dict | None:
    """Sums over the analysis jobs' own split of their time, as the measure (and draw) jobs log it,
    e.g. ``shard done in 20.1 s (read 0.4 s, model step 5.4 s, heatmap methods 1.0 s, metrics 9.0 s)``
    (older trees: ``model step``, ``metrics and files``): the in-job total and each named part. None
    when no log has the line."""
    total, parts, n = 0.0, {}, 0
    for text in texts:
        m = SHARD_DONE.search(text)
        if not m:
            continue
        n += 1
        total += float(m.group(1))
        for piece in m.group(2).split(", "):
            pm = SHARD_PART.fullmatch(piece.strip())
            if pm:
                parts[pm.group(1)] = parts.get(pm.group(1), 0.0) + float(pm.group(2))
    return {"logs": n, "in_job_s": total, "parts": parts} if n else None


JOB_TOTAL = re.compile(r"^\s*total\s+(\d+)\s*$", re.M)


def parse_dry_run(text: str) -> dict:
    """The job count of ``snakemake -n`` output (its "Job stats" table: rule, count; total) per rule."""
    jobs, total = {}, None
    stats = text.rfind("Job stats:")
    if stats >= 0:
        for line in text[stats:].splitlines()[1:]:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] == "total":
                    total = int(parts[1])
                    break
                jobs[parts[0]] = int(parts[1])
    if total is None and "Nothing to be done" in text:
        total = 0
    return {"jobs": total, "per_rule": jobs}


def parse_plan(text: str) -> dict[str, list[int]]:
    """``"shapes:100,1000,10000 vgg16:32,128"`` (entries split by spaces or ';') -> model -> sorted sizes,
    in the order given."""
    plan: dict[str, list[int]] = {}
    for entry in re.split(r"[\s;]+", text.strip()):
        if not entry:
            continue
        model, sep, sizes = entry.partition(":")
        if not sep or not model or not sizes:
            raise ValueError(f"plan entry {entry!r}: want MODEL:N[,N...]")
        try:
            values = {int(n) for n in sizes.split(",") if n}
        except ValueError:
            raise ValueError(f"plan entry {entry!r}: sizes must be whole numbers") from None
        if not values or min(values) < 1:
            raise ValueError(f"plan entry {entry!r}: sizes must be 1 or more")
        plan[model] = sorted(set(plan.get(model, [])) | values)
    if not plan:
        raise ValueError("empty plan")
    return plan


def pdf_info(path: str | Path) -> dict | None:
    """Pages and bytes of a PDF (pypdf, which WeasyPrint's stack brings), None when it is missing."""
    path = Path(path)
    if not path.is_file():
        return None
    out = {"bytes": path.stat().st_size, "pages": None}
    try:
        from pypdf import PdfReader

        out["pages"] = len(PdfReader(str(path)).pages)
    except Exception as exc:  # no pypdf, or a PDF it cannot read: the size still counts
        out["pages_error"] = f"{type(exc).__name__}: {exc}"
    return out


def du_parts(results: str | Path) -> dict[str, int]:
    """Bytes under results/ by part: ``<model>/<folder>`` (measure, sensitivity, exemplars, model, ...),
    and the top-level folders (report, logs, benchmarks); files directly in a folder count as ``.``."""
    results = Path(results)
    out: dict[str, int] = {}
    if not results.is_dir():
        return out
    for top in sorted(results.iterdir()):
        if top.is_file():
            out["."] = out.get(".", 0) + top.stat().st_size
        elif top.name in ("report", "logs", "benchmarks", "data"):
            out[top.name] = du_bytes(top)
        else:
            for sub in sorted(top.iterdir()):
                key = f"{top.name}/{sub.name}" if sub.is_dir() else f"{top.name}/."
                out[key] = out.get(key, 0) + (du_bytes(sub) if sub.is_dir() else sub.stat().st_size)
    return out


def scale_checks(sizes: dict[str, dict], small: int, large: int) -> dict | None:
    """Issue 12's checks of a study at ``large`` images against the same study at ``small``: the
    time ratio (e2e, and without the extras), the results' growth per added image, and the PDF's
    pages and size. ``sizes``: a model's ``sizes`` entry of the results (str(n) -> {convlens: ...})."""
    a, b = (sizes.get(str(n), {}).get("convlens", {}) for n in (small, large))
    if not a.get("wall_s") or not b.get("wall_s"):
        return None
    out = {
        "small": small,
        "large": large,
        "time_ratio": b["wall_s"] / a["wall_s"],
        "time_ratio_excl_extras": ratio(b.get("wall_excl_extras_s"), a.get("wall_excl_extras_s")),
    }
    if a.get("results_bytes") is not None and b.get("results_bytes") is not None:
        out["bytes_per_added_image"] = (b["results_bytes"] - a["results_bytes"]) / (large - small)
        out["bytes_per_image_at_large"] = b["results_bytes"] / large
    pa, pb = a.get("pdf") or {}, b.get("pdf") or {}
    if pa.get("pages") is not None and pb.get("pages") is not None:
        out["pages"] = [pa["pages"], pb["pages"]]
        out["pages_difference"] = pb["pages"] - pa["pages"]
    if pb.get("bytes") is not None:
        out["pdf_mb_at_large"] = pb["bytes"] / 2**20
    return out


def own_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process itself (not its children), from /proc; None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def du_bytes(folder: str | Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


# ---------------------------------------------------------------------------------------------
# fits and tables


def linear_fit(xs: list[float], ys: list[float]) -> dict:
    """Least squares y = intercept + slope * x; r2 (1.0 for two points). Needs two distinct x."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys, strict=False) if y is not None]
    if len({x for x, _ in pts}) < 2:
        raise ValueError("a line needs at least two distinct sizes")
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for _, y in pts)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in pts)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return {"slope": slope, "intercept": intercept, "r2": r2, "points": n}


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "–"
    return f"{value:.{digits}f}"


def ratio(a, b) -> float | None:
    return a / b if a is not None and b else None


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"

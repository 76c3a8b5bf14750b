"""The benchmark's own logic, without TensorFlow: models, study configs, images, the per-rule
timings Snakemake writes, the linear fit and the tables.

``benchmarks/run.py`` drives it; ``tests/test_benchmarks.py`` checks it on known answers.
"""

from __future__ import annotations

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

# jobs that are not part of the study being compared (each runs alone: a TensorFlow job takes every core)
EXTRA_RULES = ("filters", "method_quality")

# how the per-rule rows are grouped in the breakdown
STAGES = [
    ("setup (model, transforms)", ("dataset", "train_model", "load_model", "model_figures", "transform_table")),
    ("analysis (TF: maps, Grad-CAM, metrics)", ("analyze",)),
    ("rendering (per-image figures)", ("render_image",)),
    ("sensitivity study (tables, plots)", ("sensitivity",)),
    ("filters (not in the study)", ("filters",)),
    ("heatmap-method quality check (not in the study)", ("method_quality",)),
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


def study_config(model: str, images_folder: str = "images", model_file: str | Path | None = None,
                 images_per_job: int = 32, batch_size: int = 32, n_filters: int = 4, filter_steps: int = 5,
                 quality_images: int | None = 1, seed: int = 42) -> dict:
    """The convlens config of one benchmark study: one model, a folder of images, 6 transforms.

    Grad-CAM is the heatmap (the default); the filter step (``filter_steps`` for the plain and,
    where the workflow has them, the regularized patterns) and the heatmap-method quality check
    (``quality_images``) are kept small: they are not part of the study being compared and are
    reported as their own rows.
    """
    cfg = {
        "seed": seed,
        "images_per_job": images_per_job,
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
    for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                 "retina", "colorwheel", "camera", "moon", "brick", "grass", "gravel", "coins", "cell"):
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


def make_images(folder: str | Path, n: int, size: int) -> list[Path]:
    """Write n distinct size x size PNGs (crops and mirror images of scikit-image photos)."""
    import numpy as np
    from PIL import Image

    photos = _sample_photos()
    if n > 30 * len(photos):
        raise ValueError(f"at most {30 * len(photos)} distinct images")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        s, frac, place, mirrored = image_variant(i, len(photos))
        name, img = photos[s]
        h, w = img.shape[:2]
        side = int(min(h, w) * frac)
        top = {"centre": (h - side) // 2, "top-left": 0, "top-right": 0}.get(place, h - side)
        left = {"centre": (w - side) // 2, "top-left": 0, "bottom-left": 0}.get(place, w - side)
        crop = img[top:top + side, left:left + side]
        if mirrored:
            crop = crop[:, ::-1]
        out = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.Resampling.BICUBIC)
        path = folder / f"img{i:03d}_{name}.png"
        out.save(path)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------
# Snakemake's per-rule benchmark files


def rule_of(relative: str | Path) -> str:
    """The rule a file under results/benchmarks/ belongs to (see the ``benchmark:`` lines).

    ``<model>/analyze_s3.tsv`` -> analyze, ``<model>/render/<image>.tsv`` -> render_image,
    ``data/<dataset>.tsv`` -> dataset, ``<model>/load.tsv`` -> load_model, ``report.tsv`` -> report.
    """
    p = Path(relative)
    stem = p.name[:-4] if p.name.endswith(".tsv") else p.stem
    if len(p.parts) >= 2 and p.parts[-2] == "render":
        return "render_image"
    if len(p.parts) == 2 and p.parts[0] == "data":
        return "dataset"
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

        def mean(key):
            values = [r.get(key) for r in rows if r.get(key) is not None]
            return sum(values) / len(values) if values else None

        rel = path.relative_to(root)
        jobs.append({"file": str(rel), "rule": rule_of(rel), "s": mean("s"), "max_rss": mean("max_rss"),
                     "cpu_time": mean("cpu_time")})
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
    """Sums over the analysis jobs' own split of their time, as analyze_shard logs it, e.g.
    ``shard done in 20.1 s (model step 5.4 s, metrics and files 9.0 s)``: the in-job total and each
    named part. None when no log has the line."""
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
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if y is not None]
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

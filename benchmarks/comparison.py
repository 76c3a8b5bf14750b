"""Time the model comparison's tables (convlens.sensitivity.comparison) on a synthetic study.

    .venv/bin/python -m benchmarks.comparison --images 10000 --models 3 --layers 8 --methods 1

Builds each model's tidy table in memory (the default config's 29 transforms × layers × metrics, a
model-specific shift of the values), then times widen + compare per transform + group + compare per
group, the work of rule comparison without reading CSVs or drawing. Prints seconds and peak memory
(the process's peak resident set, and the peak of Python allocations during the timed part).
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd
import yaml

from convlens.config import validate
from convlens.sensitivity import comparison as cmp
from convlens.sensitivity.metrics import COLUMNS
from convlens.transforms import build_transforms


def synthetic_tables(n_images: int, n_models: int, n_layers: int, n_methods: int, seed: int = 0):
    cfg = validate(yaml.safe_load(open("config/config.yaml")))
    transforms = build_transforms(cfg["transforms"])
    groups = (
        [(f"layer{j}", m) for j in range(n_layers) for m in ("equivariance_error", "invariance_cosine")]
        + [("input", "equivariance_floor")]
        + [("output", m) for m in ("top1_change", "prob_change", "kl_divergence", "correct")]
        + [
            (f"method{j}", m)
            for j in range(n_methods)
            for m in ("heatmap_pearson", "heatmap_spearman", "heatmap_iou20")
        ]
    )
    keys = pd.DataFrame(
        [(t.name, t.param, la, m) for t in transforms for la, m in groups],
        columns=["transform", "param", "layer", "metric"],
    )
    rng = np.random.default_rng(seed)
    images = np.array([f"img{i:05d}" for i in range(n_images)])
    per_image = rng.normal(size=(n_images, 1))
    tables = {}
    for k in range(n_models):
        values = per_image + rng.normal(0.1 * k, 1.0, size=(n_images, len(keys)))
        frame = pd.DataFrame(
            {
                "image": np.repeat(images, len(keys)),
                **{c: np.tile(keys[c].to_numpy(), n_images) for c in keys.columns},
                "value": values.ravel(),
            }
        )
        for c in COLUMNS[:-1]:
            frame[c] = frame[c].astype("category")
        tables[f"model{k}"] = frame
    return tables, transforms, len(keys)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--methods", type=int, default=1)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--test", choices=["t", "wilcoxon"], default="t")
    args = parser.parse_args()
    tables, transforms, n_groups = synthetic_tables(args.images, args.models, args.layers, args.methods)
    rows = sum(len(t) for t in tables.values())
    tracemalloc.start()
    start, cpu = time.perf_counter(), time.process_time()
    wide = cmp.widen(tables)
    widened = time.perf_counter()
    summary, diffs = cmp.compare(wide, "model0", args.n_boot, 0.95, 0, "bh", args.test)
    per_transform = time.perf_counter()
    grouped = cmp.group_transforms(wide, transforms)
    gsummary, gdiffs = cmp.compare(grouped, "model0", args.n_boot, 0.95, 0, "bh", args.test)
    done, cpu = time.perf_counter(), time.process_time() - cpu
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"{args.images} images × {args.models} models × {n_groups} groups ({rows:,} rows), "
        f"{args.n_boot} resamples, {args.test} test"
    )
    print(
        f"widen {widened - start:.1f} s; compare per transform {per_transform - widened:.1f} s "
        f"({len(summary)} summary, {len(diffs)} difference rows); groups and compare per group "
        f"{done - per_transform:.1f} s ({len(gdiffs)} difference rows); total {done - start:.1f} s "
        f"({cpu:.1f} s of CPU time over all threads)"
    )
    print(
        f"peak Python allocations during the timed part {peak / 2**20:.0f} MiB; "
        f"peak resident set of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()

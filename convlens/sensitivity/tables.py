"""The study's tables over all images of a model: the tidy table, its summaries, the prediction and
heatmap-agreement tables, the between-images baseline and the sweep curves. Pure pandas/numpy.

Inputs are the per-image metric rows the analysis jobs write (see ``sensitivity.metrics``) and each
image's pooled reference features (for the between-images baseline of the cosine).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from convlens.sensitivity.metrics import COLUMNS, METRICS
from convlens.transforms import NEUTRAL, Transform


def load_metrics(paths: list[str]) -> pd.DataFrame:
    frames = [
        pd.read_csv(
            p,
            dtype={"image": str, "transform": str, "param": str, "layer": str, "metric": str, "value": float},
            keep_default_na=False,
            na_values={"value": ["", "nan"]},
        )
        for p in paths
    ]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    table["param"] = table["param"].fillna("")
    # a few distinct values repeated over millions of rows: categories keep a large study in memory
    # (10,000 images of the benchmark: 1.4 million rows in 19 MB)
    for column in ("image", "transform", "param", "layer", "metric"):
        table[column] = table[column].astype("category")
    return table[COLUMNS]


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation, worst case and count per transform × layer × metric.

    Worst is the maximum for metrics where larger is worse (errors, changes) and the minimum for
    the others (similarities, correctness). NaN values (undefined measurements) are left out and
    counted in ``n_undefined``.
    """
    keys = ["transform", "param", "layer", "metric"]
    grouped = table.groupby(keys, sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", max="max", min="min", n="count", size="size").reset_index()
    larger_worse = out["metric"].map(lambda m: METRICS[m][1])
    out["worst"] = np.where(larger_worse, out["max"], out["min"])
    out["n_undefined"] = out["size"] - out["n"]
    return out[keys + ["mean", "std", "worst", "n", "n_undefined"]]


BASELINE_IMAGES = 2000  # more images than this: the baseline uses a seeded sample of them (2 million pairs)


def between_images_cosine(pooled: dict[str, dict[str, np.ndarray]], layers: list[str], seed: int = 0) -> pd.DataFrame:
    """Per layer, the mean and std of the cosine between the pooled features of different images:
    the baseline against which an invariance cosine reads (two unrelated images score this).

    Every pair of images (with a non-zero vector), or of a seeded sample of ``BASELINE_IMAGES``
    images when there are more, so the cost stays bounded in a large study.
    """
    rows = []
    images = sorted(pooled)
    if len(images) > BASELINE_IMAGES:
        picked = np.random.default_rng(seed).choice(len(images), BASELINE_IMAGES, replace=False)
        images = [images[i] for i in sorted(picked)]
    for layer in layers:
        vectors = np.stack([pooled[i][layer] for i in images]).astype(np.float64) if images else np.zeros((0, 1))
        norms = np.linalg.norm(vectors, axis=1)
        unit = vectors[norms > 0] / norms[norms > 0, None]
        upper = np.triu_indices(len(unit), k=1)
        cos = (unit @ unit.T)[upper]
        rows.append(
            {
                "layer": layer,
                "mean": float(np.mean(cos)) if cos.size else np.nan,
                "std": float(np.std(cos)) if cos.size else np.nan,
                "n_pairs": int(cos.size),
            }
        )
    return pd.DataFrame(rows, columns=["layer", "mean", "std", "n_pairs"])


def prediction_table(table: pd.DataFrame, transforms: list[Transform]) -> pd.DataFrame:
    """Per transform: flip rate, MAC, mean KL, accuracy under it and clean accuracy; then the worst
    case over the whole set (an image counts as right only if every transform keeps it right)."""
    out = table[table["layer"] == "output"].pivot_table(
        index=["image", "transform"], columns="metric", values="value", aggfunc="first"
    )
    clean = out.xs("identity", level="transform")["correct"].mean() if "correct" in out else np.nan
    rows = []
    for t in transforms:
        if t.name not in out.index.get_level_values("transform"):
            continue
        sub = out.xs(t.name, level="transform")
        rows.append(
            {
                "transform": t.name,
                "kind": t.kind,
                "param": t.param,
                "n_images": len(sub),
                "flips": int(sub["top1_change"].sum()),
                "flip_rate": sub["top1_change"].mean(),
                "mac": sub["prob_change"].mean(),
                "kl": sub["kl_divergence"].mean(),
                "accuracy": sub["correct"].mean() if "correct" in sub else np.nan,
                "clean_accuracy": clean,
            }
        )
    if "correct" in out:
        per_image = out["correct"].groupby(level="image").min().dropna()  # labelled images only
        rows.append(
            {
                "transform": "worst case over all",
                "kind": "",
                "param": "",
                "n_images": len(per_image),
                "flips": int(out["top1_change"].groupby(level="image").max().sum()),
                "flip_rate": out["top1_change"].groupby(level="image").max().mean(),
                "mac": out["prob_change"].groupby(level="image").max().mean(),
                "kl": out["kl_divergence"].groupby(level="image").max().mean(),
                "accuracy": per_image.mean(),
                "clean_accuracy": clean,
            }
        )
    return pd.DataFrame(rows)


def heatmap_by_flip(table: pd.DataFrame) -> pd.DataFrame:
    """Heatmap agreement split by whether the prediction flipped: per method × metric × flipped."""
    flips = table[(table["metric"] == "top1_change")][["image", "transform", "value"]].rename(
        columns={"value": "flipped"}
    )
    heat = table[table["metric"].str.startswith("heatmap_") & (table["transform"] != "identity")]
    merged = heat.merge(flips, on=["image", "transform"])
    merged["flipped"] = merged["flipped"].astype(bool)
    return (
        merged.groupby(["layer", "metric", "flipped"])["value"]
        .agg(mean="mean", std="std", n="count")
        .reset_index()
        .rename(columns={"layer": "method"})
    )


def curves(table: pd.DataFrame, transforms: list[Transform]) -> dict[str, pd.DataFrame]:
    """For each magnitude curve (``shift x``, ``rotate``, ``scale``, ``blur``...) with two or more
    magnitudes: mean of every metric per magnitude × layer, identity included at the neutral
    magnitude (a curve without one, JPEG quality, has only its own points)."""
    by_curve: dict[str, dict[str, float]] = {}
    for t in transforms:
        if t.axis:
            by_curve.setdefault(t.axis[0], {})[t.name] = t.axis[1]
    means = table.groupby(["transform", "layer", "metric"])["value"].mean().reset_index()
    out = {}
    for curve, members in by_curve.items():
        if len(members) < 2:
            continue
        if NEUTRAL[curve] is not None:
            members = {**members, "identity": NEUTRAL[curve]}
        sub = means[means["transform"].isin(members)].copy()
        sub["magnitude"] = sub["transform"].map(members)
        out[curve] = sub.sort_values("magnitude")
    return out


def kind_of(transforms: list[Transform]) -> dict[str, str]:
    return {t.name: t.kind for t in transforms}


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts for JSON, NaN as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")

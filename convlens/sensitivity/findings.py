"""The sentences that read the study's tables: only what the numbers say, with the numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from convlens import transform_kinds
from convlens.attribution.registry import display_name
from convlens.sensitivity.tables import kind_of
from convlens.transform_labels import label_of
from convlens.transforms import Transform

# the kinds' order and words in the sentences, from convlens/transform_kinds.py
KIND_ORDER = transform_kinds.FINDINGS_ORDER


KIND_WORDS = {name: transform_kinds.REGISTRY[name].words for name in KIND_ORDER}


def fmt(v: float, digits: int = 2) -> str:
    return "undefined" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def findings(
    table: pd.DataFrame,
    transforms: list[Transform],
    layers: list[str],
    baseline: pd.DataFrame,
    predictions: pd.DataFrame,
    heat: pd.DataFrame,
) -> list[list[dict]]:
    """A few sentences, each a list of parts: ``{"text": ...}`` or ``{"text": ..., "image": id}`` (a
    link to that image's sheet). The template escapes every part."""
    kinds_by_name = kind_of(transforms)
    kinds = [k for k in KIND_ORDER if k in set(kinds_by_name.values()) - {"identity"}]
    sentences: list[list[dict]] = []
    out = table[table["layer"] == "output"]

    def image_links(images: list[str], limit: int = 4) -> list[dict]:
        parts = []
        for i, image in enumerate(images[:limit]):
            parts += ([{"text": ", "}] if i else []) + [{"text": image, "image": image}]
        if len(images) > limit:
            parts.append({"text": f" and {len(images) - limit} more"})
        return parts

    # predictions: clean and worst-case accuracy, then the flips per kind
    worst = predictions[predictions["transform"] == "worst case over all"]
    if len(worst) and np.isfinite(worst["accuracy"].iloc[0]):
        w = worst.iloc[0]
        sentences.append(
            [
                {
                    "text": f"Clean accuracy is {100 * w['clean_accuracy']:.0f} % on the {w['n_images']} "
                    f"labelled images; over all {len(transforms) - 1} transforms together (an image "
                    f"counts only if every transform keeps it right) it is {100 * w['accuracy']:.0f} %."
                }
            ]
        )
    flips = out[out["metric"] == "top1_change"]
    for kind in kinds:
        names = [n for n, k in kinds_by_name.items() if k == kind]
        sub = flips[flips["transform"].isin(names)]
        if not len(sub):
            continue
        n_flip = int(sub["value"].sum())
        if n_flip == 0:
            biggest = largest(kind, [t for t in transforms if t.name in names])
            sentences.append(
                [
                    {
                        "text": f"The prediction never changes under {KIND_WORDS[kind]} "
                        f"({len(names)} transform{'s' if len(names) > 1 else ''}"
                        f"{', up to ' + biggest if biggest else ''}) on any of the "
                        f"{sub['image'].nunique()} images."
                    }
                ]
            )
            continue
        per_t = sub.groupby("transform")["value"].sum()
        top_t = per_t.idxmax()
        flipped_images = sub[(sub["transform"] == top_t) & (sub["value"] > 0)]["image"].tolist()
        sentences.append(
            [
                {
                    "text": f"Under {KIND_WORDS[kind]} the top-1 class changes in {n_flip} of {len(sub)} "
                    f"image–transform pairs; most often under {label_of(top_t)} "
                    f"({int(per_t.max())} of {sub['image'].nunique()} images: "
                }
            ]
            + image_links(flipped_images)
            + [{"text": ")."}]
        )

    # layers: least and most sensitive per kind; invariance against depth and the baseline
    err = table[table["metric"] == "equivariance_error"]
    cos = table[table["metric"] == "invariance_cosine"]
    base = baseline.set_index("layer")["mean"] if len(baseline) else pd.Series(dtype=float)
    for kind in kinds:
        names = [n for n, k in kinds_by_name.items() if k == kind]
        e = err[err["transform"].isin(names)]
        if not len(e):
            if not transform_kinds.REGISTRY[kind].equivariant:  # nothing moves: invariance only
                sentences += invariance_sentence(kind, cos[cos["transform"].isin(names)], layers, base)
            continue
        by_layer = e.groupby("layer", sort=False)["value"].mean().reindex(layers).dropna()
        if len(by_layer) < 2:
            continue
        lo, hi = by_layer.idxmin(), by_layer.idxmax()
        worst_row = e[e["layer"] == hi].sort_values("value", ascending=False).iloc[0]
        parts = [
            {
                "text": f"Under {KIND_WORDS[kind]}, the maps of {lo} follow the input most faithfully (mean "
                f"equivariance error {fmt(by_layer[lo])}) and those of {hi} least ({fmt(by_layer[hi])}; "
                f"largest on "
            },
            {"text": str(worst_row["image"]), "image": str(worst_row["image"])},
            {"text": f" under {label_of(worst_row['transform'])}, {fmt(worst_row['value'])})."},
        ]
        c = cos[cos["transform"].isin(names)].groupby("layer", sort=False)["value"].mean().reindex(layers).dropna()
        if len(c) >= 2:
            first, last = c.index[0], c.index[-1]
            text = f" Pooled features keep a cosine of {fmt(c[first], 3)} at {first} and {fmt(c[last], 3)} at {last}"
            if np.isfinite(base.get(first, np.nan)) and np.isfinite(base.get(last, np.nan)):
                text += f", against {fmt(base[first], 3)} and {fmt(base[last], 3)} between different images"
            parts.append({"text": text + "."})
        sentences.append(parts)

    sentences += heatmap_sentences(heat)

    floor = table[(table["metric"] == "equivariance_floor") & (table["transform"] != "identity")]
    if len(floor) and floor["value"].notna().any():
        f = floor.groupby("transform")["value"].mean().dropna()
        exact = [n for n, v in f.items() if v < 1e-6]
        top = f.idxmax()
        sentences.append(
            [
                {
                    "text": f"Interpolation alone (input warped by T then back) costs a mean relative error "
                    f"of up to {fmt(f[top], 3)} ({label_of(top)}); {len(exact)} of {len(f)} transforms are exact on "
                    f"the pixel grid (flips, 90° turns, whole-pixel shifts)."
                }
            ]
        )
    return sentences


def heatmap_sentences(heat: pd.DataFrame) -> list[list[dict]]:
    """Which method's heatmap moves with the image best, and which follow the decision (none: no sentence)."""
    pearson = heat[heat["metric"] == "heatmap_pearson"] if len(heat) else heat
    held = pearson[~pearson["flipped"]].dropna(subset=["mean"]).set_index("method") if len(pearson) else pearson
    if len(held):
        best, worst = held["mean"].idxmax(), held["mean"].idxmin()
        text = (
            f"Moved back by T⁻¹, the heatmap of a transformed image agrees with the original's best for "
            f"{display_name(best)} "
            f"(Pearson {fmt(held.loc[best, 'mean'])} where the prediction holds, n = {int(held.loc[best, 'n'])})"
        )
        text += f" and least for {display_name(worst)} ({fmt(held.loc[worst, 'mean'])})." if worst != best else "."
        flipped = pearson[pearson["flipped"]].dropna(subset=["mean"]).set_index("method")
        drops = [
            (m, held.loc[m, "mean"], flipped.loc[m, "mean"])
            for m in flipped.index
            if m in held.index and held.loc[m, "mean"] - flipped.loc[m, "mean"] > 0.1
        ]
        if drops:
            listed = ", ".join(
                f"{display_name(m)} {fmt(a)} → {fmt(b)}" for m, a, b in sorted(drops, key=lambda d: d[2] - d[1])
            )
            text += (
                f" Where the prediction flips, agreement drops for {listed}: these maps follow the decision, "
                f"not only the image."
            )
        elif len(flipped):
            text += " No method's agreement drops by more than 0.1 where the prediction flips."
        return [[{"text": text}]]
    return []


def invariance_sentence(kind: str, cos: pd.DataFrame, layers: list[str], base: pd.Series) -> list[list[dict]]:
    """The pooled features' cosine under a photometric kind, first and last layer (equivariance does not
    apply to it); no sentence with fewer than two layers measured."""
    c = cos.groupby("layer", sort=False)["value"].mean().reindex(layers).dropna()
    if len(c) < 2:
        return []
    first, last = c.index[0], c.index[-1]
    text = (
        f"Under {KIND_WORDS[kind]} (pixel changes that move nothing: no equivariance measure) pooled features keep a "
        f"cosine of {fmt(c[first], 3)} at {first} and {fmt(c[last], 3)} at {last}"
    )
    if np.isfinite(base.get(first, np.nan)) and np.isfinite(base.get(last, np.nan)):
        text += f", against {fmt(base[first], 3)} and {fmt(base[last], 3)} between different images"
    return [[{"text": text + "."}]]


def largest(kind: str, ts: list[Transform]) -> str:
    """The largest magnitude of a kind, as text (``6 px``, ``90°``, ``×1.4``); '' for flips."""
    return transform_kinds.REGISTRY[kind].largest([t.axis[1] for t in ts if t.axis])

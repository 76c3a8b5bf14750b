"""The sensitivity study of one model: the tidy table of every image, its summaries, plots and the
sentences that read them. Pure pandas/numpy/matplotlib; no TensorFlow.

Inputs are the per-image ``metrics.csv`` files the analysis jobs write (see ``sensitivity``) and
each image's pooled reference features (for the between-images baseline of the cosine).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from convlens.sensitivity import COLUMNS, METRICS
from convlens.transforms import NEUTRAL, Transform

log = logging.getLogger("convlens")

KIND_ORDER = ("shift", "rotate", "scale", "hflip", "vflip")
KIND_WORDS = {"shift": "shifts", "rotate": "rotations", "scale": "scalings", "hflip": "the horizontal flip",
              "vflip": "the vertical flip"}


def load_metrics(paths: list[str]) -> pd.DataFrame:
    frames = [pd.read_csv(p, dtype={"image": str, "transform": str, "param": str, "layer": str, "metric": str,
                                    "value": float}, keep_default_na=False, na_values={"value": ["", "nan"]})
              for p in paths]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    table["param"] = table["param"].fillna("")
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


def between_images_cosine(pooled: dict[str, dict[str, np.ndarray]], layers: list[str]) -> pd.DataFrame:
    """Per layer, the mean and std of the cosine between the pooled features of different images:
    the baseline against which an invariance cosine reads (two unrelated images score this)."""
    rows = []
    images = sorted(pooled)
    for layer in layers:
        vectors = np.stack([pooled[i][layer] for i in images]).astype(np.float64) if images else np.zeros((0, 0))
        cos = []
        for a in range(len(images)):
            for b in range(a + 1, len(images)):
                na, nb = np.linalg.norm(vectors[a]), np.linalg.norm(vectors[b])
                if na > 0 and nb > 0:
                    cos.append(float(vectors[a] @ vectors[b] / (na * nb)))
        rows.append({"layer": layer, "mean": float(np.mean(cos)) if cos else np.nan,
                     "std": float(np.std(cos)) if cos else np.nan, "n_pairs": len(cos)})
    return pd.DataFrame(rows, columns=["layer", "mean", "std", "n_pairs"])


def prediction_table(table: pd.DataFrame, transforms: list[Transform]) -> pd.DataFrame:
    """Per transform: flip rate, MAC, mean KL, accuracy under it and clean accuracy; then the worst
    case over the whole set (an image counts as right only if every transform keeps it right)."""
    out = table[table["layer"] == "output"].pivot_table(index=["image", "transform"], columns="metric",
                                                         values="value", aggfunc="first")
    clean = out.xs("identity", level="transform")["correct"].mean() if "correct" in out else np.nan
    rows = []
    for t in transforms:
        if t.name not in out.index.get_level_values("transform"):
            continue
        sub = out.xs(t.name, level="transform")
        rows.append({"transform": t.name, "kind": t.kind, "param": t.param, "n_images": len(sub),
                     "flips": int(sub["top1_change"].sum()), "flip_rate": sub["top1_change"].mean(),
                     "mac": sub["prob_change"].mean(), "kl": sub["kl_divergence"].mean(),
                     "accuracy": sub["correct"].mean() if "correct" in sub else np.nan, "clean_accuracy": clean})
    if "correct" in out:
        per_image = out["correct"].groupby(level="image").min().dropna()  # labelled images only
        rows.append({"transform": "worst case over all", "kind": "", "param": "", "n_images": len(per_image),
                     "flips": int(out["top1_change"].groupby(level="image").max().sum()),
                     "flip_rate": out["top1_change"].groupby(level="image").max().mean(),
                     "mac": out["prob_change"].groupby(level="image").max().mean(),
                     "kl": out["kl_divergence"].groupby(level="image").max().mean(),
                     "accuracy": per_image.mean(), "clean_accuracy": clean})
    return pd.DataFrame(rows)


def heatmap_by_flip(table: pd.DataFrame) -> pd.DataFrame:
    """Heatmap agreement split by whether the prediction flipped: per method × metric × flipped."""
    flips = table[(table["metric"] == "top1_change")][["image", "transform", "value"]].rename(columns={"value": "flipped"})
    heat = table[table["metric"].str.startswith("heatmap_") & (table["transform"] != "identity")]
    merged = heat.merge(flips, on=["image", "transform"])
    merged["flipped"] = merged["flipped"].astype(bool)
    return (merged.groupby(["layer", "metric", "flipped"])["value"].agg(mean="mean", std="std", n="count")
            .reset_index().rename(columns={"layer": "method"}))


def curves(table: pd.DataFrame, transforms: list[Transform]) -> dict[str, pd.DataFrame]:
    """For each magnitude curve (``shift x``, ``rotate``, ``scale``...) with two or more magnitudes:
    mean of every metric per magnitude × layer, identity included at the neutral magnitude."""
    by_curve: dict[str, dict[str, float]] = {}
    for t in transforms:
        if t.axis:
            by_curve.setdefault(t.axis[0], {})[t.name] = t.axis[1]
    means = table.groupby(["transform", "layer", "metric"])["value"].mean().reset_index()
    out = {}
    for curve, members in by_curve.items():
        if len(members) < 2:
            continue
        members = {**members, "identity": NEUTRAL[curve]}
        sub = means[means["transform"].isin(members)].copy()
        sub["magnitude"] = sub["transform"].map(members)
        out[curve] = sub.sort_values("magnitude")
    return out


# ---------------------------------------------------------------------------------------------
# sentences that read the numbers


def _kind_of(transforms: list[Transform]) -> dict[str, str]:
    return {t.name: t.kind for t in transforms}


def _fmt(v: float, digits: int = 2) -> str:
    return "undefined" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def findings(table: pd.DataFrame, transforms: list[Transform], layers: list[str], baseline: pd.DataFrame,
             predictions: pd.DataFrame, heat: pd.DataFrame) -> list[list[dict]]:
    """A few sentences, each a list of parts: ``{"text": ...}`` or ``{"text": ..., "image": id}`` (a
    link to that image's sheet). The template escapes every part."""
    kind_of = _kind_of(transforms)
    kinds = [k for k in KIND_ORDER if k in set(kind_of.values()) - {"identity"}]
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
        sentences.append([{"text": f"Clean accuracy is {100 * w['clean_accuracy']:.0f} % on the {w['n_images']} "
                                   f"labelled images; over all {len(transforms) - 1} transforms together (an image "
                                   f"counts only if every transform keeps it right) it is {100 * w['accuracy']:.0f} %."}])
    flips = out[out["metric"] == "top1_change"]
    for kind in kinds:
        names = [n for n, k in kind_of.items() if k == kind]
        sub = flips[flips["transform"].isin(names)]
        if not len(sub):
            continue
        n_flip = int(sub["value"].sum())
        if n_flip == 0:
            biggest = _largest(kind, [t for t in transforms if t.name in names])
            sentences.append([{"text": f"The prediction never changes under {KIND_WORDS[kind]} "
                                       f"({len(names)} transform{'s' if len(names) > 1 else ''}"
                                       f"{', up to ' + biggest if biggest else ''}) on any of the "
                                       f"{sub['image'].nunique()} images."}])
            continue
        per_t = sub.groupby("transform")["value"].sum()
        top_t = per_t.idxmax()
        flipped_images = sub[(sub["transform"] == top_t) & (sub["value"] > 0)]["image"].tolist()
        sentences.append([{"text": f"Under {KIND_WORDS[kind]} the top-1 class changes in {n_flip} of {len(sub)} "
                                   f"image–transform pairs; most often under {top_t} "
                                   f"({int(per_t.max())} of {sub['image'].nunique()} images: "}]
                         + image_links(flipped_images) + [{"text": ")."}])

    # layers: least and most sensitive per kind; invariance against depth and the baseline
    err = table[table["metric"] == "equivariance_error"]
    cos = table[table["metric"] == "invariance_cosine"]
    base = baseline.set_index("layer")["mean"] if len(baseline) else pd.Series(dtype=float)
    for kind in kinds:
        names = [n for n, k in kind_of.items() if k == kind]
        e = err[err["transform"].isin(names)]
        if not len(e):
            continue
        by_layer = e.groupby("layer", sort=False)["value"].mean().reindex(layers).dropna()
        if len(by_layer) < 2:
            continue
        lo, hi = by_layer.idxmin(), by_layer.idxmax()
        worst_row = e[e["layer"] == hi].sort_values("value", ascending=False).iloc[0]
        parts = [{"text": f"Under {KIND_WORDS[kind]}, the maps of {lo} follow the input most faithfully (mean "
                          f"equivariance error {_fmt(by_layer[lo])}) and those of {hi} least ({_fmt(by_layer[hi])}; "
                          f"largest on "},
                 {"text": str(worst_row["image"]), "image": str(worst_row["image"])},
                 {"text": f" under {worst_row['transform']}, {_fmt(worst_row['value'])})."}]
        c = cos[cos["transform"].isin(names)].groupby("layer", sort=False)["value"].mean().reindex(layers).dropna()
        if len(c) >= 2:
            first, last = c.index[0], c.index[-1]
            text = f" Pooled features keep a cosine of {_fmt(c[first], 3)} at {first} and {_fmt(c[last], 3)} at {last}"
            if np.isfinite(base.get(first, np.nan)) and np.isfinite(base.get(last, np.nan)):
                text += f", against {_fmt(base[first], 3)} and {_fmt(base[last], 3)} between different images"
            parts.append({"text": text + "."})
        sentences.append(parts)

    # heatmaps: which method's map moves with the image best, and which follow the decision
    pearson = heat[heat["metric"] == "heatmap_pearson"] if len(heat) else heat
    held = pearson[~pearson["flipped"]].dropna(subset=["mean"]).set_index("method") if len(pearson) else pearson
    if len(held):
        best, worst = held["mean"].idxmax(), held["mean"].idxmin()
        text = (f"Moved back by T⁻¹, the heatmap of a transformed image agrees with the original's best for {best} "
                f"(Pearson {_fmt(held.loc[best, 'mean'])} where the prediction holds, n = {int(held.loc[best, 'n'])})")
        text += f" and least for {worst} ({_fmt(held.loc[worst, 'mean'])})." if worst != best else "."
        flipped = pearson[pearson["flipped"]].dropna(subset=["mean"]).set_index("method")
        drops = [(m, held.loc[m, "mean"], flipped.loc[m, "mean"]) for m in flipped.index
                 if m in held.index and held.loc[m, "mean"] - flipped.loc[m, "mean"] > 0.1]
        if drops:
            listed = ", ".join(f"{m} {_fmt(a)} → {_fmt(b)}" for m, a, b in sorted(drops, key=lambda d: d[2] - d[1]))
            text += (f" Where the prediction flips, agreement drops for {listed}: these maps follow the decision, "
                     f"not only the image.")
        elif len(flipped):
            text += " No method's agreement drops by more than 0.1 where the prediction flips."
        sentences.append([{"text": text}])

    floor = table[(table["metric"] == "equivariance_floor") & (table["transform"] != "identity")]
    if len(floor) and floor["value"].notna().any():
        f = floor.groupby("transform")["value"].mean().dropna()
        exact = [n for n, v in f.items() if v < 1e-6]
        top = f.idxmax()
        sentences.append([{"text": f"Interpolation alone (input warped by T then back) costs a mean relative error "
                                   f"of up to {_fmt(f[top], 3)} ({top}); {len(exact)} of {len(f)} transforms are exact on "
                                   f"the pixel grid (flips, 90° turns, whole-pixel shifts)."}])
    return sentences


def _largest(kind: str, ts: list[Transform]) -> str:
    """The largest magnitude of a kind, as text (``6 px``, ``90°``, ``×1.4``); '' for flips."""
    mags = [t.axis[1] for t in ts if t.axis]
    if not mags:
        return ""
    if kind == "shift":
        return f"{max(abs(m) for m in mags):g} px"
    if kind == "rotate":
        return f"{max(abs(m) for m in mags):g}°"
    return f"×{max(mags, key=lambda m: abs(np.log(m))):g}"


# ---------------------------------------------------------------------------------------------
# plots


FAMILY_CMAP = {"shift": "Blues", "rotate": "Reds", "scale": "Greens"}
FLIP_STYLE = {"hflip": ("black", "--"), "vflip": ("dimgrey", ":")}


def _transform_colours(transforms: list[Transform]) -> dict[str, tuple]:
    """A colour per transform: a colour family per kind, darker for a larger magnitude."""
    import matplotlib

    colours = {}
    for kind, cmap_name in FAMILY_CMAP.items():
        members = [t for t in transforms if t.kind == kind]
        if not members:
            continue
        cmap = matplotlib.colormaps[cmap_name]
        size = [abs(np.log(t.axis[1])) if kind == "scale" else abs(t.axis[1]) if t.axis else 1.0 for t in members]
        top = max(size) or 1.0
        for t, s in zip(members, size):
            colours[t.name] = cmap(0.35 + 0.6 * s / top)
    return colours


def _short(layer: str) -> str:
    return layer.rsplit("/", 1)[-1]


def plot_by_layer(table: pd.DataFrame, transforms: list[Transform], layers: list[str], baseline: pd.DataFrame,
                  path: Path) -> None:
    """Equivariance error and invariance cosine against layer depth, one line per transform."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colours = _transform_colours(transforms)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    x = np.arange(len(layers))
    for ax, metric, title in ((axes[0], "equivariance_error", "equivariance error (lower: more equivariant)"),
                              (axes[1], "invariance_cosine", "cosine of pooled features (higher: more invariant)")):
        means = table[table["metric"] == metric].groupby(["transform", "layer"])["value"].mean()
        for t in transforms[1:]:
            if t.name not in means.index.get_level_values(0):
                continue
            y = means.loc[t.name].reindex(layers).to_numpy()
            colour, style = FLIP_STYLE.get(t.kind, (colours.get(t.name, "grey"), "-"))
            ax.plot(x, y, style, color=colour, lw=1.3, marker="o", ms=2.5)
        if metric == "invariance_cosine" and len(baseline):
            ax.plot(x, baseline.set_index("layer")["mean"].reindex(layers).to_numpy(), color="orange", lw=2, ls="-.")
        ax.set_xticks(x, [_short(layer) for layer in layers], rotation=60, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=plt.get_cmap(c)(0.8), label=k) for k, c in FAMILY_CMAP.items()
               if any(t.kind == k for t in transforms)]
    handles += [Line2D([], [], color=c, ls=s, label=k) for k, (c, s) in FLIP_STYLE.items() if any(t.kind == k for t in transforms)]
    handles.append(Line2D([], [], color="orange", ls="-.", lw=2, label="different images"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
               title="darker = larger magnitude", title_fontsize=7)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


CURVE_PANELS = (("equivariance_error", "equivariance error"), ("invariance_cosine", "cosine of pooled features"),
                ("top1_change", "flip rate / MAC"), ("heatmap_pearson", "heatmap agreement (Pearson)"))


def plot_curve(curve: str, data: pd.DataFrame, layers: list[str], path: Path) -> None:
    """Every metric against the magnitude of one sweep, one line per layer (after Zeiler & Fergus 2014, Fig. 5)."""
    import matplotlib
    import matplotlib.pyplot as plt

    cmap = matplotlib.colormaps["viridis"]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
    unit = {"rotate": "angle (degrees)", "scale": "scale factor"}.get(curve, "shift (pixels)")
    for ax, (metric, title) in zip(axes, CURVE_PANELS):
        sub = data[data["metric"] == metric]
        if metric in ("equivariance_error", "invariance_cosine"):
            for i, layer in enumerate(layers):
                s = sub[sub["layer"] == layer]
                ax.plot(s["magnitude"], s["value"], color=cmap(i / max(1, len(layers) - 1)), lw=1.2, marker="o", ms=2,
                        label=_short(layer))
            if metric == "equivariance_error":
                floor = data[data["metric"] == "equivariance_floor"]
                ax.plot(floor["magnitude"], floor["value"], color="grey", ls=":", label="floor (input)")
        elif metric == "top1_change":
            ax.plot(sub["magnitude"], sub["value"], color="crimson", marker="o", ms=3, label="flip rate")
            mac = data[data["metric"] == "prob_change"]
            ax.plot(mac["magnitude"], mac["value"], color="navy", marker="s", ms=3, label="MAC")
            ax.set_ylim(-0.03, 1.03)
        else:
            for method, s in sub.groupby("layer"):
                ax.plot(s["magnitude"], s["value"], marker="o", ms=3, label=method)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(unit, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        if metric != "invariance_cosine":
            ax.legend(fontsize=6, frameon=False)
    fig.suptitle(f"{curve}: metrics against the magnitude (means over images)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_predictions(predictions: pd.DataFrame, path: Path) -> None:
    """Flip rate per transform, with accuracy under it beside the clean accuracy."""
    import matplotlib.pyplot as plt

    p = predictions[predictions["transform"] != "identity"]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    x = np.arange(len(p))
    ax.bar(x - 0.2, p["flip_rate"], 0.4, color="crimson", label="flip rate (top-1 change)")
    if p["accuracy"].notna().any():
        ax.bar(x + 0.2, p["accuracy"], 0.4, color="seagreen", label="accuracy under the transform")
        ax.axhline(p["clean_accuracy"].iloc[0], color="black", ls="--", lw=1, label="clean accuracy")
    ax.set_xticks(x, p["transform"], rotation=70, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, 1.18), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_heat_table(table: pd.DataFrame, transforms: list[Transform], layers: list[str], path: Path) -> None:
    """Layer × transform tables of the mean equivariance error and the mean invariance cosine."""
    import matplotlib.pyplot as plt

    names = [t.name for t in transforms[1:]]
    fig, axes = plt.subplots(2, 1, figsize=(10, 1.2 + 0.62 * len(layers)))
    for ax, metric, cmap, title in ((axes[0], "equivariance_error", "magma_r", "mean equivariance error"),
                                    (axes[1], "invariance_cosine", "viridis", "mean cosine of pooled features")):
        grid = (table[table["metric"] == metric].groupby(["layer", "transform"])["value"].mean().unstack()
                .reindex(index=layers, columns=names))
        values = grid.to_numpy(dtype=float)
        im = ax.imshow(values, aspect="auto", cmap=cmap)
        ax.set_yticks(range(len(layers)), [_short(layer) for layer in layers], fontsize=7)
        ax.set_xticks(range(len(names)), names if ax is axes[1] else [""] * len(names), rotation=70, ha="right",
                      fontsize=6)
        if len(names) * len(layers) <= 400:
            for (i, j), v in np.ndenumerate(values):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=4.5,
                            color="white" if im.norm(v) > 0.55 else "black")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# the whole study


PLOTS = ("by_layer.png", "predictions.png", "heat_table.png")


def run_study(metrics_paths: list[str], pooled: dict[str, dict[str, np.ndarray]], transforms: list[Transform],
              layers: list[str], out_dir: str | Path, figures_dir: str | Path) -> dict:
    """Write metrics.csv, summary.csv, predictions.csv, heatmap_agreement.csv and baseline.csv into
    ``out_dir`` and the plots into ``figures_dir``; return the manifest the report reads."""
    import matplotlib

    matplotlib.use("Agg")
    out, figures = Path(out_dir), Path(figures_dir)
    figures.mkdir(parents=True, exist_ok=True)
    table = load_metrics(metrics_paths)
    summary = summarize(table)
    baseline = between_images_cosine(pooled, layers)
    predictions = prediction_table(table, transforms)
    heat = heatmap_by_flip(table)
    for frame, name in ((table, "metrics.csv"), (summary, "summary.csv"), (predictions, "predictions.csv"),
                        (heat, "heatmap_agreement.csv"), (baseline, "baseline.csv")):
        _write(frame, out / name)
    plot_by_layer(table, transforms, layers, baseline, figures / "by_layer.png")
    plot_predictions(predictions, figures / "predictions.png")
    plot_heat_table(table, transforms, layers, figures / "heat_table.png")
    curve_files = {}
    for curve, data in curves(table, transforms).items():
        name = "sweep_" + curve.replace(" ", "_") + ".png"
        plot_curve(curve, data, layers, figures / name)
        curve_files[curve] = name
    log.info("study: %d rows (%d images × %d transforms), %d sweeps", len(table), table["image"].nunique(),
             table["transform"].nunique(), len(curve_files))
    return {"rows": len(table), "images": int(table["image"].nunique()), "transforms": len(transforms),
            "layers": layers, "curves": curve_files, "plots": list(PLOTS),
            "predictions": _records(predictions), "heatmap_agreement": _records(heat),
            "findings": findings(table, transforms, layers, baseline, predictions, heat)}


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts for JSON, NaN as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _write(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".part")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)

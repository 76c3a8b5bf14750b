"""The study's plots (matplotlib): metrics by layer, sweep curves, predictions, the heat table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from convlens import transform_kinds
from convlens.transforms import Transform


# each kind's colour, from convlens/transform_kinds.py: a colour-map family, or a fixed colour and line style
FAMILY_CMAP = {name: kind.colour.cmap for name, kind in transform_kinds.REGISTRY.items()
               if isinstance(kind.colour, transform_kinds.Family)}


FLIP_STYLE = {name: (kind.colour.colour, kind.colour.style) for name, kind in transform_kinds.REGISTRY.items()
              if isinstance(kind.colour, transform_kinds.Line)}


def transform_colours(transforms: list[Transform]) -> dict[str, tuple]:
    """A colour per transform: a colour family per kind, darker for a larger magnitude."""
    import matplotlib

    colours = {}
    for kind, cmap_name in FAMILY_CMAP.items():
        members = [t for t in transforms if t.kind == kind]
        if not members:
            continue
        cmap = matplotlib.colormaps[cmap_name]
        size = [transform_kinds.REGISTRY[kind].size(t.axis[1]) if t.axis else 1.0 for t in members]
        top = max(size) or 1.0
        for t, s in zip(members, size):
            colours[t.name] = cmap(0.35 + 0.6 * s / top)
    return colours


def short(layer: str) -> str:
    return layer.rsplit("/", 1)[-1]


def plot_by_layer(table: pd.DataFrame, transforms: list[Transform], layers: list[str], baseline: pd.DataFrame,
                  path: Path) -> None:
    """Equivariance error and invariance cosine against layer depth, one line per transform."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colours = transform_colours(transforms)
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
        ax.set_xticks(x, [short(layer) for layer in layers], rotation=60, ha="right", fontsize=7)
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
    unit = transform_kinds.CURVES[curve].label
    for ax, (metric, title) in zip(axes, CURVE_PANELS):
        sub = data[data["metric"] == metric]
        if metric == "equivariance_error" and sub.empty:  # a photometric sweep: nothing moves
            ax.text(0.5, 0.5, "does not apply:\nphotometric transforms\nmove no pixel", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color="grey")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=9)
            continue
        if metric in ("equivariance_error", "invariance_cosine"):
            for i, layer in enumerate(layers):
                s = sub[sub["layer"] == layer]
                ax.plot(s["magnitude"], s["value"], color=cmap(i / max(1, len(layers) - 1)), lw=1.2, marker="o", ms=2,
                        label=short(layer))
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
        ax.set_yticks(range(len(layers)), [short(layer) for layer in layers], fontsize=7)
        ax.set_xticks(range(len(names)), names if ax is axes[1] else [""] * len(names), rotation=70, ha="right",
                      fontsize=6)
        if len(names) * len(layers) <= 400:
            for (i, j), v in np.ndenumerate(values):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=4.5,
                            color="white" if im.norm(v) > 0.55 else "black")
        if metric == "equivariance_error" and any(t.photometric for t in transforms):
            title += " (blank: photometric transforms, to which equivariance does not apply)"
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


PLOTS = ("by_layer.png", "predictions.png", "heat_table.png")

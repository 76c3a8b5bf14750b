"""The equivariance ladder and the relative Lie derivative against layer depth, with 95 % bootstrap
bands over images (the numbers: sensitivity.ladder_report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from convlens.plots import FIGURE_WIDTH_IN, depth_ticks, pyplot, save_figure
from convlens.sensitivity.ladder import RUNGS
from convlens.transform_kinds import REGISTRY

LADDER_METRICS = {
    "equivariance_error": ("same channels", "-"),
    RUNGS["perm"]: ("channel permutation × scale", "--"),
    RUNGS["linear"]: ("1×1 linear map + bias", ":"),
}
GENERATOR_COLOURS = {"shift_x": "tab:blue", "shift_y": "tab:cyan", "rotate": "tab:red", "scale": "tab:green"}


def _line(ax, x, frame: pd.DataFrame, layers: list[str], **style) -> None:
    """One mean line with its interval as a band, ``frame`` indexed by layer."""
    f = frame.reindex(layers)
    colour = style.pop("color", "black")
    ax.plot(x, f["mean"].to_numpy(float), color=colour, marker="o", ms=2.5, lw=1.1, **style)
    ax.fill_between(x, f["ci_low"].to_numpy(float), f["ci_high"].to_numpy(float), color=colour, alpha=0.15, lw=0)


def plot_ladder(rungs: pd.DataFrame, layers: list[str], path: Path, shown: list[str] | None = None) -> bool:
    """One panel per geometric kind: the three rungs' mean error against depth with 95 % bands
    (``rungs`` as ladder_report.rung_table); False (no figure) without rung rows."""
    if rungs.empty:
        return False
    kinds = [k for k in REGISTRY if k in set(rungs["kind"])]
    cols = min(len(kinds), 3)
    rows = -(-len(kinds) // cols)
    plt = pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(FIGURE_WIDTH_IN, 2.4 * rows + 0.4), squeeze=False, sharey=True)
    x = np.arange(len(layers))
    names = [layer.rsplit("/", 1)[-1] for layer in layers]
    for ax, kind in zip(axes.ravel(), kinds, strict=False):
        sub = rungs[rungs["kind"] == kind]
        for metric, (label, style) in LADDER_METRICS.items():
            part = sub[sub["metric"] == metric].set_index("layer")
            if len(part):
                _line(ax, x, part, layers, linestyle=style, label=label)
        n = int(sub["n"].max())
        ax.set_title(f"{kind} ({n} held-out images)", fontsize=7.5)
        depth_ticks(ax, x, names, {n.rsplit("/", 1)[-1] for n in (shown or layers)})
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(kinds) :]:
        ax.set_visible(False)
    top = float(np.nanmax(rungs[["mean", "ci_high"]].to_numpy(float)))
    axes[0, 0].set_ylim(0, 1.05 * top if np.isfinite(top) and top > 0 else 1)  # shared: set once, after all lines
    axes[0, 0].set_ylabel("equivariance error", fontsize=7)
    axes[0, 0].legend(fontsize=6.5)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def plot_lie(lie: pd.DataFrame, layers: list[str], path: Path, shown: list[str] | None = None) -> bool:
    """The relative Lie derivative against depth, one line per generator with its 95 % band (``lie`` as
    ladder_report.lie_table); a log axis when the generators' values span more than 20×. False (no
    figure) without layer rows."""
    inner = lie[lie["layer"] != "output"]
    if inner.empty:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 2.8))
    x = np.arange(len(layers))
    for generator in dict.fromkeys(inner["generator"]):
        part = inner[inner["generator"] == generator].set_index("layer")
        _line(ax, x, part, layers, color=GENERATOR_COLOURS.get(generator, "black"), label=generator)
    positive = inner["mean"][inner["mean"] > 0]
    if len(positive) and positive.max() > 20 * positive.min():
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    names = [layer.rsplit("/", 1)[-1] for layer in layers]
    depth_ticks(ax, x, names, {n.rsplit("/", 1)[-1] for n in (shown or layers)})
    ax.set_ylabel("relative Lie derivative (per unit t)", fontsize=7)
    ax.set_title("how fast each layer's map stops following the transform", fontsize=7.5)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5)
    fig.tight_layout()
    save_figure(fig, path)
    return True

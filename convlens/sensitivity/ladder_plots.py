"""The equivariance ladder against layer depth: the three rungs side by side (sensitivity.ladder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from convlens.plots import FIGURE_WIDTH_IN, depth_ticks, pyplot, save_figure
from convlens.sensitivity.ladder import RUNGS

LADDER_METRICS = {
    "equivariance_error": ("same channels", "-"),
    RUNGS["perm"]: ("channel permutation × scale", "--"),
    RUNGS["linear"]: ("1×1 linear map + bias", ":"),
}


def ladder_means(table: pd.DataFrame, layers: list[str]) -> pd.DataFrame:
    """Per layer (rows, in ``layers`` order) and rung (columns) the mean over held-out images and the
    geometric transforms other than the identity; the same-channel error on the same images only, so
    the rungs compare like with like. Empty when the table has no rung rows."""
    rungs = table[table["metric"].isin(LADDER_METRICS) & (table["transform"] != "identity")]
    scored = set(rungs.loc[rungs["metric"] != "equivariance_error", "image"])
    rungs = rungs[rungs["image"].isin(scored)]
    if rungs.empty:
        return pd.DataFrame()
    means = rungs.groupby(["layer", "metric"])["value"].mean().unstack("metric")
    return means.reindex(index=layers, columns=[m for m in LADDER_METRICS if m in means.columns])


def plot_ladder(table: pd.DataFrame, layers: list[str], path: Path, shown: list[str] | None = None) -> bool:
    """The rungs' mean error against depth, one line each; False (no figure) without rung rows."""
    means = ladder_means(table, layers)
    if means.empty:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN * 0.6, 3.0))
    x = np.arange(len(layers))
    for metric in means.columns:
        label, style = LADDER_METRICS[metric]
        ax.plot(x, means[metric].to_numpy(), style, color="black", marker="o", ms=2.5, lw=1.1, label=label)
    names = [layer.rsplit("/", 1)[-1] for layer in layers]
    depth_ticks(ax, x, names, {n.rsplit("/", 1)[-1] for n in (shown or layers)})
    ax.set_title("equivariance error up to a re-mapping of channels (held-out images)", fontsize=7.5)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5)
    fig.tight_layout()
    save_figure(fig, path)
    return True

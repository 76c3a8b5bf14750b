"""The verdict's key figure (matplotlib): a panel per measure, a row per transform group, each model's
mean as a dot with its interval as a bar, models in the report's order (the reference first)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from convlens.plots import FIGURE_WIDTH_IN, pyplot, save_figure
from convlens.sensitivity.comparison_plots import model_colours
from convlens.sensitivity.plots import short
from convlens.sensitivity.verdict import CKA, MEASURES


def plot_key(rows: pd.DataFrame, models: list[str], level: float, path: Path) -> bool:
    """The key figure of ``rows`` (verdict.key_rows and cka_rows: model, group, measure, label, layer,
    mean, ci_low, ci_high). Without rows: a figure that says so, and False."""
    measures = [m for m in (*MEASURES, CKA) if m.key in set(rows["measure"])]
    plt = pyplot()
    if not measures:
        fig = plt.figure(figsize=(7.2, 0.6))
        fig.text(0.5, 0.5, "no key measure in this run", ha="center", va="center", fontsize=8)
        save_figure(fig, path)
        return False
    colours = model_colours(models)
    # one row of panels on one shared list of groups (a row each), so a group reads across every measure
    groups = list(dict.fromkeys(rows["group"]))
    per_group = 0.1 + 0.055 * len(models)
    fig, axes = plt.subplots(
        1, len(measures), figsize=(FIGURE_WIDTH_IN, 1.0 + len(groups) * per_group), squeeze=False, sharey=True
    )
    offsets = (np.arange(len(models)) - (len(models) - 1) / 2) * min(0.25, 0.7 / len(models))
    for ax, m in zip(axes.ravel(), measures, strict=False):
        sub = rows[rows["measure"] == m.key]
        for i, model in enumerate(models):
            mine = sub[sub["model"] == model].set_index("group").reindex(groups)
            y = np.arange(len(groups)) + offsets[i]
            low = (mine["mean"] - mine["ci_low"]).to_numpy(float)
            high = (mine["ci_high"] - mine["mean"]).to_numpy(float)
            ax.errorbar(
                mine["mean"].to_numpy(float),
                y,
                xerr=[low, high],
                fmt="o",
                ms=2.5,
                lw=0.9,
                capsize=1.5,
                color=colours[model],
                label=model,
            )
        layers = sorted({str(la) for la in sub["layer"]} - {"output"})
        where = f"\nat {short(layers[0])}" if len(layers) == 1 else ""
        better = "higher" if m.higher_better else "lower"
        ax.set_title(f"{textwrap.fill(m.label, 15)}{where}\n({better}: robust)", fontsize=6, linespacing=1.1)
        ax.set_yticks(np.arange(len(groups)), groups, fontsize=6.5)
        ax.set_ylim(len(groups) - 0.5, -0.5)
        ax.tick_params(axis="x", labelsize=6, labelrotation=90)
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        ax.grid(axis="x", alpha=0.3)
        for k in range(1, len(groups), 2):  # bands across the panels: a group is read along its row
            ax.axhspan(k - 0.5, k + 0.5, color="0.95", zorder=0)
    for ax in axes.ravel()[len(measures) :]:
        ax.set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(models), 6), fontsize=7.5, frameon=False)
    fig.text(
        0.5, 0.005, f"dots: means over images; bars: {100 * level:g} % bootstrap intervals", ha="center", fontsize=7
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1 - 0.3 / fig.get_figheight()))
    save_figure(fig, path)
    return True

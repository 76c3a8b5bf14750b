"""The method check's plots (stage method_quality): Spearman to the original maps along the cascading
randomization, and the deletion and insertion curves beside a random order's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convlens.attribution.registry import display_name, method_colour
from convlens.plots import FIGURE_WIDTH_IN, depth_ticks, legend_beside, pick_layers, pyplot, save_figure
from convlens.sensitivity.method_findings import SPEARMAN_THRESHOLD


def plot_quality(sanity: dict, faithful: dict, methods: list[str], figures: Path) -> None:
    """randomization.png and deletion_insertion.png (and their SVGs): a line per method in its registry
    colour and display name (dashed and marked x at the flagged steps), the threshold, legends beside."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 3.2))
    steps = np.arange(len(sanity["layers"]) + 1)
    marker = 3 if len(steps) <= 20 else 0
    for m in methods:
        curve = np.r_[1.0, sanity["mean_spearman"][m]]
        ax.plot(
            steps,
            curve,
            marker="o",
            ms=marker,
            lw=1.2,
            color=method_colour(m),
            label=display_name(m) + (" (flagged)" if sanity["insensitive"][m] else ""),
            ls="--" if sanity["insensitive"][m] else "-",
        )
        flagged = np.r_[False, sanity["similar"][m]]
        ax.plot(steps[flagged], curve[flagged], "x", ms=6, color=method_colour(m))
    ax.axhline(sanity.get("threshold", SPEARMAN_THRESHOLD), color="grey", lw=0.8, ls=":")
    labels = ["original"] + [p.rsplit("/", 1)[-1] for p in sanity["layers"]]
    depth_ticks(ax, steps, labels, set(pick_layers(labels)))
    ax.set_ylabel("Spearman to the original map", fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("Cascading randomization of the weights, from the top (Adebayo et al. 2018)", fontsize=8)
    ax.grid(alpha=0.3)
    legend_beside(ax, fontsize=6.5)
    fig.tight_layout()
    save_figure(fig, figures / "randomization.png")

    fig, axes = plt.subplots(1, 2, figsize=(FIGURE_WIDTH_IN, 3.0))
    any_f = next(iter(faithful.values()))
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=False):
        for m in methods:
            ax.plot(
                any_f["fractions"],
                faithful[m][kind].mean(axis=0),
                color=method_colour(m),
                lw=1.2,
                label=display_name(m),
            )
        ax.plot(
            any_f["fractions"], any_f["random"][kind].mean(axis=0), color="grey", ls=":", lw=2, label="random order"
        )
        ax.set_title(
            f"{kind}: class probability as pixels are {'removed' if kind == 'deletion' else 'added'}", fontsize=7.5
        )
        ax.set_xlabel("fraction of pixels, in the order of the map", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    legend_beside(axes[1], fontsize=6.5)
    fig.tight_layout()
    save_figure(fig, figures / "deletion_insertion.png")

"""The comparison's plots (matplotlib): a line per model with its bootstrap interval as a band,
against the magnitude of each sweep and against layer depth for each transform group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from convlens import transform_kinds
from convlens.plots import FIGURE_WIDTH_IN, pyplot, save_figure
from convlens.sensitivity.plots import short
from convlens.transform_groups import CLEAN

SWEEP_PANELS = (
    ("equivariance_error", "equivariance error"),
    ("invariance_cosine", "pooled-feature cosine"),
    ("top1_change", "flip rate"),
    ("prob_change", "MAC (probability change)"),
)
ACCURACY = ("correct", "accuracy")  # drawn only where images have labels
LAYER_PANELS = (("equivariance_error", "equivariance error"), ("invariance_cosine", "pooled-feature cosine"))


def model_colours(models: list[str]) -> dict[str, tuple]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(models)}


def band(ax, x, rows: pd.DataFrame, colour, label: str) -> None:
    """The mean as a line with markers and the interval as a shaded band."""
    ax.plot(x, rows["mean"], color=colour, lw=1.4, marker="o", ms=2.5, label=label)
    ax.fill_between(x, rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float), color=colour, alpha=0.2, lw=0)


def plot_sweep(
    summary: pd.DataFrame,
    curve: str,
    members: dict[str, float],
    layer: str | None,
    models: list[str],
    level: float,
    path: Path,
) -> list[str]:
    """Every model's mean against the magnitude of one sweep with its interval: equivariance error
    and pooled-feature cosine at ``layer``, flip rate and MAC of the prediction, and accuracy where
    images have labels (its point at the neutral magnitude is clean accuracy). Returns the panels'
    metrics, in order."""
    plt = pyplot()

    colours = model_colours(models)
    sub = summary[summary["transform"].isin(members)].assign(magnitude=lambda f: f["transform"].map(members))

    def where(metric: str):
        return "output" if metric in ("top1_change", "prob_change", ACCURACY[0]) else layer

    # only the panels that apply: equivariance of a photometric sweep has only the identity's point;
    # accuracy only where images have labels
    panels = [
        (metric, title)
        for metric, title in (*SWEEP_PANELS, ACCURACY)
        if not sub[(sub["metric"] == metric) & (sub["layer"] == where(metric)) & (sub["transform"] != "identity")].empty
    ]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(FIGURE_WIDTH_IN, 2.5), squeeze=False)
    axes = axes[0]
    for ax, (metric, title) in zip(axes, panels, strict=False):
        for model in models:
            rows = sub[(sub["model"] == model) & (sub["metric"] == metric) & (sub["layer"] == where(metric))]
            rows = rows.sort_values("magnitude")
            if len(rows):
                band(ax, rows["magnitude"].to_numpy(float), rows, colours[model], model)
        at = "" if where(metric) == "output" else f" at {short(str(where(metric)))}"
        ax.set_title(title + at, fontsize=7)
        ax.set_xlabel(transform_kinds.CURVES[curve].label, fontsize=6.5)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=6.5)
    fig.suptitle(f"{curve}: means over images, bands {100 * level:g} % bootstrap intervals", fontsize=8, y=0.995)
    legend_above(fig, axes[-1], len(models), top=1 - 0.5 / fig.get_figheight())  # the prediction panels have data
    save_figure(fig, path)
    return [metric for metric, _ in panels]


def plot_accuracy(group_summary: pd.DataFrame, groups: list[str], models: list[str], level: float, path: Path) -> bool:
    """Accuracy per transform group, clean accuracy first (its value a dotted line per model, the scale
    the others are read against): each model's mean with its interval as an error bar. Nothing is drawn
    (False) when no image has a label."""
    rows = group_summary[(group_summary["metric"] == ACCURACY[0]) & (group_summary["layer"] == "output")]
    groups = [g for g in groups if g in set(rows["group"])]
    if not groups:
        return False
    plt = pyplot()

    colours = model_colours(models)
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 3.0))
    width = 0.8 / max(1, len(models))
    for k, model in enumerate(models):
        mine = rows[rows["model"] == model].set_index("group")
        shown = [g for g in groups if g in mine.index]
        x = np.array([groups.index(g) for g in shown]) - 0.4 + width * (k + 0.5)
        m = mine.loc[shown]
        err = np.vstack([m["mean"] - m["ci_low"], m["ci_high"] - m["mean"]]).astype(float)
        ax.errorbar(x, m["mean"].astype(float), yerr=err, fmt="o", ms=4, capsize=2, color=colours[model], label=model)
        if CLEAN in mine.index:
            ax.axhline(float(mine.loc[CLEAN, "mean"]), color=colours[model], lw=0.8, ls=":")
    ax.set_xticks(np.arange(len(groups)), groups, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("accuracy", fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3, axis="y")
    ax.tick_params(labelsize=7)
    fig.suptitle(
        f"Accuracy per transform group: means over images, bars {100 * level:g} % bootstrap intervals\n"
        f"dotted: each model's clean accuracy",
        fontsize=9,
        y=0.995,
    )
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.25, top=0.74)  # room for the group names below
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.76), ncol=len(models), fontsize=8, frameon=False
    )
    save_figure(fig, path)
    return True


def plot_by_layer(
    group_summary: pd.DataFrame, groups: list[str], layers: list[str], models: list[str], level: float, path: Path
) -> None:
    """Equivariance error and pooled-feature cosine against layer depth, a row per transform group,
    a line per model with its interval (each model at the positions of its own layers, its line
    broken where it has no layer)."""
    plt = pyplot()

    colours = model_colours(models)
    position = {layer: i for i, layer in enumerate(layers)}
    drawn = group_summary[group_summary["metric"].isin([m for m, _ in LAYER_PANELS])]
    groups = [g for g in groups if g in set(drawn["group"])] or groups  # not the Lie / consistency groups
    # the panels that apply, two to a row: no equivariance panel for a photometric group
    panels = [
        (group, metric, title)
        for group in groups
        for metric, title in LAYER_PANELS
        if not group_summary[(group_summary["group"] == group) & (group_summary["metric"] == metric)].empty
    ]
    frame = layer_frame_in(max((len(short(la)) for la in layers), default=0))
    n_cols, n_rows, row_in = layer_grid(len(panels), frame)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(FIGURE_WIDTH_IN, frame + row_in * n_rows), squeeze=False)
    flat = axes.ravel()
    for k, (ax, (group, metric, title)) in enumerate(zip(flat, panels, strict=False)):
        for model in models:
            rows = group_summary[
                (group_summary["model"] == model)
                & (group_summary["group"] == group)
                & (group_summary["metric"] == metric)
            ]
            rows = rows[rows["layer"].isin(position)].assign(x=lambda f: f["layer"].map(position))
            if len(rows):
                rows = with_gaps(rows)
                band(ax, rows["x"].to_numpy(float), rows, colours[model], model)
        ax.set_title(f"{group}: {title}", fontsize=7)
        last = k >= (n_rows - 1) * n_cols  # the bottom row carries the layer names (the same in every panel)
        ax.set_xticks(
            np.arange(len(layers)),
            [short(la) for la in layers] if last else [""] * len(layers),
            rotation=60,
            ha="right",
            fontsize=6.5,
        )
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=6.5)
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"Against layer depth: means over images and over each group's transforms, "
        f"bands {100 * level:g} % bootstrap intervals",
        fontsize=8,
        y=0.998,
    )
    legend_above(fig, flat[0], len(models), top=1 - 0.5 / fig.get_figheight())
    save_figure(fig, path)


FIGURE_MAX_IN = 228 / 25.4  # report.css: "figure img { max-height: 228mm }" (a taller figure is shrunk)
LAYER_FRAME_IN = 0.75  # the layer plot's title and legend above the panels, the x axis under the bottom ones
LAYER_ROW_IN = (1.3, 1.9)  # a row of panels: at least, at most


def layer_frame_in(label_chars: int, fontsize: float = 6.5) -> float:
    """The layer plot's height outside its rows: the title and legend, and the layer names under the
    bottom panels (``label_chars`` long at ``fontsize``, turned 60°)."""
    return LAYER_FRAME_IN + 0.55 * fontsize / 72 * label_chars * 0.87


def layer_grid(n_panels: int, frame: float = LAYER_FRAME_IN) -> tuple[int, int, float]:
    """(columns, rows, row height in inches) of the layer plot's panels: the fewest columns (2 to 4) whose
    rows fit the printed figure (``FIGURE_MAX_IN``) at their smallest height, so the figure prints at its
    own font sizes; the rows as tall as the page allows, up to their largest height (more than 4 × 5
    panels: lower rows, still on one page)."""
    for n_cols in (2, 3, 4):
        n_rows = max(1, -(-n_panels // n_cols))
        if frame + LAYER_ROW_IN[0] * n_rows <= FIGURE_MAX_IN or n_cols == 4:
            break
    return n_cols, n_rows, min(LAYER_ROW_IN[1], (FIGURE_MAX_IN - frame) / n_rows)


def with_gaps(rows: pd.DataFrame) -> pd.DataFrame:
    """A model's rows at every position from its first layer to its last, NaN where it has no layer
    (or no value): the line breaks there instead of running through a layer the model lacks."""
    rows = rows.groupby("x", as_index=False).first()
    full = pd.DataFrame({"x": np.arange(int(rows["x"].min()), int(rows["x"].max()) + 1)})
    return full.merge(rows, on="x", how="left")


def legend_above(fig, ax, n_models: int, top: float) -> None:
    """One legend of the models for the whole figure, between the title and the panels (never on
    the data); the panels laid out below ``top`` (a fraction of the figure's height)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.legend(
        handles, labels, loc="lower center", bbox_to_anchor=(0.5, top), ncol=max(1, n_models), fontsize=7, frameon=False
    )

"""The comparison's plots (matplotlib): a line per model with its bootstrap interval as a band,
against the magnitude of each sweep and against layer depth for each transform group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from convlens import transform_kinds
from convlens.plots import pyplot, save_figure
from convlens.sensitivity.plots import not_applicable, short
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
) -> None:
    """Every model's mean against the magnitude of one sweep with its interval: equivariance error
    and pooled-feature cosine at ``layer``, flip rate and MAC of the prediction, and accuracy where
    images have labels (its point at the neutral magnitude is clean accuracy)."""
    plt = pyplot()

    colours = model_colours(models)
    sub = summary[summary["transform"].isin(members)].assign(magnitude=lambda f: f["transform"].map(members))
    panels = SWEEP_PANELS + ((ACCURACY,) if (sub["metric"] == ACCURACY[0]).any() else ())
    fig, axes = plt.subplots(1, len(panels), figsize=(13 * len(panels) / len(SWEEP_PANELS), 3.4))
    for ax, (metric, title) in zip(axes, panels, strict=False):
        where = "output" if metric in ("top1_change", "prob_change", ACCURACY[0]) else layer
        measured = sub[(sub["metric"] == metric) & (sub["layer"] == where) & (sub["transform"] != "identity")]
        if measured.empty:  # equivariance of a photometric sweep: only the identity's point
            not_applicable(ax, title)
            continue
        for model in models:
            rows = sub[(sub["model"] == model) & (sub["metric"] == metric) & (sub["layer"] == where)]
            rows = rows.sort_values("magnitude")
            if len(rows):
                band(ax, rows["magnitude"].to_numpy(float), rows, colours[model], model)
        ax.set_title(title + ("" if where == "output" else f" at {short(str(where))}"), fontsize=9)
        ax.set_xlabel(transform_kinds.CURVES[curve].label, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{curve}: means over images, bands {100 * level:g} % bootstrap intervals", fontsize=10, y=0.995)
    legend_above(fig, axes[3], len(models), top=0.8)  # the prediction panels always have data
    save_figure(fig, path)


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
    fig, ax = plt.subplots(figsize=(min(13.0, max(6.5, 1.5 + 0.5 * len(groups) * (1 + len(models)))), 3.4))
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
    fig, axes = plt.subplots(len(groups), len(LAYER_PANELS), figsize=(10, 0.6 + 2.4 * len(groups)), squeeze=False)
    for r, group in enumerate(groups):
        for ax, (metric, title) in zip(axes[r], LAYER_PANELS, strict=False):
            if group_summary[(group_summary["group"] == group) & (group_summary["metric"] == metric)].empty:
                not_applicable(ax, f"{group}: {title}")
                continue
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
            ax.set_title(f"{group}: {title}", fontsize=9)
            ax.set_xticks(
                np.arange(len(layers)),
                [short(la) for la in layers] if r == len(groups) - 1 else [""] * len(layers),
                rotation=60,
                ha="right",
                fontsize=7,
            )
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    fig.suptitle(
        f"Against layer depth: means over images and over each group's transforms, "
        f"bands {100 * level:g} % bootstrap intervals",
        fontsize=10,
        y=0.998,
    )
    legend_above(fig, axes[0][-1], len(models), top=1 - 0.7 / fig.get_figheight())
    save_figure(fig, path)


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
        handles, labels, loc="lower center", bbox_to_anchor=(0.5, top), ncol=max(1, n_models), fontsize=8, frameon=False
    )

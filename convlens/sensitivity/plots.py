"""The study's plots (matplotlib): metrics by layer, sweep curves, predictions, the heat table.

Every figure is made at the report's printed width (``convlens.plots.FIGURE_WIDTH_IN``), so its font
sizes are the printed ones, and saved as PNG and SVG (``convlens.plots.save_figure``). For a deep model
the plots name a readable set of layers (``convlens.plots.pick_layers``: report.plot_layers); legends
sit beside or below the data; heatmap methods keep their registry colour and display name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from convlens import transform_kinds
from convlens.attribution.registry import METHODS, display_name, method_colour
from convlens.plots import (
    FIGURE_WIDTH_IN,
    MAX_HEIGHT_IN,
    MIN_FONT_PT,
    depth_ticks,
    legend_beside,
    pick_layers,
    pyplot,
    save_figure,
    text_colour,
)
from convlens.transform_labels import label_of
from convlens.transforms import Transform

# each kind's colour, from convlens/transform_kinds.py: a colour-map family, or a fixed colour and line style
FAMILY_CMAP = {
    name: kind.colour.cmap
    for name, kind in transform_kinds.REGISTRY.items()
    if isinstance(kind.colour, transform_kinds.Family)
}


FLIP_STYLE = {
    name: (kind.colour.colour, kind.colour.style)
    for name, kind in transform_kinds.REGISTRY.items()
    if isinstance(kind.colour, transform_kinds.Line)
}


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
        for t, s in zip(members, size, strict=False):
            colours[t.name] = cmap(0.35 + 0.6 * s / top)
    return colours


def short(layer: str) -> str:
    return layer.rsplit("/", 1)[-1]


def plot_by_layer(
    table: pd.DataFrame,
    transforms: list[Transform],
    layers: list[str],
    baseline: pd.DataFrame,
    path: Path,
    shown: list[str] | None = None,
) -> None:
    """Equivariance error and invariance cosine against layer depth, one line per transform. Every
    layer is a point; only the ``shown`` layers (default: pick_layers) carry a tick label."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    shown = set(shown if shown is not None else pick_layers(layers))
    colours = transform_colours(transforms)
    measured = set(table.loc[table["transform"] != "identity", "metric"].unique())
    panels = [  # equivariance only where some transform moves pixels (not a study of pixel changes alone)
        (metric, title)
        for metric, title in (
            ("equivariance_error", "equivariance error (lower: more equivariant)"),
            ("invariance_cosine", "cosine of pooled features (higher: more invariant)"),
        )
        if metric in measured or metric == "invariance_cosine"
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(FIGURE_WIDTH_IN, 3.6), squeeze=False)
    axes = axes[0]
    x = np.arange(len(layers))
    marker = 2.5 if len(layers) <= 20 else 0
    for ax, (metric, title) in zip(axes, panels, strict=True):
        means = table[table["metric"] == metric].groupby(["transform", "layer"])["value"].mean()
        for t in transforms[1:]:
            if t.name not in means.index.get_level_values(0):
                continue
            y = means.loc[t.name].reindex(layers).to_numpy()
            colour, style = FLIP_STYLE.get(t.kind, (colours.get(t.name, "grey"), "-"))
            ax.plot(x, y, style, color=colour, lw=1.1, marker="o", ms=marker)
        if metric == "invariance_cosine" and len(baseline):
            ax.plot(x, baseline.set_index("layer")["mean"].reindex(layers).to_numpy(), color="orange", lw=2, ls="-.")
        depth_ticks(ax, x, [short(layer) for layer in layers], {short(layer) for layer in shown})
        ax.set_title(title, fontsize=7.5)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3)
    if len(layers) > len(shown):
        for ax in axes:
            ax.set_xlabel(f"layer ({len(shown)} of {len(layers)} named)", fontsize=7)
    handles = [
        Line2D([], [], color=plt.get_cmap(c)(0.8), label=k)
        for k, c in FAMILY_CMAP.items()
        if any(t.kind == k for t in transforms)
    ]
    handles += [
        Line2D([], [], color=c, ls=s, label=k)
        for k, (c, s) in FLIP_STYLE.items()
        if any(t.kind == k for t in transforms)
    ]
    handles.append(Line2D([], [], color="orange", ls="-.", lw=2, label="different images"))
    rows = -(-len(handles) // 5)
    legend_beside(fig, handles, title="darker = larger magnitude", ncol=min(5, len(handles)))
    fig.tight_layout(rect=(0, 0.04 + 0.05 * rows, 1, 1))
    save_figure(fig, path)


CURVE_PANELS = (
    ("equivariance_error", "equivariance error"),
    ("invariance_cosine", "cosine of pooled features"),
    ("top1_change", "flip rate / MAC"),
    ("heatmap_pearson", "heatmaps (Pearson)"),
)


def depth_colour(layers: list[str]):
    """A layer's colour by its depth among ``layers`` (viridis: dark early, yellow deep)."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return lambda layer: cmap(layers.index(layer) / max(1, len(layers) - 1) * 0.92)


def applies(rows: pd.DataFrame) -> bool:
    """A panel is drawn when its metric has a value at two or more magnitudes: equivariance under a
    photometric sweep (only the identity's 0 at the neutral point) is not a panel, nor a lone dot."""
    return rows.dropna(subset=["value"])["magnitude"].nunique() >= 2


CURVE_PANEL_IN = 1.8  # the height of a sweep figure's panels: three sweep figures fit on a page
LEGEND_ROW_IN = 0.125  # a legend row at 6.5 pt (labelspacing 0.3)


def plot_curve(curve: str, data: pd.DataFrame, layers: list[str], path: Path, shown: list[str] | None = None) -> None:
    """Every metric against the magnitude of one sweep (after Zeiler & Fergus 2014, Fig. 5), the panels
    that apply in one row: a line per ``shown`` layer (default: pick_layers), coloured by depth, a line
    per heatmap method in its colour; the legends under the panels (layers, prediction, methods)."""
    plt = pyplot()
    shown = list(shown if shown is not None else pick_layers(layers))
    colour = depth_colour(layers)
    panels = [(m, t) for m, t in CURVE_PANELS if applies(data[data["metric"] == m])]
    drawn = {m for m, _ in panels}
    # the legends under the panels: the layers at the left, the methods and under them the prediction's
    # two lines at the right, two columns each, a title row each
    left = -(-(len(shown) + ("equivariance_error" in drawn)) // 2) + 1
    n_methods = data[data["metric"] == "heatmap_pearson"]["layer"].nunique() if "heatmap_pearson" in drawn else 0
    methods_rows = -(-n_methods // 2) + 1 if n_methods else 0
    legend_rows = max(left, methods_rows + ("top1_change" in drawn))
    height = CURVE_PANEL_IN + LEGEND_ROW_IN * legend_rows + 0.35
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(FIGURE_WIDTH_IN, height), squeeze=False)
    unit = transform_kinds.CURVES[curve].label
    legends = {}
    for ax, (metric, title) in zip(axes[0], panels, strict=False):
        sub = data[data["metric"] == metric]
        if metric in ("equivariance_error", "invariance_cosine"):
            for layer in shown:
                s = sub[sub["layer"] == layer]
                ax.plot(s["magnitude"], s["value"], color=colour(layer), lw=1.1, marker="o", ms=2, label=short(layer))
            if metric == "equivariance_error":
                floor = data[data["metric"] == "equivariance_floor"]
                ax.plot(floor["magnitude"], floor["value"], color="grey", ls=":", label="floor (input)")
            if "layer" not in legends or metric == "equivariance_error":
                legends["layer"] = ax.get_legend_handles_labels()
        elif metric == "top1_change":
            ax.plot(sub["magnitude"], sub["value"], color="crimson", marker="o", ms=3, label="flip rate")
            mac = data[data["metric"] == "prob_change"]
            ax.plot(mac["magnitude"], mac["value"], color="navy", marker="s", ms=3, label="MAC")
            ax.set_ylim(-0.03, 1.03)
            legends["prediction"] = ax.get_legend_handles_labels()
        else:
            for method, s in sorted(sub.groupby("layer"), key=lambda item: registry_order(item[0])):
                ax.plot(
                    s["magnitude"],
                    s["value"],
                    marker="o",
                    ms=2.5,
                    lw=1.1,
                    color=method_colour(method),
                    label=display_name(method),
                )
            legends["heatmap method"] = ax.get_legend_handles_labels()
        ax.set_title(title, fontsize=7)
        ax.set_xlabel(unit, fontsize=6.5)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=6.5)
    bottom = (LEGEND_ROW_IN * legend_rows + 0.1) / height
    fig.suptitle(f"{curve}: metrics against the magnitude (means over images)", fontsize=8)
    fig.tight_layout(rect=(0, bottom, 1, 1), w_pad=0.6)
    under_methods = bottom - LEGEND_ROW_IN * methods_rows / height
    places = {"layer": (0.0, bottom, "upper left"), "heatmap method": (1.0, bottom, "upper right")}
    places["prediction"] = (1.0, under_methods, "upper right")
    for title, (handles, labels) in legends.items():
        x, y, loc = places[title]
        fig.legend(
            handles,
            labels,
            loc=loc,
            bbox_to_anchor=(x, y),
            ncol=2,
            fontsize=6.5,
            frameon=False,
            labelspacing=0.3,
            borderaxespad=0.1,
            title=None if title == "prediction" else title,
            title_fontsize=6.5,
        )
    save_figure(fig, path)


def registry_order(method: str) -> tuple[int, str]:
    """Methods in the registry's order (gradient family, then CAMs); others after, by name."""
    order = list(METHODS)
    return (order.index(method), "") if method in order else (len(order), method)


def plot_predictions(predictions: pd.DataFrame, path: Path) -> None:
    """Flip rate per transform, with accuracy under it beside the clean accuracy."""
    plt = pyplot()
    p = predictions[predictions["transform"] != "identity"]
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 3.2))
    x = np.arange(len(p))
    ax.bar(x - 0.2, p["flip_rate"], 0.4, color="crimson", label="flip rate (top-1 change)")
    if p["accuracy"].notna().any():
        ax.bar(x + 0.2, p["accuracy"], 0.4, color="seagreen", label="accuracy under the transform")
        ax.axhline(p["clean_accuracy"].iloc[0], color="black", ls="--", lw=1, label="clean accuracy")
    ax.set_xticks(
        x,
        [label_of(t) for t in p["transform"]],
        rotation=70,
        ha="right",
        fontsize=max(MIN_FONT_PT, min(7.0, 260 / max(1, len(p)))),
    )
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylim(-0.03, 1.05)  # a zero rate or accuracy still shows as a line above the axis
    ax.legend(fontsize=7, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


HEAT_METRICS = (
    ("equivariance_error", "magma_r", "mean equivariance error"),
    ("invariance_cosine", "viridis", "mean cosine of pooled features"),
)
HEAT_FONT_PT = 6.5  # cell numbers and labels, at print size (the figure is as wide as the printed figure)
HEAT_ROW_IN = 0.17  # a row of the table: the number's height and some air
DIGIT_EM, POINT_EM = 0.64, 0.32  # DejaVu Sans digit and point widths (a minus sign is about a digit)
HEAT_BAR_IN = 0.6  # the colour bar and its labels at the right
HEAT_COLUMN_LABELS_IN = 1.0  # the rotated transform names under a panel, and its title
CHAR_IN = 0.62 * HEAT_FONT_PT / 72  # a character of a layer or transform name, on average at most


def cell_width_in(digits: int) -> float:
    """A cell wide enough for a number of ``digits`` digits and a point at HEAT_FONT_PT, with air."""
    return (digits * DIGIT_EM + POINT_EM + 0.5) * HEAT_FONT_PT / 72


def heat_pages(
    n_layers: int, n_transforms: int | tuple[int, ...], label_chars: int = 20, digits: int = 3
) -> tuple[list[slice], list[list[slice]], list[list[tuple[int, int, int]]]]:
    """How the layer × transform tables split so every cell holds its number (``digits`` digits and a
    point) at HEAT_FONT_PT and every page fits the printable page: (row chunks, column chunks per metric,
    pages of (metric, row chunk, column chunk)). ``n_transforms``: the columns of each metric's table
    (one number: the same for every metric of HEAT_METRICS); a metric without columns has no panel.
    ``label_chars``: the longest layer name. Of the row splits that fit, the one with the fewest pages."""
    counts = (n_transforms,) * len(HEAT_METRICS) if isinstance(n_transforms, int) else tuple(n_transforms)
    width = FIGURE_WIDTH_IN - label_chars * CHAR_IN - HEAT_BAR_IN - 0.1
    per_row = max(1, int(width / cell_width_in(digits)))
    cols = []
    for count in counts:
        n_col = -(-count // per_row)
        size = -(-count // n_col) if n_col else 0
        cols.append([slice(k * size, min(count, (k + 1) * size)) for k in range(n_col)])
    room = MAX_HEIGHT_IN - 0.2
    per_page = max(1, int((room - HEAT_COLUMN_LABELS_IN) / HEAT_ROW_IN))
    best = None
    for n_rows in range(-(-n_layers // per_page), -(-n_layers // per_page) + 4):
        size = -(-n_layers // n_rows)
        rows = [slice(k * size, min(n_layers, (k + 1) * size)) for k in range(-(-n_layers // size))]
        panels = [(m, r, c) for m in range(len(counts)) for c in range(len(cols[m])) for r in range(len(rows))]
        pages, height = [[]], 0.0
        for panel in panels:
            h = HEAT_COLUMN_LABELS_IN + HEAT_ROW_IN * (rows[panel[1]].stop - rows[panel[1]].start)
            if pages[-1] and height + h > room:
                pages.append([])
                height = 0.0
            pages[-1].append(panel)
            height += h
        if best is None or len(pages) < len(best[2]):
            best = (rows, cols, pages)
    return best


def measured_columns(grid: np.ndarray) -> np.ndarray:
    """The columns of a layer × transform table that hold a number: a column without any (equivariance
    under a photometric transform, which moves no pixel) is not drawn."""
    return np.flatnonzero(np.isfinite(grid).any(axis=0))


def decimals_for(values: np.ndarray) -> int:
    """Two decimals, three when the table's values span less than 0.1 (cosines near 1, say), so that
    the numbers differ where the colours do."""
    finite = values[np.isfinite(values)]
    spread = float(finite.max() - finite.min()) if finite.size else 1.0
    return 2 if spread >= 0.1 else 3


def cell_text(value: float, decimals: int = 2) -> str:
    return f"{value:.{decimals}f}"


def plot_heat_table(table: pd.DataFrame, transforms: list[Transform], layers: list[str], path: Path) -> list[str]:
    """Layer × transform tables of the mean equivariance error and the mean invariance cosine, split
    into pages that fit the printed page (``heat_pages``): ``path`` with _1, _2, ... before the
    suffix. A transform column without any number (equivariance under a photometric transform) is left
    out of that metric's table. Each metric keeps one colour scale over all its pages; every number is
    printed at HEAT_FONT_PT, rounded to two decimals (three when a metric's values span less than 0.1),
    black or white by the cell's luminance; columns read as transform labels (``Kind.label``). Returns
    the file names."""
    plt = pyplot()
    import matplotlib

    path = Path(path)
    names = [t.name for t in transforms[1:]]
    grids = []
    for metric, cmap, title in HEAT_METRICS:
        grid = (
            table[table["metric"] == metric]
            .groupby(["layer", "transform"], observed=True)["value"]
            .mean()
            .unstack()
            .reindex(index=layers, columns=names)
        ).to_numpy(dtype=float)
        keep = measured_columns(grid)
        grid = grid[:, keep]
        labels = [label_of(names[k]) for k in keep]
        finite = grid[np.isfinite(grid)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        norm = matplotlib.colors.Normalize(lo, hi if hi > lo else lo + 1e-9)
        grids.append((grid, norm, cmap, title, decimals_for(grid), labels))
    digits = max(1 + g[4] + int(bool((g[0] < 0).any())) for g in grids)  # "0.96", "0.996", "-0.12"
    rows, cols, pages = heat_pages(
        len(layers), tuple(len(g[5]) for g in grids), max(len(short(layer)) for layer in layers), digits
    )
    for stale in path.parent.glob(f"{path.stem}_*"):  # the pages of an earlier, longer table
        stale.unlink()
    files = []
    for number, page in enumerate(pages, start=1):
        heights = [HEAT_COLUMN_LABELS_IN + HEAT_ROW_IN * (rows[r].stop - rows[r].start) for _, r, _ in page]
        fig, axes = plt.subplots(
            len(page),
            1,
            figsize=(FIGURE_WIDTH_IN, sum(heights) + 0.2),
            squeeze=False,
            gridspec_kw={"height_ratios": [h - HEAT_COLUMN_LABELS_IN + 0.3 for h in heights]},
        )
        for ax, (m, r, c) in zip(axes[:, 0], page, strict=False):
            heat_panel(fig, ax, grids[m], layers, rows, r, cols[m], c)
        fig.tight_layout()
        name = f"{path.stem}_{number}{path.suffix}"
        save_figure(fig, path.with_name(name))
        files.append(name)
    return files


def heat_panel(fig, ax, metric_grid: tuple, layers: list[str], rows: list[slice], r: int, cols: list[slice], c: int):
    """One panel of the heat table: a row chunk × column chunk of one metric, numbers in the cells."""
    grid, norm, cmap, title, decimals, labels = metric_grid
    values = grid[rows[r], cols[c]]
    im = ax.imshow(values, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_yticks(range(values.shape[0]), [short(layer) for layer in layers[rows[r]]], fontsize=HEAT_FONT_PT)
    ax.set_xticks(range(values.shape[1]), labels[cols[c]], rotation=60, ha="right", fontsize=HEAT_FONT_PT)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            colour = text_colour(im.cmap(norm(v)))
            ax.text(j, i, cell_text(v, decimals), ha="center", va="center", fontsize=HEAT_FONT_PT, color=colour)
    part = []
    if len(rows) > 1:
        part.append(f"layers {rows[r].start + 1}–{rows[r].stop} of {len(layers)}")
    if len(cols) > 1:
        part.append(f"transforms {cols[c].start + 1}–{cols[c].stop} of {len(labels)}")
    ax.set_title(title + (f" ({', '.join(part)})" if part else ""), fontsize=7.5)
    bar = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    bar.ax.tick_params(labelsize=HEAT_FONT_PT)


PLOTS = ("by_layer.png", "predictions.png")  # plus the heat table's pages and a sweep per curve (study.json)

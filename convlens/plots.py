"""Matplotlib charts (training curves, confusion matrix) and what every matplotlib figure of the report
shares: the size of a page, the saved pair of files (PNG for the report, SVG for papers), the layers a
plot of a deep model names, legends beside the data, readable cell text. Only the Agg backend."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from convlens.replacing import replacing

# The report's page (reports/templates/report.css): A4 with 14 mm side and 16/18 mm top/bottom margins,
# figures ("figure.wide") drawn 170 mm wide. A figure made FIGURE_WIDTH_IN wide prints at its own
# font sizes; its height must stay under MAX_HEIGHT_IN (the printable height less a caption).
PRINTABLE_MM = (210 - 2 * 14, 297 - 16 - 18)
FIGURE_WIDTH_MM = 170
FIGURE_WIDTH_IN = FIGURE_WIDTH_MM / 25.4
NARROW_MM = 70  # "figure.narrow" (the confusion matrix) prints this wide
MAX_ASPECT = (PRINTABLE_MM[1] - 25) / FIGURE_WIDTH_MM  # height / width of a figure with room for its caption
MAX_HEIGHT_IN = FIGURE_WIDTH_IN * MAX_ASPECT
MIN_FONT_PT = 6.0  # the smallest text on the printed page
FIGURE_DPI = 200
VECTOR_FORMAT = "svg"
DEFAULT_PLOT_LAYERS = 8  # report.plot_max_layers


# the project's matplotlib style, set wherever a figure is made (``pyplot``): no offset notation on an
# axis (a "+1" above the ticks reads as a value), so every tick shows its own value
STYLE = {"axes.formatter.useoffset": False}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update(STYLE)
    import matplotlib.pyplot as plt

    return plt


def vector_path(png_path) -> Path:
    """The vector copy beside a figure's PNG (``x.png`` -> ``x.svg``)."""
    return Path(png_path).with_suffix("." + VECTOR_FORMAT)


def save_figure(fig, png_path, dpi: int = FIGURE_DPI) -> list[Path]:
    """Write ``fig`` as its PNG and, beside it, the same figure as SVG (for papers), each under a
    temporary name first; close the figure. The SVG is reproducible (no date, fixed ids) and keeps
    text as text. Returns both paths."""
    import matplotlib

    png = Path(png_path)
    png.parent.mkdir(parents=True, exist_ok=True)
    svg = vector_path(png)
    with replacing(png, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    with (
        matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "convlens"}),
        replacing(svg, "." + VECTOR_FORMAT) as tmp,
    ):
        fig.savefig(tmp, format=VECTOR_FORMAT, metadata={"Date": None})
    pyplot().close(fig)  # a Figure made without pyplot (embedding) is simply not registered there
    return [png, svg]


def pick_layers(layers: list[str], named=(), most: int = DEFAULT_PLOT_LAYERS) -> list[str]:
    """The layers a plot names for a deep model, in depth order: every layer when there are at most
    ``most``; otherwise the ``named`` ones plus layers evenly spread over the depth, ``most`` in all
    at most, the first and the last first among them. An even position that a named layer sits close to
    (within half the spacing) is left to it, so no two names crowd one spot. Named layers are always
    kept, even past ``most``."""
    named_set = set(named)
    if len(layers) <= most:
        return list(layers)
    chosen = {i for i, layer in enumerate(layers) if layer in named_set}
    fixed = sorted(chosen)
    targets = np.linspace(0, len(layers) - 1, most)
    half = (len(layers) - 1) / max(1, most - 1) / 2
    free = [i for i in range(len(layers)) if i not in chosen]
    order = [0, most - 1] + list(range(1, most - 1))  # the ends first
    for k in order:
        if len(chosen) >= most or not free:
            break
        end = {0: 0, most - 1: len(layers) - 1}.get(k)
        if end in chosen or (end is None and any(abs(i - targets[k]) <= half for i in fixed)):
            continue
        pick = min(free, key=lambda i: abs(i - targets[k]))
        chosen.add(pick)
        free.remove(pick)
    return [layers[i] for i in sorted(chosen)]


def luminance(rgb) -> float:
    """Relative luminance (WCAG) of an sRGB colour given as floats in [0, 1]."""
    channels = np.asarray(rgb, dtype=float)[:3]
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def text_colour(rgb) -> str:
    """Black or white text on a cell of colour ``rgb``: whichever contrasts more (WCAG ratio)."""
    lum = luminance(rgb)
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"


def legend_beside(ax_or_fig, handles=None, title: str | None = None, **kwargs):
    """A legend to the right of the axes (or below a figure's axes), never on the data."""
    from matplotlib.figure import Figure

    options = {"fontsize": 7, "frameon": False, "title": title, "title_fontsize": 7}
    options.update(kwargs)
    if handles is not None:
        options["handles"] = handles
    if isinstance(ax_or_fig, Figure):
        return ax_or_fig.legend(loc="lower center", bbox_to_anchor=(0.5, 0.0), **options)
    return ax_or_fig.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **options)


def depth_ticks(ax, positions, labels, chosen: set | None = None, axis: str = "x", fontsize: float = 6.5) -> None:
    """Tick labels for the layers in ``chosen`` only (all when None); the other positions keep an
    unlabelled minor tick, so depth still reads."""
    positions, labels = list(positions), list(labels)
    keep = [i for i, label in enumerate(labels) if chosen is None or label in chosen]
    set_ticks = ax.set_xticks if axis == "x" else ax.set_yticks
    set_ticks(
        [positions[i] for i in keep],
        [labels[i] for i in keep],
        fontsize=fontsize,
        **({"rotation": 45, "ha": "right"} if axis == "x" else {}),
    )
    set_ticks(positions, minor=True)


def training_curves_figure(history_csv: str, metrics_json: str, out_png: str) -> None:
    """Loss and accuracy per epoch, train and validation, with the kept (best) epoch marked."""
    plt = pyplot()
    with open(history_csv) as fh:
        rows = list(csv.DictReader(fh))
    metrics = json.loads(Path(metrics_json).read_text())
    epochs = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(FIGURE_WIDTH_IN, 2.6))
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, [float(r[key]) for r in rows], label="train")
        ax.plot(epochs, [float(r["val_" + key]) for r in rows], label="validation")
        ax.axvline(metrics["best_epoch"], color="grey", linestyle=":", label="kept epoch")
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    legend_beside(axes[1])
    fig.tight_layout()
    save_figure(fig, out_png)


def confusion_matrix_figure(metrics_json: str, out_png: str) -> None:
    """The test-set confusion matrix as a heat table with counts."""
    plt = pyplot()
    metrics = json.loads(Path(metrics_json).read_text())
    cm = np.array(metrics["confusion_matrix"])
    names = metrics["class_names"]
    n = len(names)
    size = min(FIGURE_WIDTH_IN, max(3.0, 0.3 * n + 1.5))  # never wider than the page
    grow = size / (NARROW_MM / 25.4)  # the report prints it NARROW_MM wide: fonts grow by this to print as given
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(cm, cmap="Blues")
    label_font = grow * max(MIN_FONT_PT + 0.5, min(8.0, 200.0 / max(1, n)))
    cell_pt = (size - 1.5) * 72 / max(1, n)  # a row of the matrix, in the figure's points
    if n <= 40 and cell_pt >= 1.2 * label_font:  # class names where they fit at their printed size
        ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=label_font)
        ax.set_yticks(range(n), names, fontsize=label_font)
    ax.set_xlabel("predicted", fontsize=grow * 7)
    ax.set_ylabel("true", fontsize=grow * 7)
    number_font = grow * max(MIN_FONT_PT + 0.5, 8 - 0.1 * n)
    if n <= 20 and cell_pt >= 0.65 * number_font * len(str(cm.max())):  # numbers only where they fit
        for (i, j), value in np.ndenumerate(cm):
            ax.text(
                j,
                i,
                str(value),
                ha="center",
                va="center",
                fontsize=number_font,
                color=text_colour(im.cmap(im.norm(value))),
            )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=grow * (MIN_FONT_PT + 0.5))
    ax.set_title(f"test accuracy {metrics['test_accuracy']:.1%}", fontsize=grow * 8)
    fig.tight_layout()
    save_figure(fig, out_png)

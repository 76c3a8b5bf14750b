"""The study's figures for a deep model (keras.applications.MobileNetV2, 52 conv layers, 1000 classes)
driven with a synthetic metrics table: a readable set of layers, pages that fit the printed page,
legends beside the data, readable numbers, every figure also as SVG."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from convlens import plots
from convlens.attribution.registry import METHODS, display_name
from convlens.sensitivity import plots as study_plots
from convlens.stages.sensitivity import run_study
from tests.sensitivity.deep_table import deep_layers, deep_table

ROOT = Path(__file__).resolve().parents[2]
NAMED = "block_5_depthwise"
MAX_LAYERS = 8


@pytest.fixture(scope="module")
def deep_study(tmp_path_factory):
    """run_study over MobileNetV2's layers; every figure's layout recorded just before it is saved."""
    layers = deep_layers()
    table, transforms = deep_table(layers)
    tmp = tmp_path_factory.mktemp("deep")
    paths = []
    for image, frame in table.groupby("image"):
        paths.append(tmp / f"{image}.csv")
        frame.to_csv(paths[-1], index=False)
    pooled = {i: {layer: np.random.default_rng(k).random(4) for layer in layers} for k, i in enumerate("ab")}
    seen = {}
    original = study_plots.save_figure

    def recording(fig, path, *args, **kwargs):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        data_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        legends = [lg for ax in fig.axes for lg in ([ax.get_legend()] if ax.get_legend() else [])] + fig.legends
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
        seen[path.name] = {
            "width_in": fig.get_figwidth(),
            "axes": [ax.get_window_extent(renderer) for ax in data_axes],
            "legends": [(lg.get_window_extent(renderer), [t.get_text() for t in lg.get_texts()]) for lg in legends],
            "font_sizes": [t.get_fontsize() for t in texts],
            "cells": [
                (t.get_text(), matplotlib.colors.to_rgb(t.get_color()), ax.images[0])
                for ax in data_axes
                for t in ax.texts
                if ax.images
            ],
            "xticks": [[t.get_text() for t in ax.get_xticklabels()] for ax in data_axes],
        }
        return original(fig, path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study_plots, "save_figure", recording)
        manifest = run_study(
            [str(p) for p in paths],
            pooled,
            transforms,
            layers,
            tmp / "out",
            tmp / "out" / "figures",
            0,
            [NAMED],
            MAX_LAYERS,
        )
    return {"layers": layers, "manifest": manifest, "figures": tmp / "out" / "figures", "seen": seen}


@pytest.mark.slow  # the study over MobileNetV2's 52 conv layers
def test_the_deep_model_has_52_conv_layers(deep_study):
    assert len(deep_study["layers"]) == 52


@pytest.mark.slow  # the study over MobileNetV2's 52 conv layers
def test_plots_name_at_most_the_maximum_spread_over_the_depth_with_the_named_one(deep_study):
    layers, shown = deep_study["layers"], deep_study["manifest"]["plot_layers"]
    assert len(shown) <= MAX_LAYERS and NAMED in shown
    assert shown[0] == layers[0] and shown[-1] == layers[-1]
    assert shown == [layer for layer in layers if layer in shown]  # depth order
    gaps = np.diff([layers.index(layer) for layer in shown])
    assert gaps.min() >= 3  # no two names crowd one spot
    labelled = set(deep_study["seen"]["by_layer.png"]["xticks"][0]) - {""}
    assert labelled == set(shown)
    sweep = deep_study["seen"]["sweep_rotate.png"]
    layer_entries = [texts for _, texts in sweep["legends"] if "floor (input)" in texts][0]
    assert layer_entries == shown + ["floor (input)"]


@pytest.mark.slow  # the study over MobileNetV2's 52 conv layers
def test_every_figure_fits_the_printed_page_and_has_an_svg(deep_study):
    folder = deep_study["figures"]
    pngs = sorted(folder.glob("*.png"))
    assert {p.name for p in pngs} == set(deep_study["seen"])
    assert len(deep_study["manifest"]["heat_tables"]) > 1  # 52 layers: the heat table is split
    # the report's CSS: A4 pages, their margins, figure.wide's width
    css = (ROOT / "reports" / "templates" / "report.css").read_text()
    top, right, bottom, left = (
        float(v)
        for v in re.search(
            r"@page \{\s*size: A4;\s*margin: ([\d.]+)mm ([\d.]+)mm "
            r"([\d.]+)mm ([\d.]+)mm",
            css,
        ).groups()
    )
    width_mm = float(re.search(r"figure\.wide img \{ width: ([\d.]+)mm", css).group(1))
    printable_w, printable_h = 210 - left - right, 297 - top - bottom
    assert width_mm <= printable_w and plots.FIGURE_WIDTH_MM == width_mm
    for png in pngs:
        w, h = Image.open(png).size
        assert h / w * width_mm <= printable_h - 20, f"{png.name} is {w}x{h} px"  # 20 mm left for the caption
        root = ET.parse(png.with_suffix(".svg")).getroot()
        assert root.tag.endswith("svg")
    assert "Guided backprop" in (folder / "sweep_rotate.svg").read_text()  # text stays text


@pytest.mark.slow  # the study over MobileNetV2's 52 conv layers
def test_legends_sit_beside_the_data(deep_study):
    for name, seen in deep_study["seen"].items():
        for box, _ in seen["legends"]:
            for ax in seen["axes"]:
                assert not box.overlaps(ax), f"{name}: a legend covers the data"


@pytest.mark.slow  # the study over MobileNetV2's 52 conv layers
def test_text_is_readable_at_print_size(deep_study):
    for name, seen in deep_study["seen"].items():
        assert seen["width_in"] == pytest.approx(plots.FIGURE_WIDTH_IN)  # so font sizes are the printed sizes
        assert min(seen["font_sizes"]) >= plots.MIN_FONT_PT, name


@pytest.mark.slow  # the study over MobileNetV2's 52 conv layers
def test_heat_table_numbers_are_rounded_and_contrast_with_their_cell(deep_study):
    table_cells = [c for name, s in deep_study["seen"].items() if name.startswith("heat_table") for c in s["cells"]]
    assert len(table_cells) == 2 * 52 * 24  # every layer × transform of both metrics, once
    for text, colour, image in table_cells[:400]:
        assert len(text) == 4 and float(text) == round(float(text), 2)  # values spread over [0, 1]: two decimals
        cell = image.cmap(image.norm(float(text)))  # the cell's colour, within the rounding
        lum_text, lum_cell = plots.luminance(colour), plots.luminance(cell)
        ratio = (max(lum_text, lum_cell) + 0.05) / (min(lum_text, lum_cell) + 0.05)
        assert ratio >= 4.5  # WCAG AA for text


def test_close_values_get_a_third_decimal():
    assert study_plots.decimals_for(np.array([0.1, 0.5, np.nan])) == 2
    assert study_plots.decimals_for(np.array([0.992, 0.999, 1.0])) == 3
    assert study_plots.cell_text(0.9949, 3) == "0.995"
    assert study_plots.cell_width_in(4) > study_plots.cell_width_in(3)


@pytest.mark.slow  # the study over MobileNetV2's 52 conv layers
def test_sweep_draws_every_method_in_its_colour_with_its_display_name(deep_study):
    entries = [texts for _, texts in deep_study["seen"]["sweep_rotate.png"]["legends"] if "Grad-CAM" in texts][0]
    assert entries == [display_name(m) for m in METHODS]

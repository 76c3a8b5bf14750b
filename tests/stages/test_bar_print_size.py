"""Colour-bar labels print at render.BAR_FONT_PT (≥ 6 pt) at the width the report shows each picture:
the widths assumed are the CSS's, and the font follows from the picture's pixels and its printed size."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convlens import plots, render
from convlens.stages import figures
from convlens.stages.training_views import EVOLUTION_MAP_MM

CSS = (Path(__file__).resolve().parents[2] / "reports" / "templates" / "report.css").read_text()


def printed_pt(font_px: int, width_px: int, printed_mm: float) -> float:
    return font_px * printed_mm / width_px / render.MM_PER_PT


def test_the_widths_assumed_are_the_css_ones():
    for cls, mm in figures.CELL_MAX_MM.items():
        assert re.search(rf"\nimg\.{cls} {{ max-width: {mm}mm; }}", CSS), cls
    assert EVOLUTION_MAP_MM == figures.CELL_MAX_MM["cell-act"]
    assert (
        "div.heatmap-sheet img.cell-input { width: auto; max-width: 100%; "
        f"height: {figures.HEATMAP_SHEET_HEIGHT_MM}mm; }}" in CSS
    )
    assert figures.PAGE_MM == plots.PRINTABLE_MM[0]


@pytest.mark.parametrize("width_px", [96, 112, 231, 500])
@pytest.mark.parametrize("printed_mm", [10.0, 22.0, 45.0])
def test_labels_print_at_six_and_a_half_points_whatever_the_scale(width_px, printed_mm):
    _, size = render.bar_height(width_px, printed_mm)
    assert printed_pt(size, width_px, printed_mm) >= render.BAR_FONT_PT >= plots.MIN_FONT_PT
    assert printed_pt(size - 1, width_px, printed_mm) < render.BAR_FONT_PT or size == 12  # no larger than needed


def test_a_heatmap_fixed_in_height_solves_its_printed_width_with_its_bar():
    width, height = 112, 112
    printed = render.printed_width_at_height(width, height, 14.0)
    rows, size = render.bar_height(width, printed)
    total = height + render.BAR_GAP_PX + rows + size + 3  # the picture's height with its bar (colour_bar)
    assert printed == pytest.approx(14.0 * width / total, rel=1e-6)
    picture = render.with_colour_bar(np.zeros((height, width, 3), np.uint8), render.JET_SCALE, ("0", "0.032"), printed)
    assert picture.shape[0] == total
    assert printed_pt(size, width, printed) >= render.BAR_FONT_PT  # 3.6 pt before (width // 16 px)


def test_the_sheet_columns_follow_the_template(tmp_path):
    widths = figures.sheet_widths_mm(["c1", "c2", "c3"], "c1")  # 2 + 3 + 1 units of 77 % of the page
    unit = 0.77 * figures.PAGE_MM / 6 - figures.CELL_PAD_MM
    assert widths == {
        "cell-input": pytest.approx(min(22, unit)),
        "cell-act": pytest.approx(min(26, unit)),
        "cell-first": pytest.approx(min(48, 2 * unit + figures.CELL_PAD_MM)),
    }
    template = (Path(__file__).resolve().parents[2] / "reports/templates/sections/image_sheet.html.j2").read_text()
    assert "{% set unit = 77.0 / units %}" in template


def test_drawn_heatmaps_carry_the_print_size_font(tmp_path):
    rng = np.random.default_rng(0)
    inputs = rng.random((1, 32, 32, 3)).astype(np.float32)
    files = figures.draw_heatmaps(
        rng.random((1, 32, 32)).astype(np.float32), inputs, ["identity"], "gradcam", 96, tmp_path
    )
    picture = np.asarray(Image.open(tmp_path / files["identity"]))
    printed = render.printed_width_at_height(96, 96, figures.HEATMAP_SHEET_HEIGHT_MM)
    rows, size = render.bar_height(96, printed)
    assert picture.shape[:2] == (96 + render.BAR_GAP_PX + rows + size + 3, 96)
    labels = picture[96 + render.BAR_GAP_PX + rows :]
    ink_rows = np.flatnonzero((labels.min(axis=-1) < 128).any(axis=1))
    assert ink_rows.size and printed_pt(np.ptp(ink_rows) + 1, 96, printed) >= 0.6 * render.BAR_FONT_PT  # digit height

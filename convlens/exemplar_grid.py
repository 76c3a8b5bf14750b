"""One exemplar drawn with every model side by side (numpy and Pillow, no matplotlib).

Rows: the sheet transforms (config ``report.sheet_transforms``), the untransformed image first.
Columns, per model: the transformed input with its top-1 class and confidence under it (red when
the class differs from the model's class on the untransformed image), then that model's heatmap
(the study's reference method, Grad-CAM) over the input, each map scaled by its own maximum.
A first column names the transform; a header row names the models; the heatmaps' colour bar
(0 to each map's maximum) closes the figure under the first model's heatmaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convlens import render

INK, CHANGED, WHITE = (0, 0, 0), (200, 0, 0), 255
GAP_PX, GROUP_GAP_PX = 2, 10  # between a model's two cells; between models


@dataclass(frozen=True)
class Cell:
    """One model's drawing of one transformed input: ``image`` (H, W, 1|3) float in [0, 1] or uint8,
    ``heat`` (H, W) in [0, 1] (the map scaled by its maximum), ``label`` ("circle 97.0 %") and
    ``changed`` (its top-1 class differs from that on the untransformed image)."""

    image: np.ndarray
    heat: np.ndarray
    label: str
    changed: bool = False


@dataclass(frozen=True)
class Layout:
    """Where everything sits in the figure, in pixels: the figure is ``height`` × ``width``; the
    input cell of row r and model k starts at (``row_y[r]``, ``input_x[k]``), its heatmap at
    (``row_y[r]``, ``heat_x[k]``); every cell is ``cell_px`` square with a text line of ``text_px``
    under it."""

    cell_px: int
    text_px: int
    label_px: int
    header_px: int
    row_y: tuple[int, ...]
    input_x: tuple[int, ...]
    heat_x: tuple[int, ...]
    bar_y: int
    height: int
    width: int


def layout(n_rows: int, n_models: int, cell_px: int = 96, label_px: int = 120) -> Layout:
    """The figure's geometry for ``n_rows`` transforms and ``n_models`` models. The report prints the
    figure at 0.18 mm a pixel (at most 17 cm wide, 22.8 cm high): text 16 px or more is 8 pt; the font
    grows with the width so that a figure shrunk to 17 cm keeps its text at about 8 pt (a figure with
    many rows shrunk to the page's height: 6 pt or more up to 15 rows of 3 models)."""
    group = 2 * cell_px + GAP_PX
    width = label_px + n_models * group + (n_models - 1) * GROUP_GAP_PX
    text_px = max(16, round(width / 50))
    header_px = text_px + 8
    row_h = cell_px + round(1.4 * text_px) + 6  # the text line with its descenders, then a gap
    row_y = tuple(header_px + r * row_h for r in range(n_rows))
    input_x = tuple(label_px + k * (group + GROUP_GAP_PX) for k in range(n_models))
    heat_x = tuple(x + cell_px + GAP_PX for x in input_x)
    bar_y = header_px + n_rows * row_h
    bar_h = legend(cell_px).shape[0]
    return Layout(cell_px, text_px, label_px, header_px, row_y, input_x, heat_x, bar_y, bar_y + bar_h + 2, width)


def legend(cell_px: int) -> np.ndarray:
    """The heatmaps' colour bar, one cell wide: jet from 0 to each map's own maximum."""
    return render.colour_bar(cell_px, render.JET_SCALE, ("0", "max"))


def fit_square(image: np.ndarray, px: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (px, px, 3) uint8: scaled to fit (nearest when enlarging, box filter when
    shrinking), centred on white when not square."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = px / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    how = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
    fitted = np.asarray(Image.fromarray(image).resize(size, how), dtype=np.uint8)
    out = np.full((px, px, 3), WHITE, dtype=np.uint8)
    y, x = (px - size[1]) // 2, (px - size[0]) // 2
    out[y : y + size[1], x : x + size[0]] = fitted
    return out


def side_by_side(row_labels: list[str], models: list[str], cells: list[list[Cell]], cell_px: int = 96) -> np.ndarray:
    """The figure (height, width, 3) uint8 as ``layout`` places it: ``cells[r][k]`` is model k's
    drawing of row r's transform."""
    from PIL import Image, ImageDraw

    if len(cells) != len(row_labels) or any(len(row) != len(models) for row in cells):
        raise ValueError(f"cells must be {len(row_labels)} rows × {len(models)} models")
    lay = layout(len(row_labels), len(models), cell_px)
    canvas = np.full((lay.height, lay.width, 3), WHITE, dtype=np.uint8)
    for r, row in enumerate(cells):
        y = lay.row_y[r]
        for k, cell in enumerate(row):
            rgb = render.to_rgb_uint8(cell.image)
            canvas[y : y + cell_px, lay.input_x[k] : lay.input_x[k] + cell_px] = fit_square(rgb, cell_px)
            heat = render.overlay(rgb, np.asarray(cell.heat, dtype=np.float64))
            canvas[y : y + cell_px, lay.heat_x[k] : lay.heat_x[k] + cell_px] = fit_square(heat, cell_px)
    bar = legend(cell_px)
    canvas[lay.bar_y : lay.bar_y + bar.shape[0], lay.heat_x[0] : lay.heat_x[0] + cell_px] = bar
    group = 2 * cell_px + GAP_PX
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    font = text_font(lay.text_px)
    draw.text((4, lay.header_px // 2), "transform", fill=INK, font=font, anchor="lm")
    for k, name in enumerate(models):
        centre = lay.input_x[k] + group // 2
        draw.text((centre, lay.header_px // 2), fitted_text(name, group, font), fill=INK, font=font, anchor="mm")
    for r, label in enumerate(row_labels):
        y = lay.row_y[r]
        draw.text((4, y + cell_px // 2), fitted_text(label, lay.label_px - 8, font), fill=INK, font=font, anchor="lm")
        for k, cell in enumerate(cells[r]):
            text = fitted_text(cell.label, group, font)
            colour = CHANGED if cell.changed else INK
            draw.text((lay.input_x[k], y + cell_px + 2), text, fill=colour, font=font, anchor="la")
    return np.asarray(picture, dtype=np.uint8)


def text_font(size: int):
    """Pillow's built-in font at ``size`` pixels (FreeType), or its fixed bitmap font without it."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def fitted_text(text: str, width_px: int, font) -> str:
    """``text``, cut with "..." at the end when it is wider than ``width_px`` in ``font``."""
    if font.getlength(text) <= width_px:
        return text
    while text and font.getlength(text + "...") > width_px:
        text = text[:-1]
    return text + "..."

"""The side-by-side figure (exemplar_grid): rows × models of solid fabricated cells, each found where the
layout puts it with the colour numpy computes for it."""

import numpy as np
import pytest

from convlens.exemplar_grid import Cell, fit_square, layout, side_by_side

ROWS, MODELS = ["identity", "rotate 90", "hflip"], ["base", "augmented", "third"]


def colour(r, k):
    return np.array([40 * r + 20, 80 * k + 10, 200], dtype=np.uint8)


def cells(size=(28, 28)):
    """Row r, model k: a solid input of colour(r, k); the heatmap 1 in the right half, 0 in the left."""
    heat = np.zeros(size)
    heat[:, size[1] // 2 :] = 1.0
    return [
        [Cell(np.broadcast_to(colour(r, k), (*size, 3)).copy(), heat, f"class{k} 9{r}.0 %", r > 0) for k in range(3)]
        for r in range(3)
    ]


def test_the_figure_has_a_row_per_transform_and_two_cells_per_model():
    figure = side_by_side(ROWS, MODELS, cells(), cell_px=96)
    lay = layout(3, 3, 96)
    assert figure.shape == (lay.height, lay.width, 3) and figure.dtype == np.uint8
    assert len(lay.row_y) == 3 and len(lay.input_x) == len(lay.heat_x) == 3
    assert lay.width == lay.label_px + 3 * (2 * 96 + 2) + 2 * 10
    jet_top = np.array([128, 0, 0], dtype=np.float64)  # jet(1): red at half strength
    for r in range(3):
        for k in range(3):
            y, x = lay.row_y[r] + 48, lay.input_x[k] + 48
            assert (figure[y, x] == colour(r, k)).all(), (r, k)
            hx = lay.heat_x[k]
            cold = np.round(0.55 * colour(r, k) + 0.45 * np.array([0, 0, 128])).astype(np.uint8)  # jet(0)
            hot = np.round(0.55 * colour(r, k) + 0.45 * jet_top).astype(np.uint8)
            assert (figure[y, hx + 10] == cold).all() and (figure[y, hx + 86] == hot).all(), (r, k)
    # the gap between two models' groups is white, and each row's text line has ink under its input
    gap = lay.heat_x[0] + 96 + 4
    assert (figure[lay.row_y[0] : lay.row_y[0] + 96, gap] == 255).all()
    text = figure[lay.row_y[1] + 97 : lay.row_y[1] + 96 + lay.text_px, lay.input_x[0] : lay.heat_x[0]]
    assert (text.min(axis=-1) < 128).any()
    changed = (text[..., 0] > 150) & (text[..., 1] < 60)  # row 1 is marked changed: red text
    assert changed.any()


def test_inputs_of_other_sizes_fill_the_same_cell():
    figure = side_by_side(ROWS[:1], MODELS[:2], [[cells((28, 28))[0][0], cells((32, 16))[0][1]]], cell_px=64)
    lay = layout(1, 2, 64)
    assert figure.shape == (lay.height, lay.width, 3)
    tall = fit_square(np.zeros((32, 16, 3), np.uint8), 64)
    assert tall.shape == (64, 64, 3) and (tall[:, :16] == 255).all() and (tall[:, 16:48] == 0).all()


def test_cells_must_match_rows_and_models():
    with pytest.raises(ValueError, match="2 rows × 3 models"):
        side_by_side(ROWS[:2], MODELS, cells()[:1])

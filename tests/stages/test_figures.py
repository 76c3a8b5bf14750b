"""An exemplar's pictures: every heatmap carries its colour bar with the map's own range."""

import numpy as np
from PIL import Image

from convlens import render
from convlens.stages.figures import draw_heatmaps


def test_heatmaps_are_drawn_with_a_colour_bar_for_their_range(tmp_path):
    rng = np.random.default_rng(0)
    inputs = rng.random((2, 32, 32, 3)).astype(np.float32)
    positive = rng.random((2, 32, 32)).astype(np.float32) * 0.004
    files = draw_heatmaps(positive, inputs, ["identity", "hflip"], "gradcam", 96, tmp_path)
    picture = np.asarray(Image.open(tmp_path / files["identity"]))
    rows, _ = render.bar_height(96)
    bar = picture[96 + render.BAR_GAP_PX : 96 + render.BAR_GAP_PX + rows]
    assert np.array_equal(bar[0], render.JET_SCALE[np.linspace(0, 255, 96).round().astype(int)])
    signed = positive - 0.002
    files = draw_heatmaps(signed, inputs, ["identity", "hflip"], "integrated_gradients", 96, tmp_path)
    bar = np.asarray(Image.open(tmp_path / files["hflip"]))[96 + render.BAR_GAP_PX]
    assert tuple(bar[0]) == tuple(render.DIVERGING_SCALE[0])
    assert np.abs(bar[48].astype(int) - 255).max() <= 8  # white at zero, in the middle
    assert tuple(bar[-1]) == tuple(render.DIVERGING_SCALE[-1])

"""numpy/Pillow rendering and display scaling."""

import numpy as np

from convlens import activations, render
from convlens.attribution import normalize_map


def test_grid_places_tiles_row_major_with_padding():
    tiles = np.stack([np.full((2, 3), i, np.uint8) for i in range(5)])
    g = render.grid(tiles, cols=3, pad=1, pad_value=255)
    assert g.shape == (2 * 2 + 1, 3 * 3 + 2)
    assert g[0, 0] == 0 and g[0, 4] == 1 and g[0, 8] == 2 and g[3, 0] == 3 and g[3, 4] == 4
    assert g[2, 0] == 255 and g[0, 3] == 255 and g[3, 8] == 255  # padding and the empty sixth slot


def test_constant_channel_is_drawn_flat_never_nan():
    ref = np.zeros((4, 4, 2))
    ref[..., 1] = np.arange(16).reshape(4, 4)
    mean, std = activations.display_stats(ref)
    shown = activations.to_display(ref, mean, std)
    assert shown.dtype == np.uint8
    assert np.all(shown[..., 0] == 128)
    assert shown[..., 1].min() < 128 < shown[..., 1].max()


def test_display_matches_the_book_formula():
    rng = np.random.default_rng(1)
    ref = rng.random((5, 5, 3)) * 4
    mean, std = activations.display_stats(ref)
    expected = np.clip((ref - ref.mean(axis=(0, 1))) / ref.std(axis=(0, 1)) * 64 + 128, 0, 255).astype(np.uint8)
    assert np.array_equal(activations.to_display(ref, mean, std), expected)


def test_top_channels_are_the_most_active():
    ref = np.zeros((2, 2, 5))
    ref[..., 3] = 5
    ref[..., 1] = 2
    ref[..., 4] = 1
    assert activations.top_channels(ref, 3).tolist() == [3, 1, 4]
    assert activations.top_channels(ref, 10).shape == (5,)


def test_default_sheet_layers_spread_over_depth():
    convs = [f"c{i}" for i in range(6)]
    assert activations.default_sheet_layers(convs) == ["c0", "c2", "c5"]  # linspace(0, 5, 3) rounds 2.5 to 2
    assert activations.default_sheet_layers(["a", "b"]) == ["a", "b"]


def test_heatmap_normalization_handles_all_zero():
    heat, zero = normalize_map(np.zeros((3, 3)))
    assert zero and np.all(heat == 0) and not np.isnan(heat).any()
    heat, zero = normalize_map(np.array([[0.0, 2.0], [1.0, np.nan]]))
    assert not zero and heat.max() == 1.0 and heat[1, 0] == 0.5 and heat[1, 1] == 0.0


def test_jet_endpoints_and_overlay():
    assert render.jet(np.array(0.0)).tolist() == [0, 0, 128]  # dark blue
    assert render.jet(np.array(1.0)).tolist() == [128, 0, 0]  # dark red
    image = np.full((4, 4, 1), 0.5, np.float32)
    out = render.overlay(image, np.zeros((4, 4)), alpha=0.0)
    assert out.shape == (4, 4, 3) and np.all(out == 128)


def test_kernel_tiles_minmax_each_filter_and_rgb():
    k = np.zeros((3, 3, 3, 2))
    k[..., 0] = np.arange(27).reshape(3, 3, 3)
    tiles = render.kernel_tiles(k)
    assert tiles.shape == (2, 3, 3, 3)
    assert tiles[0].min() == 0 and tiles[0].max() == 255
    assert np.all(tiles[1] == 128)  # a constant kernel is mid-grey


def test_upscale_is_nearest_by_whole_factor():
    img = np.arange(4, dtype=np.uint8).reshape(2, 2)
    up = render.upscale(img, 5)
    assert up.shape == (6, 6) and up[0, 0] == 0 and up[5, 5] == 3


def test_fit_tile_enlarges_small_and_box_shrinks_large_maps():
    small = np.arange(49, dtype=np.uint8).reshape(7, 7)
    assert render.fit_tile(small, 28).shape == (28, 28)
    large = np.zeros((224, 224), np.uint8)
    large[:, 112:] = 200
    out = render.fit_tile(large, 28)
    assert out.shape == (28, 28) and out[0, 0] == 0 and out[0, -1] == 200
    assert render.fit_tile(np.zeros((100, 50), np.uint8), 28).shape == (28, 14)


def bar_rows(picture: np.ndarray, image_height: int) -> np.ndarray:
    """The gradient rows of the colour bar under a picture ``image_height`` pixels tall."""
    rows, _ = render.bar_height(picture.shape[1])
    top = image_height + render.BAR_GAP_PX
    return picture[top : top + rows]


def test_colour_bar_under_a_heatmap_runs_through_the_scale_with_labels():
    image = np.full((96, 120, 3), 200, np.uint8)
    out = render.with_colour_bar(image, render.JET_SCALE, ("0", render.value_label(0.0321)))
    assert np.array_equal(out[:96], image) and (out[96 : 96 + render.BAR_GAP_PX] == 255).all()
    bar = bar_rows(out, 96)
    assert (bar == bar[:1]).all()  # every row of the gradient the same
    expected = render.JET_SCALE[np.linspace(0, 255, 120).round().astype(int)]
    assert np.array_equal(bar[0], expected)
    assert tuple(bar[0, 0]) == tuple(render.jet(np.array(0.0))) and tuple(bar[0, -1]) == tuple(
        render.jet(np.array(1.0))
    )
    labels = out[96 + render.BAR_GAP_PX + len(bar) :]
    ink = labels.min(axis=-1) < 128
    assert ink[:, :30].any() and ink[:, -40:].any() and not ink[:, 30:60].any()  # "0" left, "0.032" right
    assert render.value_label(0.0321) == "0.032" and render.value_label(-12.5) == "-12"
    assert render.value_label(0.000321) == "3.2e-4" and render.value_label(-45678.0) == "-4.6e4"
    assert render.value_label(0.0) == "0"


def test_grey_feature_map_grid_gets_a_grey_bar_and_three_labels():
    grid = np.full((50, 200), 90, np.uint8)
    out = render.with_colour_bar(grid, render.GREY_SCALE, render.ACTIVATION_LABELS)
    assert out.ndim == 2 and out.shape[1] == 200
    bar = bar_rows(out, 50)[0].astype(int)
    assert bar[0] == 0 and bar[-1] == 255 and (np.diff(bar) >= 0).all()
    labels = out[50 + render.BAR_GAP_PX + render.bar_height(200)[0] :]
    assert (labels[:, 90:110] < 128).any()  # "mean" in the middle

"""Where each layer's pixels sit in the input (core.grids), against the receptive fields themselves."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens.core.graph import build_probe  # noqa: E402
from convlens.core.grids import axis_grid, layer_grids  # noqa: E402
from convlens.errors import InputError  # noqa: E402


def test_layer_grids_place_each_map_pixel_at_its_receptive_field_centre():
    """Box filters and average pooling of an x-coordinate ramp output, away from the borders, the
    centre of each pixel's receptive field: exactly where the grid says the pixel sits."""
    inp = keras.Input((101, 97, 1))
    x = keras.layers.ZeroPadding2D(((2, 0), (1, 3)), name="pad")(inp)
    x = keras.layers.Conv2D(1, 3, strides=2, padding="valid", use_bias=False, name="c1")(x)
    x = keras.layers.AveragePooling2D(2, name="p1")(x)
    x = keras.layers.Conv2D(1, 5, padding="same", use_bias=False, name="c2")(x)
    x = keras.layers.Conv2D(1, 3, strides=2, padding="same", use_bias=False, name="c3")(x)
    model = keras.Model(inp, x)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            k = layer.get_weights()[0]
            layer.set_weights([np.ones_like(k) / k[..., 0, 0].size])
    grids = layer_grids(model, ["c1", "p1", "c2", "c3"])
    ys, xs = np.mgrid[0:101, 0:97].astype("float32")
    for ramp, axis in ((xs, "x"), (ys, "y")):
        # shift the ramp away from 0 so zero padding shows as a mismatch, then undo it
        outs = build_probe(model, ["c1", "p1", "c2", "c3"], None)((ramp + 100.0)[None, ..., None])
        for name, out in zip(["c1", "p1", "c2", "c3"], outs[:4], strict=False):
            g = grids[name]
            m = np.asarray(out)[0, ..., 0] - 100.0
            assert m.shape == (g.height, g.width)
            v, u = np.mgrid[0 : g.height, 0 : g.width]
            expected = g.ax * u + g.bx if axis == "x" else g.ay * v + g.by
            inner = (slice(4, -4), slice(4, -4))  # clear of zero padding
            assert np.allclose(m[inner], expected[inner], atol=1e-3), (name, axis)


def test_axis_grid_of_valid_and_same_layers():
    assert axis_grid(29, 14, 3, 2, 1, "valid") == (2.0, 1.0)  # output u centred on input 2u + 1
    assert axis_grid(28, 14, 2, 2, 1, "valid") == (2.0, 0.5)  # 2x2 pooling: between the two pixels
    assert axis_grid(28, 28, 3, 1, 1, "same") == (1.0, 0.0)
    assert axis_grid(28, 14, 3, 2, 1, "same") == (2.0, 1.0)  # TensorFlow pads the extra pixel at the end
    assert axis_grid(28, 28, 3, 1, 2, "same") == (1.0, 0.0)  # dilated: span 5, padded 2 each side


def test_a_layer_without_a_spatial_map_is_named():
    inputs = keras.Input((8, 8, 1))
    y = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(keras.layers.Flatten(name="flat")(y)))
    assert layer_grids(model, ["conv"])["conv"].width == 6
    with pytest.raises(InputError, match="flat have no spatial map"):
        layer_grids(model, ["conv", "flat"])

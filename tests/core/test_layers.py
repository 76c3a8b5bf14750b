"""Finding layers by path (core.layers): nested models descended into, the layer making the output."""

import pytest

keras = pytest.importorskip("keras")

from convlens.core.layers import (  # noqa: E402
    check_spatial,
    conv_layers,
    feature_layers,
    final_layer,
    find_layer,
    iter_layers,
    last_conv_layer,
    output_operation,
)
from convlens.errors import InputError  # noqa: E402
from tests.helpers import nested_classifier  # noqa: E402


def test_non_spatial_gradcam_layer_is_named():
    inputs = keras.Input((8, 8, 1))
    y = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="tanh", name="out")(y))
    with pytest.raises(InputError, match="config.heatmaps.layer: layer 'out' outputs shape"):
        check_spatial(model, "out", "config.heatmaps.layer")
    check_spatial(model, "conv", "config.heatmaps.layer")  # (B, 6, 6, 2): no error


def test_layers_are_found_by_path_in_nested_models():
    model = nested_classifier()
    paths = [p for p, _ in iter_layers(model)]
    assert paths[1:4] == ["base/c1", "base/p1", "base/c2"] and paths[-1] == "head"  # inner paths: outer/inner
    assert paths[0].startswith("base/input_layer")  # the nested model's own input layer is listed too
    assert feature_layers(model) == ["base/c1", "base/p1", "base/c2"]
    assert conv_layers(model) == ["base/c1", "base/c2"] and last_conv_layer(model) == "base/c2"
    assert find_layer(model, "base/c2") is model.layers[0].get_layer("c2")
    with pytest.raises(InputError, match="layer 'c2' is not in the model; layers: .*base/c2"):
        find_layer(model, "c2")
    assert output_operation(model) is final_layer(model) is model.get_layer("head")
    # a classifier ending in a nested model: its own output layer
    outer = keras.Sequential([keras.Input((16, 16, 3)), model])
    assert output_operation(outer) is model and final_layer(outer) is model.get_layer("head")
    flat = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(InputError, match="no convolution layer"):
        last_conv_layer(flat)


def test_a_layer_key_naming_a_missing_layer_names_the_key():
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="conv")(inputs))
    with pytest.raises(InputError, match=r"^config.models.m.heatmap_layer: layer 'cnov' is not in the model; layers: "):
        check_spatial(model, "cnov", "config.models.m.heatmap_layer")

"""Consistency over shift sweeps and the Lie derivative rows (convlens.sensitivity.lie)."""

import numpy as np
import pandas as pd
import pytest

from convlens import transforms as tr
from convlens.sensitivity.lie import consistency, consistency_rows, generators_of
from convlens.transform_kinds import REGISTRY


def one_hot(classes, k=4):
    return np.eye(k)[classes] * 0.9 + 0.025


def test_consistency_is_the_hand_count_of_agreeing_pairs():
    # identity, shift x -2, -1, 1, 2, then a rotation (not on a shift curve), then shift y 1
    transforms = tr.build_transforms(
        [
            {"kind": "shift", "range": [-2, 2, 1], "direction": "x"},
            {"kind": "rotate", "angle_deg": 10},
            {"kind": "shift", "dx": 0, "dy": 1},
        ]
    )
    assert [t.name for t in transforms] == [
        "identity",
        "shift_dx-2_dy0",
        "shift_dx-1_dy0",
        "shift_dx1_dy0",
        "shift_dx2_dy0",
        "rotate_10",
        "shift_dx0_dy1",
    ]
    top = [0, 0, 1, 0, 1, 2, 3]
    got = consistency(transforms, one_hot(top))
    # shift x offsets 0, -2, -1, 1, 2 -> classes 0, 0, 1, 0, 1: 10 pairs; agreeing: among the three 0s
    # 3 pairs, between the two 1s 1 pair -> 4 / 10
    assert got == {"shift_x": pytest.approx(0.4), "shift_y": pytest.approx(0.0)}  # shift y: (0, 1) -> classes 0, 3
    rows = pd.DataFrame(consistency_rows(transforms, "img", one_hot(top)))
    assert list(rows["transform"]) == ["shift_x", "shift_y"] and set(rows["metric"]) == {"consistency"}
    assert set(rows["layer"]) == {"output"} and set(rows["param"]) == {""}


def test_consistency_is_one_when_nothing_changes_and_absent_without_shifts():
    transforms = tr.build_transforms([{"kind": "shift", "range": [-3, 3, 3], "direction": "xy"}])
    assert consistency(transforms, one_hot([2, 2, 2])) == {"shift_diagonal": 1.0}
    assert consistency(tr.build_transforms([{"kind": "rotate", "angle_deg": 5}]), one_hot([0, 1])) == {}


def test_a_crop_sweep_of_one_offset_has_no_pair_and_no_consistency():
    transforms = tr.build_transforms([{"kind": "shift", "range": [2, 2, 1], "direction": "x", "mode": "crop"}])
    assert consistency(transforms, one_hot([0] * len(transforms))) == {}


def test_the_generators_are_the_continuous_kinds_of_the_study():
    from convlens.core.lie import GENERATORS

    assert all(g in GENERATORS for k in REGISTRY.values() for g in k.lie)
    transforms = tr.build_transforms([{"kind": "scale", "factor": 1.1}, {"kind": "hflip"}, {"kind": "shift", "dx": 1}])
    assert generators_of(transforms) == ["shift_x", "shift_y", "scale"]
    assert generators_of(tr.build_transforms([{"kind": "hflip"}, {"kind": "blur", "sigma_px": 1}])) == []


def test_the_step_on_a_keras_model_gives_one_row_per_image_generator_and_layer():
    keras = pytest.importorskip("keras")
    from convlens.core.grids import layer_grids
    from convlens.core.layers import feature_layers
    from convlens.sensitivity.analyzer import Analyzer
    from convlens.sensitivity.lie import LieStep

    # conv, stride-2 pool, conv, softmax head: the shapes CNN's kinds of layer in a graph a third of its size
    keras.utils.set_random_seed(3)
    x = inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x))
    layers = feature_layers(model)
    assert layers == ["conv1", "pool", "conv2"]
    analyzer = Analyzer(model, layers, "unit")
    step = LieStep(analyzer, ["shift_x", "rotate"], layers, layer_grids(model, layers))
    pixels = np.random.default_rng(1).random((2, 16, 16, 3)).astype("float32")
    lie = step.run(pixels)
    assert lie["output"].shape == (2, 2) and all(v.shape == (2, 2) for v in lie["layers"])
    assert np.all(np.isfinite(lie["output"])) and np.all(lie["output"] > 0)
    # the same image beside another one gives the same numbers: rows are per image, not mixed across the
    # batch
    other = np.random.default_rng(2).random((1, 16, 16, 3)).astype("float32")
    alone = step.run(np.concatenate([pixels[1:], other]))
    assert np.allclose(alone["output"][0], lie["output"][1], rtol=1e-4)
    assert not np.allclose(alone["output"][1], lie["output"][0], rtol=1e-4)  # the companion did change
    rows = pd.DataFrame(step.rows("b", lie, 1))
    assert len(rows) == 2 * (1 + len(layers)) and set(rows["metric"]) == {"lie_derivative"}
    assert rows.query("layer == 'output' and transform == 'rotate'")["value"].item() == pytest.approx(
        float(lie["output"][1, 1])
    )


def test_the_step_through_an_anti_aliased_pool_equals_a_finite_difference_of_the_logits():
    """A 2×2 max pool at stride 1 with "same" padding, then a stride-2 blur (an anti-aliased model):
    the step's shift derivative of the logits equals a finite difference through the model, and every
    layer's is non-zero (compiled, TF 2.21 gave 0 for the pool and everything after it)."""
    keras = pytest.importorskip("keras")
    from convlens.core.grids import layer_grids
    from convlens.sensitivity.analyzer import Analyzer
    from convlens.sensitivity.lie import LieStep

    keras.utils.set_random_seed(4)
    x = inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="tanh", name="conv1")(x)
    x = keras.layers.MaxPooling2D(2, strides=1, padding="same", name="pool")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, name="blur")(x)
    x = keras.layers.Flatten()(x)  # position-dependent logits (a pooled head would hide the border)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    layers = ["conv1", "pool", "blur"]
    step = LieStep(Analyzer(model, layers, "unit"), ["shift_x"], layers, layer_grids(model, layers))
    pixels = np.random.default_rng(5).random((1, 16, 16, 3))
    lie = step.run(pixels.astype("float32"))
    h = 1e-3  # a shift by h moves the image along its central-difference tangent (wrap boundary)
    moved = pixels - h * (np.roll(pixels, -1, axis=2) - np.roll(pixels, 1, axis=2)) / 2
    fd = (model(moved.astype("float64")).numpy() - model(pixels.astype("float64")).numpy()) / h
    assert np.linalg.norm(fd) > 0.01
    assert float(lie["output"][0, 0]) == pytest.approx(float(np.linalg.norm(fd)), rel=2e-2)
    assert all(float(v[0, 0]) > 0 for v in lie["layers"])

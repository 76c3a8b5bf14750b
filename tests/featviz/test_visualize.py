"""Activation maximization (featviz.visualize): regularized patterns, and the plain filter patterns of
the report (``PRESETS["plain"]``) raise what they maximize."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import featviz, models, render  # noqa: E402
from convlens.core.graph import build_probe  # noqa: E402
from convlens.errors import InputError  # noqa: E402
from tests.helpers import c4_pre_activation, gap_logits  # noqa: E402


def plain_patterns(model, layer, channels, input_shape, preprocess_mode, steps, step_size, seed):
    """The report's filter patterns: gradient ascent on the raw pixels (what backend.filter_patterns was)."""
    return featviz.visualize(
        model,
        layer,
        channels,
        input_shape,
        preprocess_mode,
        steps=steps,
        lr=step_size,
        seed=seed,
        **featviz.PRESETS["plain"],
    )


def test_regularized_pattern_beats_noise_and_the_displayed_plain_pattern(cnn):
    """On c4 of a random CNN, channels 0-7, 256 steps each, measured un-transformed.

    The plain pattern is unbounded (pixels reach about -16..21). As the report shows it
    (render.pattern_to_uint8) it activates the filter less than the regularized one (mean 0.03 vs
    0.10); raw (2.21) or clipped to [0, 1] (0.14) it activates more: the 1/f parameterization and
    transformation robustness trade raw objective for natural images, so those are not asserted.
    """
    chans = list(range(8))
    reg = featviz.visualize(cnn, "c4", chans, steps=256, seed=0)
    noise = np.random.default_rng(5).random((8, 32, 32, 3)).astype("float32")
    plain = plain_patterns(cnn, "c4", chans, (32, 32, 3), "unit", 256, 0.02, 0)["images"]
    shown = np.stack([render.pattern_to_uint8(p) for p in plain]).astype("float32") / 255.0
    values = {
        name: featviz.objective_values(cnn, "c4", chans, im, "unit")
        for name, im in (("noise", noise), ("shown", shown), ("reg", reg["images"]))
    }
    assert reg["images"].min() > 0 and reg["images"].max() < 1
    assert np.allclose(reg["objective"], values["reg"], atol=1e-6)
    assert np.allclose(
        reg["objective"],
        c4_pre_activation(cnn, reg["images"])[..., 2:-2, 2:-2, chans].mean(axis=(1, 2))[np.arange(8), chans],
        atol=1e-5,
    )
    assert np.all(reg["objective"] > reg["objective_start"])
    assert np.all(values["reg"] > values["noise"])
    assert values["reg"].mean() > values["shown"].mean() + 0.03


def test_class_objective_raises_the_class_logit(cnn):
    res = featviz.visualize(cnn, None, [1, 3], objective="class", steps=64, seed=2)
    start = featviz.start_images([1, 3], (32, 32, 3), 2)
    before = gap_logits(cnn, start)[[0, 1], [1, 3]]
    after = gap_logits(cnn, res["images"])[[0, 1], [1, 3]]
    assert np.allclose(res["objective_start"], before, atol=1e-5)
    assert np.allclose(res["objective"], after, atol=1e-5)
    assert np.all(after > before + 0.02)


@pytest.mark.parametrize(
    "options",
    [
        {"param": "fourier", "optimizer": "adam", "tv_weight": 0.1, "blur_every": 10},
        {"param": "pixel", "optimizer": "normalized", "lr": 0.5, "rotate_deg": 10.0},
    ],
)
def test_a_batch_equals_each_channel_alone(cnn, options):
    """Transforms are drawn once per step for the batch and each start image from (seed, channel),
    and the summed loss separates per image, so batching changes nothing (observed exactly equal)."""
    both = featviz.visualize(cnn, "c3", [2, 9], steps=48, seed=4, **options)
    for i, c in enumerate([2, 9]):
        alone = featviz.visualize(cnn, "c3", [c], steps=48, seed=4, **options)
        assert np.allclose(both["images"][i], alone["images"][0], atol=1e-5)
        assert np.isclose(both["objective"][i], alone["objective"][0], atol=1e-5)


def test_other_input_size_and_nested_model():
    base_in = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(base_in)
    y = keras.layers.MaxPooling2D(name="p1")(y)
    y = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2")(y)
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.Model(base_in, y, name="base"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    res = featviz.visualize(model, "base/c2", [0, 5], input_shape=(24, 20, 3), steps=32, param="pixel", seed=1)
    assert res["images"].shape == (2, 24, 20, 3)
    assert np.all(res["objective"] > res["objective_start"])
    with pytest.raises(InputError):
        featviz.visualize(model, None, [0], input_shape=(24, 20, 3), objective="class", steps=1)


def test_filter_patterns_raise_their_filters_activation():
    keras.utils.set_random_seed(2)
    model = models.build_shapes_cnn((28, 28, 3), 3)
    res = plain_patterns(model, "block2_conv1", [0, 1, 2, 3], (28, 28, 3), "unit", steps=15, step_size=0.02, seed=0)
    assert res["images"].shape == (4, 28, 28, 3)
    assert np.all(res["objective"] > res["objective_start"])


def test_filter_patterns_on_small_maps_and_silent_filters():
    keras.utils.set_random_seed(2)
    model = models.build_shapes_cnn((32, 32, 3), 3)
    res = plain_patterns(
        model, "block3_conv2", [0, 1, 2], (32, 32, 3), "unit", steps=10, step_size=0.02, seed=0
    )  # block3 maps are 8x8: no border crop
    assert np.isfinite(res["objective"]).all()
    assert np.all(res["objective"] > res["objective_start"])


def test_filter_patterns_at_a_smaller_size_than_the_input():
    keras.utils.set_random_seed(6)
    model = models.build_shapes_cnn((48, 48, 3), 3)  # the Dense head needs 48x48; patterns at 24x24
    res = plain_patterns(model, "block2_conv2", [0, 1], (24, 24, 3), "unit", steps=5, step_size=0.02, seed=0)
    assert res["images"].shape == (2, 24, 24, 3)
    assert np.all(res["objective"] > res["objective_start"])
    # the probe stops at the wanted layer input: the 48x48-only head is never built
    probe = build_probe(model, [], None, inputs_of=("block2_conv2",), input_shape=(24, 24, 3))
    assert tuple(probe.outputs[0].shape[1:]) == (12, 12, 64)  # block2_conv1 output, 24 px halved once

"""Anti-aliased downsampling (Zhang 2019's BlurPool) built from standard Keras layers."""

import numpy as np
import pytest
from scipy import ndimage

from convlens import models
from convlens import transforms as tr
from convlens.core.grids import layer_grids
from convlens.core.layers import conv_layers, feature_layers
from convlens.sensitivity.metrics import Study, error_from_sums, layer_stats

keras = pytest.importorskip("keras")


def test_binomial_kernel_is_the_normalized_outer_product():
    np.testing.assert_allclose(models.binomial_kernel(3), np.outer([1, 2, 1], [1, 2, 1]) / 16)
    np.testing.assert_allclose(models.binomial_kernel(4), np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64)
    np.testing.assert_allclose(models.binomial_kernel(2), np.full((2, 2), 0.25))
    assert models.binomial_kernel(5).sum() == pytest.approx(1.0)
    assert models.antialias_size({"antialias": True}) == 3
    assert models.antialias_size({"antialias": {"filter_size": 5}}) == 5
    assert models.antialias_size({}) is None and models.antialias_size({"antialias": False}) is None


def blur_model(size, channels=2, filter_size=3):
    inp = keras.Input((size, size, channels))
    return keras.Model(inp, models.blur_pool(inp, filter_size, "pool_blur"))


def test_blur_pool_is_a_binomial_blur_then_every_second_pixel():
    x = np.random.default_rng(0).random((1, 12, 12, 2)).astype("float32")
    got = np.asarray(blur_model(12)(x))
    assert got.shape == (1, 6, 6, 2)
    for c in range(2):
        # TensorFlow's 'same' padding for a 3-tap stride-2 filter on 12 pixels pads one pixel at the end:
        # output i is centred on input 2i + 1 (scipy: zero padding, mode constant)
        full = ndimage.convolve(x[0, :, :, c].astype(np.float64), models.binomial_kernel(3), mode="constant")
        np.testing.assert_allclose(got[0, :, :, c], full[1::2, 1::2], atol=1e-6)


def test_a_constant_image_stays_constant_except_at_the_zero_padded_edge():
    got = np.asarray(blur_model(12)(np.full((1, 12, 12, 2), 0.7, "float32")))[0, :, :, 0]
    np.testing.assert_allclose(got[:-1, :-1], 0.7, rtol=1e-6)  # the interior: the kernel sums to 1
    np.testing.assert_allclose(got[-1, :-1], 0.7 * 3 / 4, rtol=1e-6)  # the last row sees one padded row
    np.testing.assert_allclose(got[:-1, -1], 0.7 * 3 / 4, rtol=1e-6)
    assert got[-1, -1] == pytest.approx(0.7 * 9 / 16, rel=1e-6)


def test_antialiased_architectures_and_safe_mode_round_trip(tmp_path):
    model = models.build_shapes_cnn((28, 28, 3), 3, antialias=3)
    names = [layer.name for layer in model.layers]
    assert names[names.index("block1_pool") : names.index("block1_pool") + 2] == ["block1_pool", "block1_pool_blur"]
    assert model.get_layer("block1_pool").strides == (1, 1) and model.get_layer("block1_pool_blur").strides == (2, 2)
    assert model.output_shape == (None, 3) and model.get_layer("block2_pool_blur").output.shape[1:3] == (7, 7)
    assert "block1_pool_blur" not in conv_layers(model) and "block1_pool_blur" in feature_layers(model)
    assert conv_layers(model) == conv_layers(models.build_shapes_cnn((28, 28, 3), 3))
    mnist = models.build_mnist_cnn((28, 28, 1), 10, antialias=4)
    assert mnist.get_layer("pool2_blur").output.shape[1:3] == (7, 7) and conv_layers(mnist) == ["conv1", "conv2"]

    model.save(tmp_path / "aa.keras")
    back = keras.saving.load_model(tmp_path / "aa.keras", compile=False, safe_mode=True)
    blur = back.get_layer("block2_pool_blur")
    assert not blur.trainable and blur.__class__ is keras.layers.DepthwiseConv2D
    np.testing.assert_allclose(blur.get_weights()[0][:, :, 5, 0], models.binomial_kernel(3), atol=1e-7)
    x = np.random.default_rng(1).random((2, 28, 28, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(back(x)), np.asarray(model(x)), atol=1e-6)


def shift_errors(model, images, layers, dx):
    """Mean equivariance error per layer for a dx-pixel shift (the study's own metric code)."""
    study = Study.build(
        [tr.Transform("identity"), tr.Transform("shift", {"dx": dx, "dy": 0})],
        28,
        28,
        layers,
        layer_grids(model, layers),
        "constant",
        0.0,
    )
    probe = keras.Model(model.inputs[0], [model.get_layer(name).output for name in layers])
    errors = []
    for image in images:
        batch = np.asarray(tr.warp(np.stack([image, image]), study.matrices))
        stats = layer_stats(study, [np.asarray(a) for a in probe(batch)])
        errors.append([error_from_sums(n, d, np.ones(2, bool))[1] for n, d in zip(stats.num, stats.den, strict=False)])
    return np.mean(errors, axis=0)


def test_antialiasing_lowers_the_equivariance_error_after_pooling_for_an_odd_shift():
    """Zhang 2019: a 1-pixel shift aliases in a stride-2 max-pool; blurring first lowers the error.
    The same random weights in both models, on high-frequency (noise) images."""
    keras.utils.set_random_seed(0)
    base = models.build_shapes_cnn((28, 28, 3), 3)
    aa = models.build_shapes_cnn((28, 28, 3), 3, antialias=3)
    for layer in base.layers:
        if layer.weights:
            aa.get_layer(layer.name).set_weights(layer.get_weights())
    images = np.random.default_rng(0).random((4, 28, 28, 3)).astype("float32")
    plain = shift_errors(base, images, ["block1_pool", "block2_conv1", "block2_pool"], 1)
    blurred = shift_errors(aa, images, ["block1_pool_blur", "block2_conv1", "block2_pool_blur"], 1)
    assert np.all(blurred < 0.75 * plain), (plain, blurred)

"""Image parameterizations and image-space penalties of feature visualization (featviz.params)."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from convlens import featviz  # noqa: E402
from convlens.featviz.params import gaussian_blur, total_variation  # noqa: E402


@pytest.mark.parametrize("shape", [(8, 8, 3), (9, 7, 3), (8, 7, 1), (11, 11, 1)])
@pytest.mark.parametrize("kind", ["fourier", "pixel", "raw"])
def test_parameterization_round_trips_an_image(shape, kind):
    p = featviz.Parameterization(kind, shape)
    images = np.random.default_rng(0).uniform(0.01, 0.99, (2,) + shape).astype("float32")
    params = p.image_to_params(images)
    assert params.shape == p.params_shape(2)
    assert np.allclose(np.asarray(p.params_to_image(params)), images, atol=1e-5)


def test_fourier_basis_has_one_over_f_amplitude_and_lucid_colours():
    h, w = 8, 12
    p = featviz.Parameterization("fourier", (h, w, 1))
    logit = lambda img: np.log(img) - np.log1p(-img)  # noqa: E731
    for k in (1, 2, 3):  # one horizontal frequency k / w: amplitude 2 * scale / (h w), scale ~ w / k
        params = np.zeros(p.params_shape(1), dtype="float32")
        params[0, 0, 0, 0, k] = 0.5
        got = logit(np.asarray(p.params_to_image(params), dtype=np.float64))[0, :, :, 0]
        amplitude = 2 * 0.5 * (w / k) * np.sqrt(h * w) / 4 / (h * w)
        expected = amplitude * np.cos(2 * np.pi * k * np.arange(w) / w)
        assert np.allclose(got, np.broadcast_to(expected, (h, w)), atol=1e-5)
    rgb = featviz.Parameterization("fourier", (h, w, 3))
    params = np.zeros(rgb.params_shape(1), dtype="float32")
    params[0, 0, 0, 0, 0] = 0.1  # DC of decorrelated channel 0: scale max(h, w) sqrt(h w) / 4, / (h w)
    got = logit(np.asarray(rgb.params_to_image(params), dtype=np.float64))[0]
    lucid = np.array([0.26, 0.27, 0.27]) / np.linalg.norm([0.26, 0.27, 0.27])  # first column, unit norm
    assert np.allclose(got, 0.1 * w * np.sqrt(h * w) / 4 / (h * w) * lucid, atol=1e-5)


def test_gaussian_blur_keeps_constants_and_matches_its_kernel():
    const = np.full((1, 6, 7, 2), 0.3)
    assert np.allclose(gaussian_blur(const, 0.8), 0.3)
    impulse = np.zeros((1, 9, 9, 1))
    impulse[0, 4, 4, 0] = 1.0
    out = gaussian_blur(impulse, 1.0)[0, :, :, 0]
    g = np.exp(-(np.arange(-3, 4) ** 2) / 2.0)
    g /= g.sum()
    assert np.allclose(out[1:8, 1:8], np.outer(g, g)) and np.isclose(out.sum(), 1.0)


def test_raw_parameters_are_the_pixels_and_total_variation_sums_the_steps():
    p = featviz.Parameterization("raw", (3, 4, 2))
    pixels = np.random.default_rng(1).normal(size=(2, 3, 4, 2)).astype("float32")  # unbounded
    assert p.params_shape(2) == (2, 3, 4, 2)
    assert np.array_equal(p.image_to_params(pixels), pixels)
    assert np.array_equal(np.asarray(p.params_to_image(pixels)), pixels)
    ramp = np.tile(np.arange(4, dtype="float32"), (1, 3, 1))[..., None]  # (1, 3, 4, 1), steps of 1 along x
    assert np.allclose(np.asarray(total_variation(ramp)), [1.0])
    assert np.allclose(np.asarray(total_variation(np.full((2, 3, 4, 2), 0.7, "float32"))), 0.0)
    with pytest.raises(ValueError, match="unknown parameterization"):
        featviz.Parameterization("wavelet", (3, 4, 2))

"""Statistics (convlens.stats) against the reference implementations in scipy and scikit-image."""
import numpy as np
import pytest

from convlens import stats as cstats
from convlens.attribution.perturbations import baseline_image


def rng(seed):
    return np.random.default_rng(seed)


def images(shape, seed=0):
    return rng(seed).random(shape).astype("float32")


def test_ssim_spearman_and_blur_match_the_reference_implementations():
    metrics = pytest.importorskip("skimage.metrics")
    stats = pytest.importorskip("scipy.stats")
    ndimage = pytest.importorskip("scipy.ndimage")
    a = images((20, 24), seed=20)
    b = np.clip(a + 0.2 * rng(21).normal(size=a.shape), 0, 1)
    want = metrics.structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
    assert np.isclose(cstats.ssim(a, b), want, atol=1e-7)
    assert np.isclose(cstats.ssim(a, a), 1.0)
    tied = np.round(b * 4)  # many ties
    assert np.isclose(cstats.spearman(a, tied), stats.spearmanr(a.ravel(), tied.ravel())[0], atol=1e-12)
    x = images((2, 10, 12, 3), seed=22)
    blurred = baseline_image(x, "blur", blur_sigma=1.7)
    assert np.allclose(blurred, ndimage.gaussian_filter(x, sigma=(0, 1.7, 1.7, 0), mode="reflect"), atol=1e-6)


def test_pearson_spearman_and_blur_on_known_answers():
    a = np.array([3.0, 1.0, 2.0, 2.0])
    assert cstats.pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert cstats.pearson(a, -a) == pytest.approx(-1.0)
    assert np.isnan(cstats.pearson(a, np.ones(4))) and np.isnan(cstats.spearman(a, np.ones(4)))
    assert cstats.spearman(a, a ** 3) == pytest.approx(1.0)  # a monotone map keeps the ranks
    blurred = cstats.gaussian_blur(np.eye(9), 1.2)  # constants stay, mass is kept away from the edges
    assert np.allclose(cstats.gaussian_blur(np.full((5, 6), 0.4), 2.0), 0.4)
    assert blurred.sum() == pytest.approx(9.0, rel=1e-2) and blurred[4, 4] < 1

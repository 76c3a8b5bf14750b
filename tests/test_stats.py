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


def test_bootstrap_mean_ci_is_the_percentile_interval_of_resampled_means():
    values = rng(3).normal(0.2, 1.0, size=15)
    low, high = cstats.bootstrap_mean_ci(values, n_boot=2000, seed=5, level=0.9)
    # the same draw, written out: 2000 resamples of 15 indices, their means, the 5 % and 95 % quantiles
    idx = np.random.default_rng(5).integers(0, 15, (2000, 15))
    means = np.array([values[i].mean() for i in idx])
    assert (low, high) == pytest.approx((np.percentile(means, 5), np.percentile(means, 95)), abs=1e-12)
    assert cstats.bootstrap_mean_ci(values, n_boot=2000, seed=5, level=0.9) == (low, high)  # seeded
    # scipy's percentile bootstrap draws differently; with many resamples the intervals agree
    stats = pytest.importorskip("scipy.stats")
    ref = stats.bootstrap((values,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.9,
                          random_state=np.random.default_rng(1)).confidence_interval
    mine = cstats.bootstrap_mean_ci(values, n_boot=20000, seed=2, level=0.9)
    assert mine == pytest.approx((ref.low, ref.high), abs=0.03)
    assert mine[0] < values.mean() < mine[1]


def test_bootstrap_mean_ci_edge_cases():
    assert cstats.bootstrap_mean_ci([0.4]) == (0.4, 0.4)
    assert all(np.isnan(cstats.bootstrap_mean_ci([])))
    assert cstats.bootstrap_mean_ci([1.0, np.nan, 1.0]) == (1.0, 1.0)  # NaN dropped; no spread, no width
    low, high = cstats.bootstrap_mean_ci([-1.0, -2.0, -0.5, -3.0], n_boot=500, seed=0)
    assert -3.0 <= low <= high <= -0.5  # every resampled mean lies between the extremes

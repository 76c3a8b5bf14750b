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
    want = metrics.structural_similarity(
        a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
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
    assert cstats.spearman(a, a**3) == pytest.approx(1.0)  # a monotone map keeps the ranks
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
    ref = stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=20000,
        method="percentile",
        confidence_level=0.9,
        random_state=np.random.default_rng(1),
    ).confidence_interval
    mine = cstats.bootstrap_mean_ci(values, n_boot=20000, seed=2, level=0.9)
    assert mine == pytest.approx((ref.low, ref.high), abs=0.03)
    assert mine[0] < values.mean() < mine[1]


def test_bootstrap_mean_ci_edge_cases():
    assert cstats.bootstrap_mean_ci([0.4]) == (0.4, 0.4)
    assert all(np.isnan(cstats.bootstrap_mean_ci([])))
    assert cstats.bootstrap_mean_ci([1.0, np.nan, 1.0]) == (1.0, 1.0)  # NaN dropped; no spread, no width
    low, high = cstats.bootstrap_mean_ci([-1.0, -2.0, -0.5, -3.0], n_boot=500, seed=0)
    assert -3.0 <= low <= high <= -0.5  # every resampled mean lies between the extremes


# ---------------------------------------------------------------------------------------------
# the comparison's statistics: bootstrap intervals, the paired t-test, adjusted p-values


def test_bootstrap_interval_matches_scipy_percentile_within_monte_carlo_error():
    stats = pytest.importorskip("scipy.stats")
    x = rng(30).normal(2.0, 1.0, size=30)
    ours = cstats.mean_ci(x[:, None], n_boot=20000, level=0.95, seed=1)
    theirs = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=20000,
        method="percentile",
        confidence_level=0.95,
        random_state=np.random.default_rng(2),
    ).confidence_interval
    # each bound's Monte-Carlo standard error is about 0.0035 here (B = 20,000, n = 30)
    assert abs(ours["ci_low"][0] - theirs.low) < 0.02 and abs(ours["ci_high"][0] - theirs.high) < 0.02
    assert ours["mean"][0] == pytest.approx(x.mean()) and ours["n"][0] == 30


def test_bootstrap_interval_of_a_normal_sample_is_the_textbook_interval():
    x = rng(31).normal(5.0, 2.0, size=400)
    out = cstats.mean_ci(x[:, None], n_boot=4000, level=0.95, seed=0)
    half = 1.959964 * x.std() / np.sqrt(len(x))  # the mean's bootstrap distribution: sd = s (ddof 0) / sqrt(n)
    assert out["ci_low"][0] == pytest.approx(x.mean() - half, abs=0.08 * half)
    assert out["ci_high"][0] == pytest.approx(x.mean() + half, abs=0.08 * half)


def test_bootstrap_covers_the_true_mean_at_about_the_nominal_rate_over_many_columns_at_once():
    # 400 data sets of 60 draws from an exponential (true mean 1), one column each, one call
    x = rng(32).exponential(1.0, size=(60, 400))
    out = cstats.mean_ci(x, n_boot=1000, level=0.9, seed=3)
    covered = np.mean((out["ci_low"] <= 1.0) & (1.0 <= out["ci_high"]))
    assert 0.82 <= covered <= 0.95  # nominal 0.90; the percentile interval undercovers a little on skewed data


def test_bootstrap_columns_share_the_resamples_and_leave_nan_out():
    x = rng(33).normal(size=(25, 4))
    together = cstats.bootstrap_means(x, 300, seed=5)
    assert np.allclose(together[:, 2], cstats.bootstrap_means(x[:, [2]], 300, seed=5)[:, 0])
    counts = np.concatenate(list(cstats.resample_counts(25, 300, seed=5)))
    assert counts.shape == (300, 25) and (counts.sum(axis=1) == 25).all()
    assert np.allclose(together, counts @ x / 25)  # each replicate: the counts-weighted mean
    y = x.copy()
    y[:5, 1] = np.nan
    y[:, 3] = np.nan
    out = cstats.mean_ci(y, n_boot=300, seed=5)
    assert list(out["n"]) == [25, 20, 25, 0]
    assert out["mean"][1] == pytest.approx(np.nanmean(y[:, 1])) and np.isnan(out["mean"][3])
    assert out["ci_low"][1] < out["mean"][1] < out["ci_high"][1] and np.isnan(out["ci_low"][3])
    assert np.allclose(cstats.bootstrap_means(y, 300, seed=5)[:, [0, 2]], together[:, [0, 2]])


def test_paired_t_matches_scipy_ttest_rel():
    stats = pytest.importorskip("scipy.stats")
    r = rng(34)
    a = r.normal(size=(12, 6))
    b = a + r.normal([0, 0.2, 0.5, 1.0, -0.3, 3.0], 1.0, size=(12, 6))
    b[3, 2] = np.nan  # one pair missing: left out, as scipy's nan_policy="omit"
    ours = cstats.paired_t(b - a)
    theirs = stats.ttest_rel(b, a, axis=0, nan_policy="omit")
    assert np.allclose(ours["t"], theirs.statistic, atol=1e-10)
    assert np.allclose(ours["p"], theirs.pvalue, rtol=1e-9, atol=1e-14)
    assert list(ours["df"]) == [11, 11, 10, 11, 11, 11]
    same = cstats.paired_t(np.zeros((6, 2)))  # identical models: no difference, not NaN
    assert list(same["t"]) == [0, 0] and list(same["p"]) == [1, 1]
    assert np.isnan(cstats.paired_t(np.array([[1.0], [np.nan]]))["p"][0])  # one pair: no test


def test_t_distribution_and_incomplete_beta_match_scipy():
    special = pytest.importorskip("scipy.special")
    stats = pytest.importorskip("scipy.stats")
    a = np.array([0.5, 1, 2, 5, 10, 0.5, 2.5, 60])
    b = np.array([0.5, 0.5, 3, 7, 1, 2, 0.5, 0.5])
    x = np.array([0.1, 0.5, 0.9, 0.3, 0.99, 0.7, 1e-4, 0.97])
    assert np.allclose(cstats.betainc(a, b, x), special.betainc(a, b, x), rtol=1e-10, atol=1e-14)
    t = np.array([0.0, 0.1, 1.0, 2.5, 10.0, 50.0, -3.0, np.inf])
    df = np.array([5, 1, 2, 5, 30, 200, 9, 4])
    assert np.allclose(cstats.t_two_sided(t, df), 2 * stats.t.sf(np.abs(t), df), rtol=1e-9, atol=1e-15)


def test_adjusted_p_values_holm_by_hand_and_bh_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04, then running max
    assert np.allclose(cstats.holm(p), [0.03, 0.06, 0.06, 0.02])
    q = rng(35).random(50) ** 3
    assert np.allclose(cstats.benjamini_hochberg(q), stats.false_discovery_control(q), atol=1e-12)
    with_nan = np.array([0.01, np.nan, 0.04])  # NaN is no test: the family has two
    assert np.allclose(cstats.holm(with_nan), [0.02, np.nan, 0.04], equal_nan=True)
    assert np.allclose(cstats.benjamini_hochberg(with_nan), [0.02, np.nan, 0.04], equal_nan=True)


@pytest.mark.parametrize(
    "n,tied", [(6, False), (10, False), (30, False), (80, False), (8, True), (12, True), (30, True)]
)
def test_wilcoxon_signed_rank_matches_scipy(n, tied):
    # exact (no ties, up to 50), every sign pattern (ties or zeros, up to 13), else normal with tie correction
    stats = pytest.importorskip("scipy.stats")
    d = rng(36 + n).normal(0.3, 1.0, size=(n, 5))
    if tied:
        d = np.round(d * 2) / 2  # ties and zero differences
    ours = cstats.wilcoxon_signed_rank(d)
    theirs = stats.wilcoxon(d, axis=0)
    assert np.allclose(ours["statistic"], theirs.statistic) and np.allclose(ours["p"], theirs.pvalue, atol=1e-12)


def test_wilcoxon_on_known_answers():
    # six positive differences: T- = 0, the one pattern of 64 that extreme on each side, p = 2/64
    out = cstats.wilcoxon_signed_rank(
        np.array([[1.0, 0.0, 1.0], [2.0, 0.0, np.nan], [3, 0, np.nan], [4, 0, np.nan], [5, 0, np.nan], [6, 0, np.nan]])
    )
    assert out["statistic"][0] == 0 and out["p"][0] == pytest.approx(2 / 64)
    assert out["p"][1] == 1  # all zero: no difference
    assert out["p"][2] == 1  # one pair: both sign patterns are as extreme
    three = cstats.wilcoxon_signed_rank(np.array([[1.0], [-2.0], [3.0]]))  # T- = 2: sums <= 2 are 0, 1, 2 of 8
    assert three["statistic"][0] == 2 and three["p"][0] == pytest.approx(2 * 3 / 8)


def test_row_ranks_and_pearson_match_scipy_row_by_row():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    values = np.round(rng.random((6, 40)) * 5)  # ties
    mask = rng.random((6, 40)) > 0.25
    other = rng.random((6, 40))
    ranks = cstats.row_ranks(values, mask)
    r = cstats.row_pearson(values, other, mask)
    for k in range(6):
        assert np.allclose(ranks[k][mask[k]] + 1, stats.rankdata(values[k][mask[k]]))  # ranks from 0
        assert np.isclose(r[k], stats.pearsonr(values[k][mask[k]], other[k][mask[k]])[0], atol=1e-12)
    assert np.isnan(cstats.row_pearson(np.ones((1, 4)), other[:1, :4], np.ones((1, 4), bool)))[0]

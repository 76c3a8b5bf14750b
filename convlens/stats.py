"""Statistics shared by the concept packages: correlations, structural similarity, Gaussian blur,
and the model comparison's bootstrap intervals, paired t-test and multiple-comparison adjustment.

Plain numpy, each checked in tests against scipy / scikit-image.
"""

from __future__ import annotations

import warnings
from math import erfc, lgamma

import numpy as np


def ranks(a: np.ndarray) -> np.ndarray:
    """Ranks of the flattened array, ties given their average rank."""
    a = np.asarray(a, dtype=np.float64).ravel()
    order = np.argsort(a, kind="stable")
    _, first, counts = np.unique(a[order], return_index=True, return_counts=True)
    ranks = np.empty(a.size)
    ranks[order] = np.repeat(first + (counts - 1) / 2.0, counts)
    return ranks


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two flattened arrays; NaN if either is constant."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 0 else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps (ties averaged); NaN if either map is constant."""
    return pearson(ranks(a), ranks(b))


def row_ranks(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``ranks`` of each row's masked entries at once (T, N): ties given their average rank, counted
    among the row's masked entries only; entries outside the mask get ranks past them (unused)."""
    v = np.where(mask, values.astype(np.float64), np.inf)
    order = np.argsort(v, axis=1, kind="stable")
    ordered = np.take_along_axis(v, order, axis=1)
    n = v.shape[1]
    index = np.broadcast_to(np.arange(n), v.shape)
    starts = np.ones(v.shape, bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(v.shape, bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, index, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, index, n - 1)[:, ::-1], axis=1)[:, ::-1]
    out = np.empty(v.shape)
    np.put_along_axis(out, order, (first + last) / 2.0, axis=1)
    return out


def row_pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``pearson`` of each row's masked entries at once (T,); NaN where either row is constant there."""
    m = mask.astype(np.float64)
    count = np.maximum(m.sum(axis=1, keepdims=True), 1.0)
    a = (a - (a * m).sum(axis=1, keepdims=True) / count) * m
    b = (b - (b * m).sum(axis=1, keepdims=True) / count) * m
    norm = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (a * b).sum(axis=1) / norm, np.nan)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Structural similarity of two 2-D maps (Wang et al. 2004): Gaussian window (sigma 1.5,
    truncated at 3.5 sigma), K1 0.01, K2 0.03, mean over the interior where the window fits, as
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, use_sample_covariance=False)``.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)

    def smooth(v):
        return gaussian_blur(v, sigma, truncate=3.5)

    ma, mb = smooth(a), smooth(b)
    va, vb, cov = smooth(a * a) - ma * ma, smooth(b * b) - mb * mb, smooth(a * b) - ma * mb
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    pad = int(3.5 * sigma + 0.5)
    inner = s[pad:-pad, pad:-pad] if min(s.shape) > 2 * pad else s
    return float(inner.mean())


def gaussian_blur(
    a: np.ndarray, sigma: float, axes=(0, 1), truncate: float = 4.0, radius: int | None = None, mode: str = "symmetric"
) -> np.ndarray:
    """Separable Gaussian filter over ``axes``. Taps out to ``radius`` (default ``truncate`` sigmas);
    edges padded by ``np.pad`` ``mode`` ("symmetric" is scipy.ndimage's "reflect")."""
    out = np.asarray(a, dtype=np.float64)
    if sigma <= 0:
        return out
    radius = int(truncate * sigma + 0.5) if radius is None else radius
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis in axes:
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode=mode)
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(taps))
    return out


def bootstrap_mean_ci(values, n_boot: int = 10000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values`` (1-D, NaNs dropped): the
    one-group case of ``mean_ci`` (the same seeded resamples). One value gives (v, v); none gives
    (NaN, NaN)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    ci = mean_ci(v[:, None], n_boot=n_boot, level=level, seed=seed)
    return float(ci["ci_low"][0]), float(ci["ci_high"][0])


# ---------------------------------------------------------------------------------------------
# Uncertainty of means over images, paired tests and multiple-comparison adjustment (the model
# comparison). Every function takes a matrix (n_images, n_groups) with NaN where a value is missing,
# so one call handles every transform × layer × metric group at once.

BOOT_CHUNK = 256  # bootstrap resamples per matrix product (bounds the memory: chunk × n_images counts)


def resample_counts(n: int, n_boot: int, seed: int, chunk: int = BOOT_CHUNK):
    """Bootstrap resamples of ``n`` items as counts: yields (b, n) float64 arrays, b <= chunk, whose
    row i counts how often each item was drawn in resample i (n draws with replacement; each row sums
    to n). The same ``n``, ``n_boot`` and ``seed`` give the same resamples, whatever the groups."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        drawn = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(drawn.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def bootstrap_means(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Means of each column over bootstrap resamples of the rows: (n_boot, G) from (n, G).

    Rows (images) are resampled once per replicate and the same resample serves every column, as a
    matrix product of the resample counts with the values. NaN values are left out of their column's
    mean (the mean of the drawn rows that have a value); a replicate that drew none of them is NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    n, g = values.shape
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0.0)
    partial = ~finite.all(axis=0)
    out = np.empty((n_boot, g))
    row = 0
    for counts in resample_counts(n, n_boot, seed):
        sums = counts @ filled
        drawn = np.full(sums.shape, float(n))
        if partial.any():
            drawn[:, partial] = counts @ finite[:, partial].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[row : row + len(counts)] = np.where(drawn > 0, sums / np.maximum(drawn, 1), np.nan)
        row += len(counts)
    return out


def percentile_interval(boot: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The percentile bootstrap interval of each column of (n_boot, G) replicates (linear
    interpolation between order statistics, as ``scipy.stats.bootstrap(method='percentile')``).
    NaN replicates are left out; a column with none is NaN."""
    alpha = (1 - level) / 2
    boot = np.asarray(boot, dtype=np.float64)
    if np.isnan(boot).any():
        with warnings.catch_warnings():  # an all-NaN column is NaN, without a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanquantile(boot, [alpha, 1 - alpha], axis=0)
        return lo, hi
    lo, hi = np.quantile(boot, [alpha, 1 - alpha], axis=0)
    return lo, hi


def column_means(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the finite values of each column of (n, G) and their count (NaN mean for none)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.where(finite, values, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
    return mean, count


def mean_ci(values: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, np.ndarray]:
    """Per column of (n, G): the mean, the percentile bootstrap interval of the mean (rows resampled,
    seeded) and the number of finite values: ``{"mean", "ci_low", "ci_high", "n"}``."""
    mean, count = column_means(values)
    lo, hi = percentile_interval(bootstrap_means(values, n_boot, seed), level)
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "n": count}


def betainc(a, b, x) -> np.ndarray:
    """The regularized incomplete beta function I_x(a, b), elementwise (continued fraction, modified
    Lentz; Numerical Recipes 6.4), to about 1e-12 for the moderate a, b of the tests here."""
    a, b, x = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, x)))
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(x) & (a > 0) & (b > 0) & (x >= 0) & (x <= 1)
    out[ok & (x == 0)] = 0.0
    out[ok & (x == 1)] = 1.0
    inner = ok & (x > 0) & (x < 1)
    if not inner.any():
        return out
    a, b, x = a[inner], b[inner], x[inner]
    flip = x > (a + 1) / (a + b + 2)  # the fraction converges fast below this point; use symmetry above
    a, b, x = np.where(flip, b, a), np.where(flip, a, b), np.where(flip, 1 - x, x)
    lg = np.vectorize(lgamma)
    front = np.exp(lg(a + b) - lg(a) - lg(b) + a * np.log(x) + b * np.log1p(-x)) / a
    tiny = 1e-300
    c = np.ones_like(x)
    d = 1 - (a + b) * x / (a + 1)
    d = 1 / np.where(np.abs(d) < tiny, tiny, d)
    f = d.copy()
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / np.where(np.abs(d) < tiny, tiny, d)
            c = 1 + numerator / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            f = f * c * d
        if np.all(np.abs(c * d - 1) < 1e-15):
            break
    value = front * f
    out[inner] = np.where(flip, 1 - value, value)
    return out


def t_two_sided(t, df) -> np.ndarray:
    """Two-sided p-value of Student's t: P(|T| >= |t|) with ``df`` degrees of freedom,
    I_{df/(df+t²)}(df/2, 1/2). An infinite t gives 0."""
    t, df = np.broadcast_arrays(np.asarray(t, np.float64), np.asarray(df, np.float64))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        x = df / (df + t * t)
    p = betainc(df / 2, 0.5, np.where(np.isinf(t), 0.0, x))
    return np.where(np.isnan(t) | ~(df > 0), np.nan, p)


def paired_t(differences: np.ndarray) -> dict[str, np.ndarray]:
    """The paired t-test of each column of (n, G) paired differences (NaN pairs left out): t, df
    and the two-sided p-value, as ``scipy.stats.ttest_rel`` on the two samples. A column whose
    differences are all zero gets t = 0 and p = 1 (no difference; scipy gives NaN); one with fewer
    than two pairs gets NaN."""
    d = np.asarray(differences, dtype=np.float64)
    mean, n = column_means(d)
    finite = np.isfinite(d)
    centred = np.where(finite, d - mean, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt((centred**2).sum(axis=0) / (n - 1))
        t = mean / (sd / np.sqrt(n))
    t = np.where((sd == 0) & (mean == 0), 0.0, t)
    t = np.where(n < 2, np.nan, t)
    p = t_two_sided(t, n - 1)
    return {"t": t, "df": (n - 1).astype(np.float64), "p": p}


EXACT_TIED_MAX = 13  # signed ranks with ties or zeros: every sign pattern enumerated up to this many pairs
EXACT_MAX = 50  # without ties: the exact distribution (by counting) up to this many pairs


def wilcoxon_signed_rank(differences: np.ndarray) -> dict[str, np.ndarray]:
    """The Wilcoxon signed-rank test of each column of (n, G) paired differences (NaN pairs and zero
    differences left out, ties given their average rank): the statistic min(T+, T−) and the
    two-sided p-value, chosen as ``scipy.stats.wilcoxon``'s default does. Exact for up to 50 pairs
    without ties; with ties, every sign pattern enumerated for up to 13 pairs; otherwise the normal
    approximation with the tie correction and no continuity correction. A column whose differences
    are all zero gets p = 1; one with no pair NaN."""
    d = np.asarray(differences, dtype=np.float64)
    stat, p = np.full(d.shape[1], np.nan), np.full(d.shape[1], np.nan)
    for j in range(d.shape[1]):
        column = d[np.isfinite(d[:, j]), j]
        if not len(column):
            continue
        nonzero = column[column != 0]
        n = len(nonzero)
        if n == 0:
            stat[j], p[j] = 0.0, 1.0
            continue
        r = ranks(np.abs(nonzero)) + 1  # 1-based, ties averaged
        plus = r[nonzero > 0].sum()
        total = n * (n + 1) / 2
        stat[j] = min(plus, total - plus)
        tied = len(np.unique(r)) < n or n < len(column)
        if not tied and n <= EXACT_MAX:
            counts = _signed_rank_counts(n)
            p[j] = min(1.0, 2 * counts[: int(stat[j]) + 1].sum() / counts.sum())
        elif tied and n <= EXACT_TIED_MAX:
            signs = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
            plus_all = signs @ r
            low = np.minimum(plus_all, total - plus_all)
            p[j] = min(1.0, float(np.mean(low <= stat[j] + 1e-9)))
        else:
            _, tie_counts = np.unique(r, return_counts=True)
            var = n * (n + 1) * (2 * n + 1) / 24 - (tie_counts**3 - tie_counts).sum() / 48
            z = (stat[j] - total / 2) / np.sqrt(var)
            p[j] = min(1.0, erfc(abs(z) / np.sqrt(2)))
    return {"statistic": stat, "p": p}


def _signed_rank_counts(n: int) -> np.ndarray:
    """How many of the 2^n sign patterns of the ranks 1..n give each rank sum T+ = 0..n(n+1)/2."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()
    return counts


TEST_NAMES = {"t": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}


def paired_test(differences: np.ndarray, test: str = "t") -> dict[str, np.ndarray]:
    """The ``statistic`` and two-sided ``p`` of each column of (n, G) paired differences:
    ``t`` (``paired_t``) or ``wilcoxon`` (``wilcoxon_signed_rank``)."""
    if test == "t":
        result = paired_t(differences)
        return {"statistic": result["t"], "p": result["p"]}
    return wilcoxon_signed_rank(differences)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error); NaN entries are not counted as tests."""
    return _adjust(p, "holm")


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (false discovery rate; valid for independent or
    positively dependent tests); NaN entries are not counted as tests."""
    return _adjust(p, "bh")


ADJUSTMENTS = {"holm": holm, "bh": benjamini_hochberg}


def _adjust(p: np.ndarray, how: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order]
    if how == "holm":
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    else:
        adjusted = np.minimum.accumulate(np.minimum(1.0, m * ranked / np.arange(1, m + 1))[::-1])[::-1]
    out[order] = adjusted
    return out

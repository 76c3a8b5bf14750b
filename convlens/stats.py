"""Statistics shared by the concept packages: correlations, structural similarity, Gaussian blur and
a bootstrap interval of a mean.

Plain numpy, each checked in tests against scipy / scikit-image.
"""

from __future__ import annotations

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
    s = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
    pad = int(3.5 * sigma + 0.5)
    inner = s[pad:-pad, pad:-pad] if min(s.shape) > 2 * pad else s
    return float(inner.mean())


def gaussian_blur(a: np.ndarray, sigma: float, axes=(0, 1), truncate: float = 4.0, radius: int | None = None,
                  mode: str = "symmetric") -> np.ndarray:
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
    """Percentile bootstrap confidence interval of the mean of ``values`` (1-D, NaNs dropped).

    ``n_boot`` resamples of len(values) drawn with replacement by ``np.random.default_rng(seed)``
    (one ``integers(0, n, (n_boot, n))`` call); the interval is the (1 - level) / 2 and
    (1 + level) / 2 quantiles of their means (numpy's default linear interpolation). As
    ``scipy.stats.bootstrap(..., method="percentile")``, with a reproducible draw. One value gives
    (v, v); none gives (NaN, NaN).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, v.size, (n_boot, v.size))
    low, high = np.quantile(v[idx].mean(axis=1), [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)

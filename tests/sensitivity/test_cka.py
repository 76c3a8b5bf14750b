"""Linear CKA by the unbiased minibatch estimator: against independent direct computations."""

import numpy as np
import pytest

from convlens.sensitivity import cka


def hsic1_loops(K, L):
    """Song et al. (2012) eq. 5, written out with explicit sums over index tuples (no shared code)."""
    n = len(K)
    Kt = [[0.0 if i == j else float(K[i][j]) for j in range(n)] for i in range(n)]
    Lt = [[0.0 if i == j else float(L[i][j]) for j in range(n)] for i in range(n)]
    tr = sum(Kt[i][j] * Lt[j][i] for i in range(n) for j in range(n))
    sk = sum(map(sum, Kt))
    sl = sum(map(sum, Lt))
    kl1 = sum(Kt[i][j] * Lt[j][m] for i in range(n) for j in range(n) for m in range(n))
    return (tr + sk * sl / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * kl1) / (n * (n - 3))


def cka_biased(X, Y):
    """Kornblith et al. (2019): centred features, ||YᵀX||_F² / (||XᵀX||_F ||YᵀY||_F)."""
    X = X - X.mean(axis=0)
    Y = Y - Y.mean(axis=0)
    return np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))


def features(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_hsic1_equals_the_direct_sum():
    X, Y = features(7, 5, 0), features(7, 3, 1)
    K, L = X @ X.T, Y @ Y.T
    assert cka.hsic1(K, L) == pytest.approx(hsic1_loops(K, L), rel=1e-10)
    assert cka.hsic1(K, K) == pytest.approx(hsic1_loops(K, K), rel=1e-10)


def test_hsic1_ignores_a_shift_shared_by_the_images():
    """What lets the step subtract each block's first image before its Gram (float32 precision)."""
    X, Y = features(6, 5, 12), features(6, 3, 13)
    Xs, Ys = X - X[0] + 50.0, Y - Y[0] - 20.0
    assert cka.hsic1(Xs @ Xs.T, Ys @ Ys.T) == pytest.approx(hsic1_loops(X @ X.T, Y @ Y.T), rel=1e-8)


def test_hsic1_is_unbiased_against_the_population_value():
    """X ~ N(0, I_d), Y = X A: the expected HSIC_1 is the population HSIC ||Σ_xy||_F² = ||A||_F²."""
    rng = np.random.default_rng(3)
    A = rng.normal(size=(3, 2))
    values = []
    for _ in range(4000):
        X = rng.normal(size=(6, 3))
        Y = X @ A
        values.append(cka.hsic1(X @ X.T, Y @ Y.T))
    assert np.mean(values) == pytest.approx(np.sum(A**2), rel=0.05)


def test_minibatch_cka_approaches_the_biased_cka_as_n_grows():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2000, 6))
    Y = np.tanh(X @ rng.normal(size=(6, 4))) + 0.5 * rng.normal(size=(2000, 4))
    grams = [(X[i : i + 200] @ X[i : i + 200].T, Y[i : i + 200] @ Y[i : i + 200].T) for i in range(0, 2000, 200)]
    kl, kk, ll = (np.array(v) for v in zip(*[cka.minibatch_hsic(K, L) for K, L in grams], strict=True))
    assert cka.cka_minibatch(kl, kk, ll) == pytest.approx(cka_biased(X, Y), abs=0.03)


def test_streaming_equals_one_pass_over_the_minibatches():
    """Per-minibatch sums accumulated in two pieces (two shards) give the same CKA as all at once."""
    X, Y = features(40, 9, 5), features(40, 9, 6)
    triples = [
        cka.minibatch_hsic(X[i : i + 8] @ X[i : i + 8].T, Y[i : i + 8] @ Y[i : i + 8].T) for i in range(0, 40, 8)
    ]
    kl, kk, ll = (np.array(v) for v in zip(*triples, strict=True))
    whole = cka.cka_minibatch(kl, kk, ll)
    first, second = (np.array([t[0] for t in triples[:2]]), np.array([t[0] for t in triples[2:]]))
    sums = [np.sum(v[:2]) + np.sum(v[2:]) for v in (kl, kk, ll)]
    assert cka.ratio(*sums) == pytest.approx(whole, rel=1e-12)
    assert first.sum() + second.sum() == pytest.approx(kl.sum(), rel=1e-12)
    expected = np.mean(kl) / np.sqrt(np.mean(kk) * np.mean(ll))  # the definition, by hand
    assert whole == pytest.approx(expected, rel=1e-12)


def test_cka_of_features_with_themselves_and_an_orthogonal_scaled_copy_is_one():
    X = features(32, 10, 7)
    Q, _ = np.linalg.qr(np.random.default_rng(8).normal(size=(10, 10)))
    Y = 3.7 * X @ Q
    for other in (X, Y):
        triples = [
            cka.minibatch_hsic(X[i : i + 8] @ X[i : i + 8].T, other[i : i + 8] @ other[i : i + 8].T)
            for i in range(0, 32, 8)
        ]
        kl, kk, ll = (np.array(v) for v in zip(*triples, strict=True))
        assert cka.cka_minibatch(kl, kk, ll) == pytest.approx(1.0, abs=1e-10)


def test_bootstrap_resamples_minibatches():
    rng = np.random.default_rng(9)
    kl, kk, ll = rng.random((12, 2)) + 0.5, rng.random((12, 2)) + 1.0, rng.random((12, 2)) + 1.0
    value, low, high = cka.bootstrap_cka(kl, kk, ll, n_boot=500, seed=1, level=0.9)
    assert np.allclose(value, kl.mean(0) / np.sqrt(kk.mean(0) * ll.mean(0)))
    assert np.all(low < value) and np.all(value < high)
    again = cka.bootstrap_cka(kl, kk, ll, n_boot=500, seed=1, level=0.9)
    assert np.array_equal(again[1], low) and np.array_equal(again[2], high)
    one = cka.bootstrap_cka(kl[:1], kk[:1], ll[:1], n_boot=50, seed=1, level=0.9)
    assert np.allclose(one[1], one[0]) and np.allclose(one[2], one[0])


def test_chunk_hsic_cuts_minibatches_and_drops_a_last_one_under_four():
    rng = np.random.default_rng(10)
    n_images, b, T = 13, 4, 3  # blocks of 4, 4, 4 and a last one of 1 image (dropped)
    maps = rng.normal(size=(n_images, T, 5))
    padded = np.concatenate([maps, np.zeros((3, T, 5))]).reshape(4, b, T, 5)
    grams = [np.einsum("kitd,kjtd->ktij", padded, padded)]
    hsic, refs, parts = cka.chunk_hsic(grams, n_images)
    assert hsic.shape == (3, 3, 1, T) and [p.start for p in parts] == [0, 4, 8]
    X, Y = maps[4:8, 0], maps[4:8, 2]
    assert hsic[1, 0, 0, 2] == pytest.approx(hsic1_loops(X @ X.T, Y @ Y.T), rel=1e-10)
    assert hsic[1, 2, 0, 2] == pytest.approx(hsic1_loops(Y @ Y.T, Y @ Y.T), rel=1e-10)
    assert np.allclose(refs[2, 0], maps[8:12, 0] @ maps[8:12, 0].T)


def test_cross_cka_equals_the_direct_ratio_per_layer_pair():
    rng = np.random.default_rng(11)
    sizes = np.array([6, 6, 5])
    a = [rng.normal(size=(17, 4)), rng.normal(size=(17, 3))]
    b = [a[0] @ rng.normal(size=(4, 4)), rng.normal(size=(17, 2))]

    def grams(feats):
        out = np.full((3, 6, 6), np.nan)
        starts = [0, 6, 12]
        for m, (s, n) in enumerate(zip(starts, sizes, strict=True)):
            out[m, :n, :n] = feats[s : s + n] @ feats[s : s + n].T
        return out

    got = cka.cross_cka([grams(f) for f in a], [grams(f) for f in b], sizes)
    for i in range(2):
        for j in range(2):
            parts = [(0, 6), (6, 12), (12, 17)]
            kl = sum(hsic1_loops(a[i][s:e] @ a[i][s:e].T, b[j][s:e] @ b[j][s:e].T) for s, e in parts)
            kk = sum(hsic1_loops(a[i][s:e] @ a[i][s:e].T, a[i][s:e] @ a[i][s:e].T) for s, e in parts)
            ll = sum(hsic1_loops(b[j][s:e] @ b[j][s:e].T, b[j][s:e] @ b[j][s:e].T) for s, e in parts)
            assert got[i, j] == pytest.approx(kl / np.sqrt(kk * ll), rel=1e-9)


def test_hsic1_refuses_fewer_than_four_images():
    with pytest.raises(ValueError, match="at least 4"):
        cka.hsic1(np.eye(3), np.eye(3))

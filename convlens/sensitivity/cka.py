"""Linear CKA (Kornblith et al. 2019) by the unbiased minibatch estimator (Nguyen, Raghu & Kornblith
2021), so it streams over shards.

Features are each image's flattened map (h·w·c). Over a minibatch of n images, K = X Xᵀ and L = Y Yᵀ
are the n × n Grams; HSIC_1 (Song et al. 2012) is the unbiased HSIC of a minibatch; and

    CKA = mean_k HSIC_1(K_k, L_k) / sqrt(mean_k HSIC_1(K_k, K_k) · mean_k HSIC_1(L_k, L_k))

over the minibatches k. A measure job keeps, per layer × transform × minibatch, the three HSIC_1
values (``minibatch_hsic``) and the reference images' Gram (for CKA between models' layers); the
sums reduce over shards. The interval resamples whole minibatches with replacement (``bootstrap_cka``).

``block_grams`` is the one part that runs inside the compiled model step (TensorFlow).
"""

from __future__ import annotations

import numpy as np

from convlens.stats import percentile_interval, resample_counts

MIN_IMAGES = 4  # HSIC_1 needs n >= 4


def chunk_images(per_call: int, block: int) -> int:
    """Images per model call when CKA minibatches of ``block`` images are cut inside each call: a
    multiple of ``block`` (at least one minibatch), so a minibatch never straddles two calls."""
    return max(block, per_call // block * block)


def step_outputs(acts, group: int, block: int | None) -> dict:
    """What the compiled step adds for CKA: {"grams": ``block_grams``} with a block size, else nothing."""
    return {"grams": block_grams(acts, group, block)} if block else {}


def block_grams(acts, group: int, block: int):
    """Inside a compiled step: per layer the Grams of consecutive blocks of ``block`` images, for
    each of the ``group`` rows (transforms) of an image-major batch (B = images × group, row 0 the
    reference). Returns per layer (blocks, group, block, block) float32; a last block with fewer
    images is padded with zero maps (cut off again by ``chunk_hsic``). Each block's maps are shifted
    by the block's first image, per transform (HSIC_1 of linear kernels is unchanged by a shift
    shared by the images, and ReLU maps share a large mean that float32 Grams would otherwise cancel
    badly). Per image and transform it costs ``block`` dot products of its flattened map, about
    ``block`` elementwise passes over the map: less than a 3×3 conv layer over the same map."""
    import tensorflow as tf

    grams = []
    for a in acts:
        d = int(np.prod(a.shape[1:]))
        flat = tf.reshape(tf.cast(a, tf.float32), (-1, group, d))
        pad = (-tf.shape(flat)[0]) % block
        flat = tf.pad(flat, [[0, pad], [0, 0], [0, 0]])
        blocks = tf.reshape(flat, (-1, block, group, d))
        blocks = blocks - blocks[:, :1]  # HSIC_1 ignores a shared shift; without it float32 cancels
        grams.append(tf.einsum("kitd,kjtd->ktij", blocks, blocks))
    return grams


def hsic1(K: np.ndarray, L: np.ndarray) -> np.ndarray:
    """The unbiased HSIC estimator of Song et al. (2012) of Grams (..., n, n), n >= 4, in float64:
    with K̃, L̃ the Grams with zeroed diagonals,
    [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3))."""
    K = np.array(K, dtype=np.float64)
    L = np.array(L, dtype=np.float64)
    n = K.shape[-1]
    if n < MIN_IMAGES:
        raise ValueError(f"HSIC_1 needs at least {MIN_IMAGES} images, got {n}")
    diagonal = np.eye(n, dtype=bool)
    K[..., diagonal] = 0.0
    L[..., diagonal] = 0.0
    k1, l1 = K.sum(axis=-1), L.sum(axis=-1)  # K̃1, L̃1 (symmetric Grams)
    trace = (K * L).sum(axis=(-2, -1))
    middle = k1.sum(axis=-1) * l1.sum(axis=-1) / ((n - 1) * (n - 2))
    last = 2.0 / (n - 2) * (k1 * l1).sum(axis=-1)
    return (trace + middle - last) / (n * (n - 3))


def minibatch_hsic(K: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HSIC_1(K, L), HSIC_1(K, K), HSIC_1(L, L) of Grams (..., n, n) (broadcast to one shape)."""
    K, L = np.broadcast_arrays(K, L)
    return hsic1(K, L), hsic1(K, K), hsic1(L, L)


def ratio(kl, kk, ll) -> np.ndarray:
    """CKA from summed (or averaged) HSIC_1 values: kl / sqrt(kk · ll); NaN where a Gram is null."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(kl, np.float64) / np.sqrt(np.asarray(kk, np.float64) * np.asarray(ll, np.float64))


def cka_minibatch(kl: np.ndarray, kk: np.ndarray, ll: np.ndarray) -> np.ndarray:
    """CKA of the minibatch estimator from per-minibatch HSIC_1 values (M, ...): the ratio of means."""
    return ratio(np.mean(kl, axis=0), np.mean(kk, axis=0), np.mean(ll, axis=0))


def bootstrap_cka(
    kl: np.ndarray, kk: np.ndarray, ll: np.ndarray, n_boot: int, seed: int, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CKA and its percentile bootstrap interval per column of (M, G) per-minibatch HSIC_1 values.

    What is resampled: the M minibatches (each a fixed set of images), with replacement, the same
    resample for every column (``stats.resample_counts``); each replicate recomputes the ratio of the
    resampled means. One minibatch gives a zero-width interval."""
    kl, kk, ll = (np.asarray(v, np.float64).reshape(len(v), -1) for v in (kl, kk, ll))
    boot = []
    for counts in resample_counts(len(kl), n_boot, seed):
        boot.append(ratio(counts @ kl, counts @ kk, counts @ ll))
    low, high = percentile_interval(np.concatenate(boot), level)
    return cka_minibatch(kl, kk, ll), low, high


def chunk_hsic(grams: list[np.ndarray], n_images: int) -> tuple[np.ndarray, np.ndarray, list[slice]]:
    """The HSIC_1 triples of a model call's minibatches from ``block_grams``' output.

    grams: per layer (blocks, T, b, b); n_images: the call's images (the last block may be short).
    Returns hsic (M, 3, layers, T) — kl, kk, ll of reference vs each transform — the reference Grams
    (M, layers, b, b) (NaN-padded for a short minibatch) and each minibatch's slice of the images.
    A last minibatch of fewer than 4 images is left out (HSIC_1 is undefined there)."""
    if not grams:
        return np.zeros((0, 3, 0, 0)), np.zeros((0, 0, 0, 0)), []
    b = grams[0].shape[-1]
    hsic, refs, parts = [], [], []
    for k in range(grams[0].shape[0]):
        n = min(b, n_images - k * b)
        if n < MIN_IMAGES:
            continue
        per_layer = []
        ref = np.full((len(grams), b, b), np.nan)
        for j, g in enumerate(grams):
            block = np.asarray(g[k, :, :n, :n], np.float64)  # (T, n, n)
            per_layer.append(minibatch_hsic(block[:1], block))  # reference row vs every row
            ref[j, :n, :n] = block[0]
        hsic.append(np.stack([np.stack(v) for v in zip(*per_layer, strict=True)]))  # (3, layers, T)
        refs.append(ref)
        parts.append(slice(k * b, k * b + n))
    if not hsic:
        return np.zeros((0, 3, len(grams), grams[0].shape[1])), np.zeros((0, len(grams), b, b)), []
    return np.stack(hsic), np.stack(refs), parts


def cross_cka(grams_a: list[np.ndarray], grams_b: list[np.ndarray], sizes: np.ndarray) -> np.ndarray:
    """Layer × layer CKA between two models from their reference Grams of the same minibatches:
    grams_a[i] (M, b, b) per layer of model a (NaN-padded), sizes (M,) the images per minibatch.
    Returns (layers of a, layers of b)."""
    out = np.zeros((len(grams_a), len(grams_b)))
    kl = np.zeros_like(out)
    kk, ll = np.zeros(len(grams_a)), np.zeros(len(grams_b))
    for m, n in enumerate(sizes):
        a = np.stack([g[m, :n, :n] for g in grams_a])  # (La, n, n)
        b = np.stack([g[m, :n, :n] for g in grams_b])
        kk += hsic1(a, a)
        ll += hsic1(b, b)
        kl += hsic1(a[:, None], b[None, :])
    out[:] = ratio(kl, kk[:, None], ll[None, :])
    return out

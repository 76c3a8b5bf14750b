"""Perturbations (attribution.perturbations): the copies the batched passes feed the model."""

import numpy as np
import pytest

from convlens.attribution.perturbations import Noise, Ordered, Patches, Path, Stack, baseline_image, starts
from convlens.errors import InputError


def test_patch_starts_reach_the_border():
    assert starts(6, 3, 2) == [0, 2, 3]
    assert starts(8, 4, 4) == [0, 4]
    assert starts(5, 5, 2) == [0]


def test_baseline_kinds():
    x = np.random.default_rng(0).random((2, 4, 5, 3)).astype("float32")
    assert np.array_equal(baseline_image(x, "black"), np.zeros_like(x))
    assert np.array_equal(baseline_image(x, "white"), np.ones_like(x))
    assert np.array_equal(baseline_image(x, 0.3), np.full_like(x, 0.3))
    noise = baseline_image(x, "noise", seed=4)
    assert noise.dtype == x.dtype and np.array_equal(noise, baseline_image(x, "noise", seed=4))
    assert not np.array_equal(noise, baseline_image(x, "noise", seed=5))
    with pytest.raises(InputError, match="baseline: 'grey'"):
        baseline_image(x, "grey")


def test_copies_made_in_chunks_equal_all_at_once():
    x = np.random.default_rng(1).random((3, 6, 6, 2)).astype("float32")
    ranks = np.random.default_rng(2).permutation(36).reshape(1, 6, 6).repeat(3, 0)
    for p in (
        Stack([x, 1 - x]),
        Noise(x, 0.1, 5, seed=3),
        Path(x, np.zeros_like(x), 4),
        Patches(x, 3, 2, 0.5),
        Ordered(x, np.zeros_like(x), ranks, np.array([0, 10, 36])),
    ):
        whole = p.inputs(slice(0, 3), np.arange(p.count))
        assert whole.shape == (3, p.count, 6, 6, 2)
        parts = np.concatenate(
            [np.concatenate([p.inputs(slice(b, b + 1), np.array([i])) for i in range(p.count)], 1) for b in range(3)]
        )
        assert np.array_equal(parts, whole), type(p).__name__
    path = Path(x, np.zeros_like(x), 4).inputs(slice(0, 3), np.arange(4))
    assert np.allclose(path, x[:, None] * np.array([0.125, 0.375, 0.625, 0.875])[None, :, None, None, None])
    ordered = Ordered(x, np.zeros_like(x), ranks, np.array([0, 10, 36])).inputs(slice(0, 3), np.arange(3))
    assert np.array_equal(ordered[:, 0], x) and not ordered[:, 2].any()
    assert np.array_equal(ordered[:, 1], np.where((ranks < 10)[..., None], 0.0, x))  # the first 10 pixels replaced

"""Occlusion (attribution.occlusion) against the hand-computed drop of a linear model's score."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens.attribution import Explainer  # noqa: E402
from tests.helpers import images, linear_model  # noqa: E402


def test_occlusion_of_a_linear_model_is_the_hand_computed_drop():
    model, w, b = linear_model(shape=(6, 6, 1), classes=2, seed=4)
    x = images((2, 6, 6, 1), seed=9)
    targets = np.array([1, 0])
    params = {"occlusion": {"patch": 3, "stride": 2, "fill": 0.25}}
    res = Explainer(model, ["occlusion"], params=params).explain(x, targets)["occlusion"]
    corners = [(r, c) for r in (0, 2, 3) for c in (0, 2, 3)]  # the last patch reaches the border
    total, covered = np.zeros((2, 6, 6)), np.zeros((6, 6))
    for j, (r, c) in enumerate(corners):
        occluded = x.copy()
        occluded[:, r : r + 3, c : c + 3] = 0.25
        drop = np.einsum("bn,bn->b", (x - occluded).reshape(2, -1), w[:, targets].T)
        assert np.allclose(res.raw[:, j // 3, j % 3], drop, atol=1e-5)
        total[:, r : r + 3, c : c + 3] += drop[:, None, None]
        covered[r : r + 3, c : c + 3] += 1
    assert np.allclose(res.maps, total / covered, atol=1e-5)
    assert res.signed

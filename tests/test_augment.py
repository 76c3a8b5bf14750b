"""Training augmentation: the random warps' matrices, the warped batches, the per-epoch batches."""

import numpy as np
import pytest

from convlens import augment, transforms
from convlens.augment import Augment


def test_matrices_equal_the_composed_transforms():
    rng = np.random.default_rng(0)
    aug = Augment(shift_px=3, rotate_deg=40, scale=(0.8, 1.3), hflip=True, vflip=True)
    params = aug.draw(rng, 16)
    got = augment.matrices(params, 20, 28)
    for i in range(16):
        m = transforms.forward_matrix("shift", {"dx": params["dx"][i], "dy": params["dy"][i]}, 20, 28)
        m = m @ transforms.forward_matrix("rotate", {"angle_deg": params["angle"][i]}, 20, 28)
        m = m @ transforms.forward_matrix("scale", {"factor": params["factor"][i]}, 20, 28)
        if params["fx"][i] < 0:
            m = m @ transforms.forward_matrix("hflip", {}, 20, 28)
        if params["fy"][i] < 0:
            m = m @ transforms.forward_matrix("vflip", {}, 20, 28)
        np.testing.assert_allclose(got[i], m, atol=1e-12)
    assert set(np.unique(params["fx"])) == {-1.0, 1.0} and set(np.unique(params["dx"])) <= set(range(-3, 4))
    assert np.all(np.abs(params["angle"]) <= 40) and np.all((params["factor"] >= 0.8) & (params["factor"] <= 1.3))


def shifted(image, dx, dy):
    """``image`` moved dx right and dy down on a black canvas (numpy, the known answer)."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def test_whole_pixel_shifts_and_flips_are_exact():
    pytest.importorskip("keras")
    images = np.random.default_rng(1).random((12, 9, 11, 3)).astype("float32")
    aug = Augment(shift_px=2, hflip=True)
    got = augment.augment_batch(images, aug, np.random.default_rng(5))
    params = aug.draw(np.random.default_rng(5), 12)
    for i in range(12):
        src = images[i][:, ::-1] if params["fx"][i] < 0 else images[i]
        np.testing.assert_allclose(got[i], shifted(src, int(params["dx"][i]), int(params["dy"][i])), atol=1e-6)


def test_batches_cover_each_image_once_per_epoch_deterministically():
    pytest.importorskip("keras")
    x = np.random.default_rng(2).random((10, 8, 8, 1)).astype("float32")
    y = np.arange(10)
    aug = Augment(rotate_deg=30)
    one = augment.batches(x, y, 4, aug, seed=7, prepare=lambda b: b * 2)
    two = augment.batches(x, y, 4, aug, seed=7)
    assert len(one) == 3
    first = [one[i] for i in range(3)]
    assert sorted(np.concatenate([b[1] for b in first]).tolist()) == list(range(10))
    for (xb, yb), i in zip(first, range(3), strict=False):
        np.testing.assert_allclose(xb, 2 * two[i][0])  # the same draw for the same (seed, epoch, batch)
        assert np.array_equal(yb, two[i][1])
    one.on_epoch_end()
    again = [one[i] for i in range(3)]
    assert sorted(np.concatenate([b[1] for b in again]).tolist()) == list(range(10))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=False))  # a new order each epoch

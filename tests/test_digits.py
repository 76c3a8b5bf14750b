"""The embedded digits dataset (scikit-learn's load_digits, upscaled to MNIST's layout)."""

import numpy as np
import pytest

from convlens import data, models

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    return data.make_digits(seed=4)


def test_shape_range_labels_and_split(digits):
    from sklearn.datasets import load_digits

    assert digits.x_train.shape == (1258, 28, 28, 1) and digits.x_test.shape == (539, 28, 28, 1)
    assert digits.x_train.dtype == np.uint8 and digits.y_train.dtype == np.int64
    assert data.split_sizes({"kind": "digits", "test_fraction": 0.3}) == (1258, 539)
    assert digits.class_names == [str(d) for d in range(10)]
    counts = np.bincount(np.concatenate([digits.y_train, digits.y_test]))
    assert counts.tolist() == list(data.DIGITS_CLASS_COUNTS) == np.bincount(load_digits().target).tolist()
    assert np.bincount(digits.y_test).tolist() == data.digits_test_counts(0.3)
    assert digits.y_test[:20].tolist() == list(range(10)) * 2  # the first 10k test images: k of each digit
    every = np.concatenate([digits.x_train, digits.x_test])
    assert every.max() == 255 and every.min() == 0
    # MNIST's layout: the digit fills a centred 20x20 box, the 4-pixel border is black
    assert every[:, :4].max() == 0 and every[:, -4:].max() == 0 and every[:, :, :4].max() == 0
    assert every[:, 4:24, 4:24].reshape(len(every), -1).max(axis=1).min() > 100


def test_each_image_is_its_8x8_source_upscaled(digits):
    """Average 2.5x2.5-pixel blocks of the 20x20 box back down to 8x8: close to the source (0-16 scaled)."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    source = raw.images * 255 / 16
    # find each test image's source by its nearest downsampled match; it must be one with its label
    box = digits.x_test[:30, 4:24, 4:24, 0].astype(np.float64)
    fine = np.repeat(np.repeat(box, 2, axis=1), 2, axis=2)  # 40x40, so 5x5 blocks make 8x8
    small = fine.reshape(30, 8, 5, 8, 5).mean(axis=(2, 4))
    dist = ((small[:, None] - source[None]) ** 2).mean(axis=(2, 3))
    nearest = dist.argmin(axis=1)
    assert np.array_equal(raw.target[nearest], digits.y_test[:30])
    assert np.sqrt(dist.min(axis=1)).max() < 30  # RMS in 0-255 grey levels (block means of a bicubic upscale)


def test_deterministic_in_the_seed(digits):
    again = data.make_digits(seed=4)
    other = data.make_digits(seed=5)
    assert np.array_equal(again.x_train, digits.x_train) and np.array_equal(again.y_test, digits.y_test)
    assert not np.array_equal(other.x_train, digits.x_train)
    assert data.build_dataset({"kind": "digits", "image_size": 28, "test_fraction": 0.3}, 4).x_test.shape == (
        539,
        28,
        28,
        1,
    )


@pytest.mark.slow
def test_mnist_cnn_learns_digits_quickly(digits):
    pytest.importorskip("keras")
    spec = {
        "source": "train",
        "architecture": "mnist_cnn",
        "epochs": 3,
        "batch_size": 32,
        "learning_rate": 0.001,
        "validation_fraction": 0.15,
    }
    _, history, metrics = models.train(spec, digits, seed=0)
    assert metrics["test_accuracy"] > 0.8, metrics["test_accuracy"]  # chance is 0.1
    assert len(history) == 3

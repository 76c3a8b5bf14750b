"""The model head (logits and probabilities whatever the last layer does), preprocessing, and the
classes each row explains (core.head)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens.core.head import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_MEAN_BGR,
    IMAGENET_STD,
    TARGET_PREDICTED,
    TARGET_REFERENCE,
    Head,
    preprocess,
    resolve_targets,
)
from convlens.errors import InputError  # noqa: E402
from convlens.sensitivity.analyzer import Analyzer  # noqa: E402


@pytest.mark.parametrize("activation,units", [(None, 3), ("sigmoid", 1)])
def test_heads_without_softmax_give_probabilities(activation, units):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 1))
    y = keras.layers.Conv2D(2, 3, activation="relu", name="conv")(inputs)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(inputs, keras.layers.Dense(units, activation=activation, name="out")(y))
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    out = Analyzer(model, ["conv"], "unit").run(x, 1)
    raw = model.predict(x, verbose=0)
    if activation is None:  # the outputs are logits
        expected = np.exp(raw) / np.exp(raw).sum(-1, keepdims=True)
    else:  # one sigmoid unit: [1 - p, p]
        expected = np.concatenate([1 - raw, raw], axis=-1)
    assert np.allclose(out["probs"], expected, atol=1e-5)


def test_unsupported_head_is_named():
    inputs = keras.Input((8, 8, 1))
    y = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="tanh", name="out")(y))
    with pytest.raises(InputError, match="activation 'tanh'"):
        Head(model)


@pytest.mark.parametrize("group", [1, 2, 4])
def test_resolve_targets_matches_numpy(group):
    """TARGET_PREDICTED: the row's own top class; TARGET_REFERENCE: the top class of the first row of
    the row's group; a class index: itself. On numpy arrays, as on tensors."""
    logits = np.random.default_rng(7).normal(size=(8, 5)).astype("float32")
    codes = np.array(
        [TARGET_REFERENCE, TARGET_PREDICTED, 3, TARGET_REFERENCE, 0, TARGET_PREDICTED, 4, TARGET_REFERENCE]
    )
    reference = np.repeat(logits[::group].argmax(-1), group)
    want = np.where(codes == TARGET_REFERENCE, reference, np.where(codes == TARGET_PREDICTED, logits.argmax(-1), codes))
    assert np.asarray(resolve_targets(logits, codes, group)).tolist() == want.tolist()
    for code, expected in ((TARGET_REFERENCE, reference), (TARGET_PREDICTED, logits.argmax(-1)), (2, np.full(8, 2))):
        assert np.asarray(resolve_targets(logits, np.full(8, code), group)).tolist() == expected.tolist()
    assert reference.tolist() != logits.argmax(-1).tolist() or group == 1  # the case is not trivial


def test_preprocess_modes_against_their_formulas():
    x = np.random.default_rng(8).random((2, 3, 4, 3)).astype("float32")
    assert np.array_equal(np.asarray(preprocess(x, "unit")), x)
    assert np.allclose(preprocess(x, "raw255"), x * 255, atol=1e-4)
    assert np.allclose(preprocess(x, "tf"), 2 * x - 1, atol=1e-6)
    assert np.allclose(preprocess(x, "caffe"), x[..., ::-1] * 255 - np.array(IMAGENET_MEAN_BGR), atol=1e-3)
    assert np.allclose(preprocess(x, "torch"), (x - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD), atol=1e-5)
    with pytest.raises(InputError, match="3-channel"):
        preprocess(x[..., :1], "caffe")
    with pytest.raises(ValueError, match="unknown preprocess mode"):
        preprocess(x, "imagenet")

"""Feature-visualization objectives (featviz.objectives) against hand-computed pre-activations and logits."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import featviz  # noqa: E402
from tests.helpers import c4_pre_activation, gap_logits  # noqa: E402


def test_objective_values_equal_hand_computed_pre_activations(cnn):
    images = np.random.default_rng(1).random((3, 32, 32, 3)).astype("float32")
    pre = c4_pre_activation(cnn, images)
    chans = [0, 5, 31]
    channel = featviz.objective_values(cnn, "c4", chans, images, "unit", "channel")
    neuron = featviz.objective_values(cnn, "c4", chans, images, "unit", "neuron")
    cls = featviz.objective_values(cnn, None, [4, 0, 2], images, "unit", "class")
    for i, c in enumerate(chans):
        assert np.isclose(channel[i], pre[i, 2:-2, 2:-2, c].mean(), atol=1e-5)  # 16x16 map: border 2 left out
        assert np.isclose(neuron[i], pre[i, 8, 8, c], atol=1e-5)
    assert np.allclose(cls, gap_logits(cnn, images)[np.arange(3), [4, 0, 2]], atol=1e-5)


def test_bad_objectives_are_named(cnn):
    x = np.random.default_rng(2).random((1, 32, 32, 3)).astype("float32")
    with pytest.raises(ValueError, match="unknown objective 'pixel'"):
        featviz.objective_values(cnn, "c4", [0], x, "unit", "pixel")
    with pytest.raises(ValueError, match="layer_path=None"):
        featviz.objective_values(cnn, "c4", [0], x, "unit", "class")
    with pytest.raises(ValueError, match="needs a layer_path"):
        featviz.objective_values(cnn, None, [0], x, "unit", "channel")

"""The study's batched model step (sensitivity.analyzer): maps, scores and equivariance sums in one call."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import models  # noqa: E402
from convlens import transforms as tr  # noqa: E402
from convlens.core.grids import layer_grids  # noqa: E402
from convlens.core.layers import feature_layers  # noqa: E402
from convlens.sensitivity import metrics as sensitivity  # noqa: E402
from convlens.sensitivity.analyzer import Analyzer  # noqa: E402


def test_the_step_gives_the_numpy_layer_stats_of_image_major_batches():
    """Two images x four transforms through Analyzer(samplers=...) as analyze_shard runs it: the maps
    equal a Keras submodel's, and num, den and pooled equal the numpy reference image by image."""
    keras.utils.set_random_seed(8)
    model = models.build_shapes_cnn((28, 28, 3), 3)
    layers = feature_layers(model)
    transforms = tr.build_transforms(
        [{"kind": "rotate", "angle_deg": 90}, {"kind": "shift", "dx": 3, "dy": -1}, {"kind": "rotate", "angle_deg": 20}]
    )
    st = sensitivity.Study.build(transforms, 28, 28, layers, layer_grids(model, layers), "constant", 0.0)
    pixels = np.random.default_rng(9).random((2, 28, 28, 3)).astype("float32")
    n_t = len(transforms)
    x = np.asarray(tr.warp(np.repeat(pixels, n_t, 0), np.tile(st.matrices, (2, 1, 1))))
    out = Analyzer(model, layers, "unit", samplers=st.samplers).run(x, n_t)
    assert sorted(out) == ["activations", "den", "logits", "num", "pooled", "probs"]
    sub = keras.Model(model.inputs[0], [model.get_layer(n).output for n in layers])
    for got, want in zip(out["activations"], sub.predict(x, verbose=0), strict=False):
        assert np.allclose(got, want, atol=1e-5)
    for i in range(2):
        rows = slice(i * n_t, (i + 1) * n_t)
        reference = sensitivity.layer_stats(st, [a[rows] for a in out["activations"]])
        for part in ("num", "den", "pooled"):
            for got, want in zip(out[part], getattr(reference, part), strict=False):
                assert np.allclose(got[rows], want, rtol=1e-4, atol=1e-6 * max(1.0, float(np.abs(want).max()))), part
        assert all(num[rows][0] == 0 for num in out["num"])  # the identity row: exactly no error
    plain = Analyzer(model, layers[:2], "unit").run(x, n_t)
    assert sorted(plain) == ["activations", "logits", "probs"] and len(plain["activations"]) == 2
    assert np.allclose(plain["probs"], out["probs"], atol=1e-6)

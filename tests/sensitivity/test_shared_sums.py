"""The compiled step's sums with the ladder (``analyzer.step_sums``: one gather of the expected map for
num, den and every rung) equal the separate computations bit for bit: ``equivariance_sums`` and
``ladder.ladder_sums`` (itself checked against numpy in test_ladder)."""

import numpy as np
import pytest

from convlens.sensitivity import ladder

keras = pytest.importorskip("keras")

from convlens.sensitivity.analyzer import equivariance_sums, step_sums  # noqa: E402
from tests.sensitivity.test_ladder import GEOMETRIC, SIZE, conv_pool_model, fit, maps_of, study_of  # noqa: E402


def test_shared_gathers_give_the_same_sums_as_the_separate_ones():
    import tensorflow as tf

    rng = np.random.default_rng(3)
    model = conv_pool_model(rng.normal(size=(3, 3, 1, 6)), rng.normal(scale=0.1, size=6))
    transforms = [{"kind": "brightness", "delta": 0.1}, *GEOMETRIC[:3], {"kind": "shift", "dx": 1, "dy": 2}]
    transforms.append({"kind": "rotate", "angle_deg": 15})  # bilinear: several weighted gathers
    study, _ = study_of(model, transforms)
    pixels = rng.random((3, SIZE, SIZE, 1)).astype("float32")
    out, _ = maps_of(model, study, pixels)
    n_t = len(study.transforms)
    maps = fit(study, out["activations"], 2)
    acts = [tf.constant(a) for a in out["activations"]]
    rungs = ("perm", "linear")
    shared = step_sums(acts, study.samplers, n_t, ladder.Ladder(maps, rungs))
    num, den, pooled = equivariance_sums(acts, study.samplers, n_t)
    separate = ladder.ladder_sums(acts, study.samplers, n_t, maps, rungs)
    for j in range(len(acts)):
        np.testing.assert_array_equal(np.asarray(shared["num"][j]), np.asarray(num[j]))
        np.testing.assert_array_equal(np.asarray(shared["den"][j]), np.asarray(den[j]))
        np.testing.assert_array_equal(np.asarray(shared["pooled"][j]), np.asarray(pooled[j]))
        for r in rungs:
            np.testing.assert_array_equal(np.asarray(shared[f"num_{r}"][j]), np.asarray(separate[r][j]))
            assert np.asarray(shared[f"num_{r}"][j]).shape == (len(pixels) * n_t,)
    assert np.asarray(shared["num_perm"][0]).max() > 0  # not all zero: the check compares real numbers
    assert set(step_sums(acts, study.samplers, n_t)) == {"num", "den", "pooled"}

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


def square_constants(graph_def, c: int) -> int:
    """How many Const nodes of a traced graph hold a c × c tensor."""
    count = 0
    for node in graph_def.node:
        if node.op == "Const":
            dims = [d.size for d in node.attr["value"].tensor.tensor_shape.dim]
            count += dims == [c, c]
    return count


def test_linear_maps_are_variables_not_constants_of_the_traced_graph():
    """The fitted C×C maps reach the compiled step as variables, not as constants written into the
    traced graph (whose size is capped at 2 GB: a deep model's maps per layer × transform exceed it);
    the values equal those of the maps as constants (``ladder_sums``)."""
    import tensorflow as tf

    rng = np.random.default_rng(4)
    model = conv_pool_model(rng.normal(size=(3, 3, 1, 6)), rng.normal(scale=0.1, size=6))
    study, _ = study_of(model, GEOMETRIC[:2])
    pixels = rng.random((2, SIZE, SIZE, 1)).astype("float32")
    out, _ = maps_of(model, study, pixels)
    n_t = len(study.transforms)
    maps = fit(study, out["activations"], 2)
    acts = [tf.constant(a) for a in out["activations"]]
    lad = ladder.Ladder(maps, ("linear",))
    step = tf.function(lambda *a: step_sums(list(a), study.samplers, n_t, lad))
    constants = tf.function(lambda *a: ladder.ladder_sums(list(a), study.samplers, n_t, maps, ("linear",)))
    c = maps.weight[0].shape[-1]
    assert c == 6 and square_constants(step.get_concrete_function(*acts).graph.as_graph_def(), c) == 0
    assert square_constants(constants.get_concrete_function(*acts).graph.as_graph_def(), c) > 0  # the premise
    assert lad._weights  # the maps became variables (created once, outside the trace)
    result, separate = step(*acts), constants(*acts)
    for j in range(len(acts)):
        np.testing.assert_allclose(np.asarray(result["num_linear"][j]), np.asarray(separate["linear"][j]), rtol=1e-6)

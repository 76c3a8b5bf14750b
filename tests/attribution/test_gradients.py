"""Gradient methods (attribution.gradients) against hand-computed gradients (TensorFlow, CPU, tiny models)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens.attribution import Explainer  # noqa: E402
from convlens.attribution.perturbations import baseline_image  # noqa: E402
from tests.helpers import gap_model, images, linear_model, logits_of, rng  # noqa: E402


def test_saliency_and_smoothgrad_of_a_linear_model_are_the_class_weights():
    model, w, _ = linear_model()
    x = images((2, 4, 4, 2))
    out = Explainer(model, ["saliency", "smoothgrad"], params={"smoothgrad": {"samples": 4}}).explain(
        x, np.array([0, 2])
    )
    for b, c in enumerate((0, 2)):
        weight = w[:, c].reshape(4, 4, 2)
        for name in ("saliency", "smoothgrad"):
            assert np.allclose(out[name].raw[b], weight, atol=1e-6)
            assert np.allclose(out[name].maps[b], np.abs(weight).max(-1), atol=1e-6)
    assert not out["saliency"].signed


def test_without_relu_guided_backprop_and_deconvnet_are_the_gradient():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((3, 3, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(5, activation="tanh"),
            keras.layers.Dense(3),
        ]
    )
    x = images((2, 3, 3, 2), seed=1)
    targets = np.array([1, 2])
    import tensorflow as tf

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        chosen = tf.gather(model(xt), targets, batch_dims=1)
    expected = tape.gradient(chosen, xt).numpy()
    out = Explainer(model, ["saliency", "guided_backprop", "deconvnet"]).explain(x, targets)
    for name in out:
        assert np.allclose(out[name].raw, expected, atol=1e-6), name


@pytest.mark.parametrize("relu_as", ["activation", "relu_layer", "activation_layer"])
def test_guided_backprop_and_deconvnet_of_one_hidden_relu_layer_by_hand(relu_as):
    """h = ReLU(x W1 + b1), logits = h W2 + b2. The signal reaching the ReLU is R = W2[:, c]:
    gradient W1 (R * [z > 0]); guided W1 (R * [z > 0] * [R > 0]); deconvnet W1 ReLU(R)."""
    r = rng(3)
    w1, b1 = r.normal(size=(9, 6)).astype("float32"), r.normal(size=6).astype("float32")
    w2, b2 = r.normal(size=(6, 3)).astype("float32"), r.normal(size=3).astype("float32")
    inputs = keras.Input((3, 3, 1))
    flat = keras.layers.Flatten()(inputs)
    if relu_as == "activation":
        hidden = keras.layers.Dense(6, activation="relu", name="hidden")(flat)
    else:
        z = keras.layers.Dense(6, name="hidden")(flat)
        hidden = keras.layers.ReLU()(z) if relu_as == "relu_layer" else keras.layers.Activation("relu")(z)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(hidden))
    if relu_as == "relu_layer":  # the same network as a Sequential model
        model = keras.Sequential([keras.Input((3, 3, 1))] + model.layers[1:])
    model.get_layer("hidden").set_weights([w1, b1])
    model.get_layer("out").set_weights([w2, b2])
    x = images((4, 3, 3, 1), seed=4)
    targets = np.array([0, 1, 2, 0])
    out = Explainer(model, ["saliency", "guided_backprop", "deconvnet"]).explain(x, targets)
    z = x.reshape(4, 9) @ w1 + b1
    signal = w2[:, targets].T  # (B, 6)
    expected = {
        "saliency": (signal * (z > 0)) @ w1.T,
        "guided_backprop": (signal * (z > 0) * (signal > 0)) @ w1.T,
        "deconvnet": np.maximum(signal, 0) @ w1.T,
    }
    assert not np.allclose(expected["guided_backprop"], expected["saliency"])  # the case is not trivial
    for name, want in expected.items():
        assert np.allclose(out[name].raw.reshape(4, 9), want, atol=1e-5), name


@pytest.mark.parametrize("baseline", ["black", 0.3, "blur", "noise"])
def test_integrated_gradients_sum_to_the_score_difference(baseline):
    """Completeness: sum of the attributions = f(x) - f(x') for the target's logit; the midpoint
    rule's error on a ReLU network (kinks along the path) is well under 1 % with 512 steps."""
    model = gap_model(shape=(8, 8, 3), filters=4, classes=3)
    head = model.get_layer("head")
    head.set_weights([20 * head.get_weights()[0], head.get_weights()[1]])  # logits of order 1-10
    x = images((2, 8, 8, 3), seed=5)
    targets = np.array([2, 1])
    params = {"steps": 512, "baseline": baseline, "blur_sigma": 2.0, "seed": 3}
    res = Explainer(model, ["integrated_gradients"], params={"integrated_gradients": params}).explain(x, targets)
    reference = baseline_image(x, baseline, blur_sigma=2.0, seed=3)
    gain = logits_of(model, x)[[0, 1], targets] - logits_of(model, reference)[[0, 1], targets]
    total = res["integrated_gradients"].maps.sum(axis=(1, 2))
    assert res["integrated_gradients"].signed
    assert np.abs(gain).min() > 0.2  # something to attribute
    assert np.allclose(total, gain, rtol=5e-3, atol=1e-4)
    assert np.allclose(res["integrated_gradients"].info["delta"], total - gain, atol=1e-4)


def test_the_completeness_delta_costs_its_passes_only_when_read(monkeypatch):
    """IG's info["delta"] needs two more forward passes per image: made when read, once, not in explain()."""
    model = gap_model(shape=(8, 8, 3), filters=4, classes=3)
    x = images((2, 8, 8, 3), seed=5)
    explainer = Explainer(model, ["integrated_gradients"], params={"integrated_gradients": {"steps": 4}})
    calls = []
    scores = explainer.scores
    monkeypatch.setattr(explainer, "scores", lambda *a, **k: calls.append(1) or scores(*a, **k))
    info = explainer.explain(x, np.array([2, 1]))["integrated_gradients"].info
    assert calls == [] and list(info) == ["delta"]
    first = info["delta"]
    assert calls == [1] and info["delta"] is first and first.shape == (2,)

"""Probes (core.graph): one forward pass gives the chosen layers' maps and the head, nested models included."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import models  # noqa: E402
from convlens.attribution import Explainer  # noqa: E402
from convlens.core.head import TARGET_PREDICTED, TARGET_REFERENCE, resolve_targets  # noqa: E402
from convlens.core.layers import feature_layers, last_conv_layer  # noqa: E402
from convlens.errors import InputError  # noqa: E402
from convlens.sensitivity.analyzer import Analyzer  # noqa: E402
from tests.helpers import nested_classifier  # noqa: E402


def test_activations_equal_a_keras_submodel_and_targets_follow_the_reference():
    keras.utils.set_random_seed(0)
    model = models.build_shapes_cnn((28, 28, 3), 3)
    layers = feature_layers(model)
    assert layers == [
        "block1_conv1",
        "block1_conv2",
        "block1_pool",
        "block2_conv1",
        "block2_conv2",
        "block2_pool",
        "block3_conv1",
        "block3_conv2",
    ]
    x = np.random.default_rng(0).random((6, 28, 28, 3)).astype("float32")
    out = Analyzer(model, layers, "unit").run(x, group=3)
    sub = keras.Model(model.inputs, [model.get_layer(n).output for n in layers])
    for got, want in zip(out["activations"], sub.predict(x, verbose=0), strict=False):
        assert np.allclose(got, want, atol=1e-5)
    assert np.allclose(out["probs"], model.predict(x, verbose=0), atol=1e-5)
    codes = np.full(6, TARGET_REFERENCE)
    target = np.asarray(resolve_targets(out["logits"], codes, 3))
    ref = out["probs"].reshape(2, 3, 3)[:, 0].argmax(-1)
    assert target.tolist() == np.repeat(ref, 3).tolist()
    explainer = Explainer(model, ["gradcam"], "unit", last_conv_layer(model))
    assert explainer.resolve_targets(x, codes, 3)[0].tolist() == target.tolist()
    cam_up = explainer.explain(x, codes, group=3)["gradcam"].maps
    assert cam_up.shape == (6, 28, 28) and np.all(cam_up >= -1e-6)


def test_nested_model_is_probed_through_the_base():
    keras.utils.set_random_seed(1)
    model = nested_classifier()
    layers = feature_layers(model)
    assert layers == ["base/c1", "base/p1", "base/c2"]
    assert last_conv_layer(model) == "base/c2"
    x = np.random.default_rng(3).random((2, 16, 16, 3)).astype("float32")
    out = Analyzer(model, layers, "unit").run(x, 1)
    base = model.layers[0]
    inner = keras.Model(base.inputs, [base.get_layer(n).output for n in ("c1", "p1", "c2")])
    for got, want in zip(out["activations"], inner.predict(x, verbose=0), strict=False):
        assert np.allclose(got, want, atol=1e-5)
    assert np.allclose(out["probs"], model.predict(x, verbose=0), atol=1e-5)
    cam = Explainer(model, ["gradcam"], "unit", "base/c2").explain(x, np.array([0, 1]))["gradcam"].raw
    assert cam.shape == (2, 8, 8)


@pytest.mark.slow  # a full-size keras.applications model
def test_keras_application_without_weights_runs_the_large_model_path():
    spec = {
        "source": "load",
        "application": "MobileNetV2",
        "weights": None,
        "input_size": 64,
        "classes": 4,
        "preprocess": "auto",
    }
    model = models.load(spec)
    assert models.resolve_preprocess(spec) == "tf"
    layers = feature_layers(model)
    assert len(layers) > 30
    x = np.random.default_rng(0).random((2, 64, 64, 3)).astype("float32")
    out = Analyzer(model, layers[:3], "tf").run(x, group=1)
    assert out["probs"].shape == (2, 4) and np.allclose(out["probs"].sum(-1), 1, atol=1e-5)
    cam_up = (
        Explainer(model, ["gradcam"], "tf", last_conv_layer(model))
        .explain(x, np.full(2, TARGET_PREDICTED))["gradcam"]
        .maps
    )
    assert cam_up.shape == (2, 64, 64)
    with pytest.raises(InputError, match="not a keras.applications model"):
        models.load({**spec, "application": "NoSuchNet"})


def test_functional_classifier_around_a_nested_base():
    """The transfer-learning layout: inputs -> base(inputs) -> pooling -> softmax, all functional."""
    keras.utils.set_random_seed(4)
    base = nested_classifier().layers[0]
    inputs = keras.Input((16, 16, 3))
    features = keras.layers.GlobalAveragePooling2D()(base(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(features))
    layers = feature_layers(model)
    assert layers == ["base/c1", "base/p1", "base/c2"]
    x = np.random.default_rng(5).random((2, 16, 16, 3)).astype("float32")
    out = Analyzer(model, layers, "unit").run(x, 1)
    inner = keras.Model(base.inputs, [base.get_layer(n).output for n in ("c1", "p1", "c2")])
    for got, want in zip(out["activations"], inner.predict(x, verbose=0), strict=False):
        assert np.allclose(got, want, atol=1e-5)
    assert np.allclose(out["probs"], model.predict(x, verbose=0), atol=1e-5)


def test_probe_returns_the_layers_the_head_input_and_the_output():
    """build_probe's outputs in order: the chosen layers, the CAM layer, the head's input, the final
    output, the inputs of the ``inputs_of`` layers; linear_copy gives the head's pre-softmax logits."""
    from convlens.core.graph import INPUT_SUFFIX, build_probe, linear_copy, trace

    keras.utils.set_random_seed(2)
    model = nested_classifier()
    x = np.random.default_rng(6).random((3, 16, 16, 3)).astype("float32")
    c1, c2, pre, out, head_in = (
        np.asarray(t) for t in build_probe(model, ["base/c1"], "base/c2", inputs_of=("head",))(x)
    )
    base = model.layers[0]
    want_c1, want_c2 = keras.Model(base.inputs[0], [base.get_layer("c1").output, base.get_layer("c2").output])(x)
    assert np.allclose(c1, want_c1, atol=1e-5) and np.allclose(c2, want_c2, atol=1e-5)
    assert np.allclose(pre, c2.mean(axis=(1, 2)), atol=1e-5) and np.allclose(head_in, pre)
    assert np.allclose(out, model.predict(x, verbose=0), atol=1e-5)
    head = model.get_layer("head")
    w, b = head.get_weights()
    logits = np.asarray(linear_copy(head)(pre))
    assert np.allclose(logits, pre @ w + b, atol=1e-5)
    assert np.allclose(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), out, atol=1e-5)
    found = {}
    trace(model, keras.Input((16, 16, 3)), {"base/p1", "head" + INPUT_SUFFIX}, found)
    assert tuple(found["base/p1"].shape[1:]) == (8, 8, 4) and tuple(found["head" + INPUT_SUFFIX].shape[1:]) == (6,)
    with pytest.raises(InputError, match="base/nope"):
        build_probe(model, ["base/nope"], None)

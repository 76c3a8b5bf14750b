"""Model-side computations against known answers (TensorFlow, CPU)."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import backend, models  # noqa: E402
from convlens.errors import InputError  # noqa: E402


def tiny_gap_model(seed=0):
    """Input (4, 4, 2) -> 1x1 conv (3 filters, ReLU) -> global average pooling -> dense softmax (2)."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((4, 4, 2))
    a = keras.layers.Conv2D(3, 1, activation="relu", use_bias=False, name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(a)
    out = keras.layers.Dense(2, activation="softmax", name="predictions")(pooled)
    model = keras.Model(inputs, out)
    k = rng.normal(size=(1, 1, 2, 3)).astype("float32")
    w = rng.normal(size=(3, 2)).astype("float32")
    b = rng.normal(size=(2,)).astype("float32")
    model.get_layer("conv").set_weights([k])
    model.get_layer("predictions").set_weights([w, b])
    return model, k, w, b


def test_gradcam_equals_hand_computation():
    model, k, w, b = tiny_gap_model()
    x = np.random.default_rng(1).random((2, 4, 4, 2)).astype("float32")
    analyzer = backend.Analyzer(model, ["conv"], "conv", "unit", score="logit")
    for cls in (0, 1):
        out = analyzer.run(x, np.full(2, cls), group=1)
        acts = np.maximum(np.einsum("bhwc,cf->bhwf", x, k[0, 0]), 0)  # (B, 4, 4, 3)
        alpha = w[:, cls] / 16.0  # d logit_c / d A_k(i, j) = W[k, c] / (h * w) through GAP
        expected = np.maximum((acts * alpha).sum(-1), 0)
        assert np.allclose(out["cam"], expected, atol=1e-6)
        assert np.allclose(out["activations"][0], acts, atol=1e-6)
    logits = acts.mean(axis=(1, 2)) @ w + b
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert np.allclose(out["probs"], probs, atol=1e-6)


def test_gradcam_of_probability_score_differs_by_softmax_derivative():
    model, k, w, b = tiny_gap_model(seed=3)
    x = np.random.default_rng(2).random((1, 4, 4, 2)).astype("float32")
    out = backend.Analyzer(model, ["conv"], "conv", "unit", score="probability").run(x, np.array([0]), 1)
    acts = np.maximum(np.einsum("bhwc,cf->bhwf", x, k[0, 0]), 0)
    logits = acts.mean(axis=(1, 2)) @ w + b
    p = np.exp(logits) / np.exp(logits).sum()
    # dp0/dA_k = p0 * (W[k,0] - sum_j p_j W[k,j]) / 16
    alpha = p[0, 0] * (w[:, 0] - (p[0] * w).sum(-1)) / 16.0
    assert np.allclose(out["cam"], np.maximum((acts * alpha).sum(-1), 0), atol=1e-6)


def test_activations_equal_a_keras_submodel_and_targets_follow_the_reference():
    keras.utils.set_random_seed(0)
    model = models.build_shapes_cnn((28, 28, 3), 3)
    layers = backend.feature_layers(model)
    assert layers == ["block1_conv1", "block1_conv2", "block1_pool", "block2_conv1", "block2_conv2",
                      "block2_pool", "block3_conv1", "block3_conv2"]
    x = np.random.default_rng(0).random((6, 28, 28, 3)).astype("float32")
    out = backend.Analyzer(model, layers, backend.last_conv_layer(model), "unit").run(
        x, np.full(6, backend.TARGET_REFERENCE), group=3)
    sub = keras.Model(model.inputs, [model.get_layer(n).output for n in layers])
    for got, want in zip(out["activations"], sub.predict(x, verbose=0)):
        assert np.allclose(got, want, atol=1e-5)
    assert np.allclose(out["probs"], model.predict(x, verbose=0), atol=1e-5)
    ref = out["probs"].reshape(2, 3, 3)[:, 0].argmax(-1)
    assert out["target"].tolist() == np.repeat(ref, 3).tolist()
    assert out["cam_up"].shape == (6, 28, 28) and np.all(out["cam_up"] >= -1e-6)


def nested_classifier():
    base_in = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(base_in)
    y = keras.layers.MaxPooling2D(name="p1")(y)
    y = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2")(y)
    base = keras.Model(base_in, y, name="base")
    return keras.Sequential([keras.Input((16, 16, 3)), base, keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(3, activation="softmax", name="head")])


def test_nested_model_is_probed_through_the_base():
    keras.utils.set_random_seed(1)
    model = nested_classifier()
    layers = backend.feature_layers(model)
    assert layers == ["base/c1", "base/p1", "base/c2"]
    assert backend.last_conv_layer(model) == "base/c2"
    x = np.random.default_rng(3).random((2, 16, 16, 3)).astype("float32")
    out = backend.Analyzer(model, layers, "base/c2", "unit").run(x, np.array([0, 1]), 1)
    base = model.layers[0]
    inner = keras.Model(base.inputs, [base.get_layer(n).output for n in ("c1", "p1", "c2")])
    for got, want in zip(out["activations"], inner.predict(x, verbose=0)):
        assert np.allclose(got, want, atol=1e-5)
    assert np.allclose(out["probs"], model.predict(x, verbose=0), atol=1e-5)
    assert out["cam"].shape == (2, 8, 8)


def test_filter_patterns_raise_their_filters_activation():
    keras.utils.set_random_seed(2)
    model = models.build_shapes_cnn((28, 28, 3), 3)
    res = backend.filter_patterns(model, "block2_conv1", [0, 1, 2, 3], (28, 28, 3), "unit", steps=15,
                                  step_size=0.02, seed=0)
    assert res["images"].shape == (4, 28, 28, 3)
    assert np.all(res["objective_end"] > res["objective_start"])


def test_safe_mode_refuses_a_lambda_layer(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(InputError, match="safe mode"):
        models.load({"path": str(tmp_path / "lambda.keras")})


def test_keras_application_without_weights_runs_the_large_model_path():
    spec = {"source": "load", "application": "MobileNetV2", "weights": None, "input_size": 64, "classes": 4,
            "preprocess": "auto"}
    model = models.load(spec)
    assert models.resolve_preprocess(spec) == "tf"
    layers = backend.feature_layers(model)
    assert len(layers) > 30
    x = np.random.default_rng(0).random((2, 64, 64, 3)).astype("float32")
    out = backend.Analyzer(model, layers[:3], backend.last_conv_layer(model), "tf").run(
        x, np.full(2, backend.TARGET_PREDICTED), group=1)
    assert out["probs"].shape == (2, 4) and np.allclose(out["probs"].sum(-1), 1, atol=1e-5)
    assert out["cam_up"].shape == (2, 64, 64)
    with pytest.raises(InputError, match="not a keras.applications model"):
        models.load({**spec, "application": "NoSuchNet"})


def test_functional_classifier_around_a_nested_base():
    """The transfer-learning layout: inputs -> base(inputs) -> pooling -> softmax, all functional."""
    keras.utils.set_random_seed(4)
    base = nested_classifier().layers[0]
    inputs = keras.Input((16, 16, 3))
    features = keras.layers.GlobalAveragePooling2D()(base(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(features))
    layers = backend.feature_layers(model)
    assert layers == ["base/c1", "base/p1", "base/c2"]
    x = np.random.default_rng(5).random((2, 16, 16, 3)).astype("float32")
    out = backend.Analyzer(model, layers, "base/c2", "unit").run(x, np.array([2, 2]), 1)
    inner = keras.Model(base.inputs, [base.get_layer(n).output for n in ("c1", "p1", "c2")])
    for got, want in zip(out["activations"], inner.predict(x, verbose=0)):
        assert np.allclose(got, want, atol=1e-5)
    assert np.allclose(out["probs"], model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("activation,units", [(None, 3), ("sigmoid", 1)])
def test_heads_without_softmax_give_probabilities(activation, units):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 1))
    y = keras.layers.Conv2D(2, 3, activation="relu", name="conv")(inputs)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(inputs, keras.layers.Dense(units, activation=activation, name="out")(y))
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    out = backend.Analyzer(model, ["conv"], "conv", "unit").run(x, np.full(4, backend.TARGET_PREDICTED), 1)
    raw = model.predict(x, verbose=0)
    if activation is None:  # the outputs are logits
        expected = np.exp(raw) / np.exp(raw).sum(-1, keepdims=True)
    else:  # one sigmoid unit: [1 - p, p]
        expected = np.concatenate([1 - raw, raw], axis=-1)
    assert np.allclose(out["probs"], expected, atol=1e-5)


def test_unsupported_head_and_non_spatial_gradcam_layer_are_named():
    inputs = keras.Input((8, 8, 1))
    y = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="tanh", name="out")(y))
    with pytest.raises(InputError, match="activation 'tanh'"):
        backend.Head(model)
    with pytest.raises(InputError, match="config.heatmaps.layer: layer 'out' outputs shape"):
        backend.check_spatial(model, "out", "config.heatmaps.layer")


def test_filter_patterns_on_small_maps_and_silent_filters():
    keras.utils.set_random_seed(2)
    model = models.build_shapes_cnn((32, 32, 3), 3)
    res = backend.filter_patterns(model, "block3_conv2", [0, 1, 2], (32, 32, 3), "unit", steps=10,
                                  step_size=0.02, seed=0)  # block3 maps are 8x8: no border crop
    assert np.isfinite(res["objective_end"]).all()
    assert np.all(res["objective_end"] > res["objective_start"])


def test_filter_patterns_at_a_smaller_size_than_the_input():
    keras.utils.set_random_seed(6)
    model = models.build_shapes_cnn((48, 48, 3), 3)  # the Dense head needs 48x48; patterns at 24x24
    res = backend.filter_patterns(model, "block2_conv2", [0, 1], (24, 24, 3), "unit", steps=5,
                                  step_size=0.02, seed=0)
    assert res["images"].shape == (2, 24, 24, 3)
    assert np.all(res["objective_end"] > res["objective_start"])
    # the probe stops at the wanted layer input: the 48x48-only head is never built
    probe = backend.build_probe(model, [], None, inputs_of=("block2_conv2",), input_shape=(24, 24, 3))
    assert tuple(probe.outputs[0].shape[1:]) == (12, 12, 64)  # block2_conv1 output, 24 px halved once


@pytest.mark.parametrize("nested", [False, True])
def test_mixed_precision_gives_the_float32_answers_within_float16_rounding(nested):
    from convlens import attribution

    keras.utils.set_random_seed(4)
    model = nested_classifier() if nested else models.build_shapes_cnn((16, 16, 3), 3)
    layers = backend.feature_layers(model)
    cam_layer = backend.last_conv_layer(model)
    x = np.random.default_rng(5).random((4, 16, 16, 3)).astype("float32")
    targets = np.full(4, backend.TARGET_REFERENCE)
    full = backend.Analyzer(model, layers, cam_layer, "unit").run(x, targets, 2)
    methods = [] if nested else list(attribution.METHODS)
    params = {"smoothgrad": {"samples": 3}, "integrated_gradients": {"steps": 4}, "occlusion": {"patch": 4, "stride": 4}}

    def explained():
        return attribution.Explainer(model, methods, "unit", cam_layer, "logit", params, 32).explain(x, targets, 2)

    full_maps = explained()
    changed = backend.use_mixed_precision(model)
    computing = [layer for _, layer in backend.iter_layers(model) if not isinstance(layer, keras.layers.InputLayer)]
    assert changed == len(computing) - 1  # all but the output layer
    assert model.layers[-1].dtype_policy.name == "float32" and model.layers[-1].compute_dtype == "float32"
    mixed = backend.Analyzer(model, layers, cam_layer, "unit").run(x, targets, 2)
    for got, want in zip(mixed["activations"], full["activations"]):
        assert got.dtype == np.float32
        assert np.abs(got - want).max() <= 1e-2 * max(1.0, np.abs(want).max())
    assert mixed["probs"].dtype == np.float32 and np.allclose(mixed["probs"], full["probs"], atol=1e-2)
    assert mixed["target"].tolist() == full["target"].tolist()
    for a, b in zip(mixed["cam_up"], full["cam_up"]):  # Grad-CAM: the same map up to rounding
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    for name, result in explained().items():  # every heatmap method runs, in float32, near its float32 map
        assert result.maps.dtype == np.float32
        assert np.corrcoef(result.maps.ravel(), full_maps[name].maps.ravel())[0, 1] > 0.98, name

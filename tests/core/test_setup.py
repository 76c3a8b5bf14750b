"""TensorFlow set-up (core.setup): loading in safe mode, and mixed precision against float32."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import attribution, models  # noqa: E402
from convlens.core.head import TARGET_REFERENCE, resolve_targets  # noqa: E402
from convlens.core.layers import feature_layers, iter_layers, last_conv_layer  # noqa: E402
from convlens.core.setup import open_model, shared_model, use_mixed_precision  # noqa: E402
from convlens.errors import InputError  # noqa: E402
from convlens.sensitivity.analyzer import Analyzer  # noqa: E402
from tests.helpers import nested_classifier  # noqa: E402


def test_safe_mode_refuses_a_lambda_layer(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(InputError, match="safe mode"):
        models.load({"path": str(tmp_path / "lambda.keras")})
    with pytest.raises(ValueError, match="safe_mode"):  # the jobs' own loader is safe too
        open_model(str(tmp_path / "lambda.keras"), threads=1)


def test_open_model_gives_the_saved_model_and_the_devices(tmp_path):
    keras.utils.set_random_seed(3)
    model = nested_classifier()
    model.save(tmp_path / "nested.keras")
    loaded, devices = open_model(str(tmp_path / "nested.keras"), threads=1)
    x = np.random.default_rng(2).random((2, 16, 16, 3)).astype("float32")
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert any(d.startswith("CPU:") for d in devices)


def test_a_shared_model_is_loaded_once_and_given_as_saved_each_time(tmp_path):
    keras.utils.set_random_seed(3)
    models.build_shapes_cnn((16, 16, 3), 3).save(tmp_path / "m.keras")
    path = str(tmp_path / "m.keras")
    saved = open_model(path, threads=1)[0].get_weights()
    with shared_model(path, threads=1) as shared:
        first, devices = open_model(path, threads=1)
        assert first is shared and any(d.startswith("CPU:") for d in devices)
        for w in first.trainable_weights:  # a stage changes the weights (the method check randomizes them)
            w.assign(w.numpy() + 1.0)
        second = open_model(path, threads=1)[0]
        assert second is shared
        assert all(np.array_equal(a, b) for a, b in zip(second.get_weights(), saved, strict=True))
    outside = open_model(path, threads=1)[0]  # after the block: a load of its own again
    assert outside is not shared
    assert all(np.array_equal(a, b) for a, b in zip(outside.get_weights(), saved, strict=True))


@pytest.mark.parametrize("nested", [False, True])
def test_mixed_precision_gives_the_float32_answers_within_float16_rounding(nested):
    keras.utils.set_random_seed(4)
    model = nested_classifier() if nested else models.build_shapes_cnn((16, 16, 3), 3)
    layers = feature_layers(model)
    cam_layer = last_conv_layer(model)
    x = np.random.default_rng(5).random((4, 16, 16, 3)).astype("float32")
    targets = np.full(4, TARGET_REFERENCE)
    full = Analyzer(model, layers, "unit").run(x, 2)
    # Grad-CAM always (the sheets' map); every method on the plain CNN
    methods = ["gradcam"] if nested else list(attribution.METHODS)
    params = {
        "smoothgrad": {"samples": 3},
        "integrated_gradients": {"steps": 4},
        "occlusion": {"patch": 4, "stride": 4},
    }

    def explained():
        return attribution.Explainer(model, methods, "unit", cam_layer, "logit", params, 32).explain(x, targets, 2)

    full_maps = explained()
    changed = use_mixed_precision(model)
    computing = [layer for _, layer in iter_layers(model) if not isinstance(layer, keras.layers.InputLayer)]
    assert changed == len(computing) - 1  # all but the output layer
    assert model.layers[-1].dtype_policy.name == "float32" and model.layers[-1].compute_dtype == "float32"
    mixed = Analyzer(model, layers, "unit").run(x, 2)
    for got, want in zip(mixed["activations"], full["activations"], strict=False):
        assert got.dtype == np.float32
        assert np.abs(got - want).max() <= 1e-2 * max(1.0, np.abs(want).max())
    assert mixed["probs"].dtype == np.float32 and np.allclose(mixed["probs"], full["probs"], atol=1e-2)
    assert (
        np.asarray(resolve_targets(mixed["logits"], targets, 2)).tolist()
        == np.asarray(resolve_targets(full["logits"], targets, 2)).tolist()
    )
    mixed_maps = explained()
    for a, b in zip(
        mixed_maps["gradcam"].maps, full_maps["gradcam"].maps, strict=False
    ):  # Grad-CAM: the same map up to rounding
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    for name, result in mixed_maps.items():  # every heatmap method runs, in float32, near its float32 map
        assert result.maps.dtype == np.float32
        assert np.corrcoef(result.maps.ravel(), full_maps[name].maps.ravel())[0, 1] > 0.98, name

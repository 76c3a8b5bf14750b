"""The load_model stage (stages.load_model): keras.applications models and .h5 files, then analysed."""

import json

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from convlens import models  # noqa: E402
from convlens.errors import InputError  # noqa: E402
from convlens.stages.common import layer_file  # noqa: E402
from convlens.stages.load_model import load_model  # noqa: E402
from tests.helpers import analysis_config, analyze  # noqa: E402


@pytest.mark.slow  # a full-size keras.applications model
def test_application_model_with_random_weights_on_a_photo(tmp_path):
    from skimage import data as skdata

    spec = {
        "source": "load",
        "application": "MobileNetV2",
        "weights": None,
        "input_size": 64,
        "classes": 5,
        "preprocess": "auto",
        "class_names": list("abcde"),
    }
    out = {
        k: str(tmp_path / f"{k}.{ext}") for k, ext in (("model", "keras"), ("info", "json"), ("architecture", "csv"))
    }
    load_model("mobilenet", spec, 2, out)
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["input_shape"] == [64, 64, 3] and info["preprocess"] == "tf"
    Image.fromarray(skdata.chelsea()).save(tmp_path / "chelsea.png")
    got = analyze(
        out["model"],
        out["info"],
        [{"id": "chelsea", "path": str(tmp_path / "chelsea.png"), "resize": "stretch"}],
        analysis_config(),
        tmp_path,
    )["chelsea"]
    summary = json.loads(got["summary"].read_text())
    assert summary["error"] is None and "resized from 451x300 to 64x64" in summary["notes"][0]
    with np.load(got["raw"]) as raw:
        probs = raw["probs"]
        assert np.allclose(probs.sum(-1), 1, atol=1e-5)
        for row, p in zip(summary["transforms"], probs, strict=False):
            assert row["predicted"] == int(p.argmax()) and row["predicted_name"] == "abcde"[int(p.argmax())]
            assert row["confidence"] == pytest.approx(float(p.max()), abs=1e-6)
            assert row["flipped"] == (int(p.argmax()) != int(probs[0].argmax()))
    assert layer_file("base/conv#1?") == "base__conv_1_"
    with pytest.raises(InputError, match="class_names: 2 names for a model with 5 outputs"):
        load_model("mobilenet", {**spec, "class_names": ["x", "y"]}, 2, out)


def test_h5_file_loads(tmp_path):
    model = models.build_mnist_cnn()
    model.save(tmp_path / "legacy.h5")
    loaded = models.load({"path": str(tmp_path / "legacy.h5")})
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def small_model(conv=True, conv_name="conv"):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, activation="relu", name=conv_name)(inputs) if conv else inputs
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(x))


def outputs(tmp_path):
    return {
        k: str(tmp_path / f"{k}.{ext}") for k, ext in (("model", "keras"), ("info", "json"), ("architecture", "csv"))
    }


def test_a_model_with_nan_weights_fails_at_load_naming_the_file(tmp_path):
    model = small_model()
    kernel, bias = model.get_layer("conv").get_weights()
    kernel[0, 0, 0, 0] = np.nan
    model.get_layer("conv").set_weights([kernel, bias])
    model.save(tmp_path / "broken.keras")
    with pytest.raises(InputError) as info:
        load_model("m", {"source": "load", "path": str(tmp_path / "broken.keras")}, 2, outputs(tmp_path))
    message = str(info.value)
    assert (
        f"model {tmp_path / 'broken.keras'}: 1 weight tensor(s) hold NaN or infinite values (first: conv/kernel)"
        in message
    )
    assert "\n" not in message and not (tmp_path / "info.json").exists()


def test_a_model_without_a_conv_layer_fails_at_load_and_in_the_filters_step(tmp_path):
    """A user would expect a clear stop, not an empty report: feature maps, filters and Grad-CAM all
    need a convolution layer, so load_model refuses the model (and the filters step, should it ever
    see one, says the same instead of crashing)."""
    from convlens.stages.filters import filters

    small_model(conv=False).save(tmp_path / "dense.keras")
    with pytest.raises(
        InputError,
        match=r"dense\.keras has no convolution layer \(Conv2D, DepthwiseConv2D or "
        r"SeparableConv2D\); convlens analyses convolutional networks",
    ):
        load_model("m", {"source": "load", "path": str(tmp_path / "dense.keras")}, 2, outputs(tmp_path))
    models.ModelInfo("m", "load", [8, 8, 3], list("abc"), "unit").save(tmp_path / "info.json")
    with pytest.raises(InputError, match="model m: no convolution layer, so no kernels or filter patterns to draw"):
        filters(
            str(tmp_path / "dense.keras"),
            str(tmp_path / "info.json"),
            {"filters": {}},
            0,
            2,
            str(tmp_path / "f"),
            str(tmp_path / "f.json"),
        )


def test_an_application_looking_file_with_unit_pixels_is_loaded_with_a_warning(tmp_path):
    small_model(conv_name="block5_conv3").save(tmp_path / "vgg_like.keras")
    spec = {"source": "load", "path": str(tmp_path / "vgg_like.keras"), "preprocess": "auto"}
    load_model("m", spec, 2, outputs(tmp_path))
    info = json.loads((tmp_path / "info.json").read_text())
    assert [w["kind"] for w in info["warnings"]] == ["preprocess"]
    assert "looks like a keras.applications VGG model (layer 'block5_conv3')" in info["warnings"][0]["message"]
    assert models.ModelInfo.load(tmp_path / "info.json").warnings == info["warnings"]
    load_model("m", {**spec, "preprocess": "unit"}, 2, outputs(tmp_path))  # chosen on purpose: no warning
    assert json.loads((tmp_path / "info.json").read_text())["warnings"] == []


def test_a_model_safe_mode_refuses_is_one_line_naming_the_file(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    keras.Model(inputs, keras.layers.Conv2D(2, 3, name="conv")(x)).save(tmp_path / "lambda.keras")
    with pytest.raises(InputError) as info:
        load_model("m", {"source": "load", "path": str(tmp_path / "lambda.keras")}, 2, outputs(tmp_path))
    assert str(info.value).startswith(f"cannot load model {tmp_path / 'lambda.keras'} (safe mode): ")
    assert "\n" not in str(info.value)

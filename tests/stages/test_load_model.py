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


def test_application_model_with_random_weights_on_a_photo(tmp_path):
    from skimage import data as skdata

    spec = {"source": "load", "application": "MobileNetV2", "weights": None, "input_size": 64, "classes": 5,
            "preprocess": "auto", "class_names": list("abcde")}
    out = {k: str(tmp_path / f"{k}.{ext}") for k, ext in (("model", "keras"), ("info", "json"), ("architecture", "csv"))}
    load_model("mobilenet", spec, 2, out)
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["input_shape"] == [64, 64, 3] and info["preprocess"] == "tf"
    Image.fromarray(skdata.chelsea()).save(tmp_path / "chelsea.png")
    got = analyze(out["model"], out["info"], [{"id": "chelsea", "path": str(tmp_path / "chelsea.png")}],
                  analysis_config(), tmp_path)["chelsea"]
    summary = json.loads(got["summary"].read_text())
    assert summary["error"] is None and "resized from 451x300 to 64x64" in summary["notes"][0]
    with np.load(got["raw"]) as raw:
        probs = raw["probs"]
        assert np.allclose(probs.sum(-1), 1, atol=1e-5)
        for row, p in zip(summary["transforms"], probs):
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

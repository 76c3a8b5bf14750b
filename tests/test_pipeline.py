"""Stage functions without Snakemake: grayscale MNIST layout, keras.applications models, .h5 files."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from convlens import pipeline  # noqa: E402
from convlens.config import validate  # noqa: E402
from convlens.data import load_mnist  # noqa: E402
from convlens.errors import InputError  # noqa: E402


def analysis_config(**overrides):
    cfg = validate({"datasets": {"d": {"kind": "shapes"}},
                    "models": {"m": {"source": "train", "architecture": "shapes_cnn", "dataset": "d"}},
                    "images": [{"dataset": "d", "count": 1}],
                    "transforms": [{"kind": "rotate", "angle_deg": 90}, {"kind": "vflip"}],
                    "filters": {"n_filters": 2, "steps": 2}, **overrides})
    cfg["sheet_transforms"] = cfg["report"]["sheet_transforms"]  # as workflow/rules/common.smk passes it
    return cfg


def fake_mnist(path):
    """A stand-in mnist.npz in the Keras layout: digits drawn as bars, 28x28 uint8."""
    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 10, n)
        x = np.zeros((n, 28, 28), np.uint8)
        for i, label in enumerate(y):
            x[i, 4:24, 2 + 2 * label: 4 + 2 * label] = 255
        return x, y.astype(np.uint8)

    (xtr, ytr), (xte, yte) = make(60), make(20)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)


def image_entries(tmp_path, sources):
    return [dict(src, raw=str(tmp_path / f"{src['id']}.npz"), summary=str(tmp_path / f"{src['id']}.json"),
                 metrics=str(tmp_path / f"{src['id']}.csv")) for src in sources]


def test_grayscale_mnist_model_through_every_stage(tmp_path):
    fake_mnist(tmp_path / "mnist.npz")
    ds = load_mnist(tmp_path / "mnist.npz")
    assert ds.x_train.shape == (60, 28, 28, 1) and ds.class_names[3] == "3"
    ds.save(tmp_path / "data.npz")
    spec = {"architecture": "mnist_cnn", "epochs": 1, "batch_size": 16, "learning_rate": 1e-3,
            "validation_fraction": 0.2, "source": "train"}
    out = {k: str(tmp_path / f"{k}.{ext}") for k, ext in
           (("model", "keras"), ("info", "json"), ("architecture", "csv"), ("history", "csv"), ("metrics", "json"))}
    out.update(checkpoints=str(tmp_path / "ckpt"), tensorboard=str(tmp_path / "tb"))
    pipeline.train_model("mnist", spec, str(tmp_path / "data.npz"), 1, 2, {"epochs": [1, 5], "image": 0}, out)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch_001.weights.h5"]
    cfg = analysis_config(activations={"top_k": 4})
    entries = image_entries(tmp_path, [{"id": "digit", "dataset_npz": str(tmp_path / "data.npz"), "index": 0}])
    pipeline.analyze_shard(out["model"], out["info"], entries, cfg, 2)
    summary = json.loads((tmp_path / "digit.json").read_text())
    assert summary["conv_layers"] == ["conv1", "conv2"] and summary["cam_layer"] == "conv2"
    assert [row["transform"] for row in summary["transforms"]] == ["identity", "rotate_90", "vflip"]
    with np.load(tmp_path / "digit.npz") as raw:
        assert raw["inputs"].shape == (3, 28, 28, 1)
        # the rotated input is exactly np.rot90 of the original
        assert np.allclose(raw["inputs"][1], np.rot90(raw["inputs"][0]), atol=1e-3)
    metrics = pd.read_csv(tmp_path / "digit.csv", keep_default_na=False)
    assert list(metrics.columns) == ["image", "transform", "param", "layer", "metric", "value"]
    # conv1, pool1, conv2, pool2: equivariance and invariance; the floor; 4 prediction metrics (labelled); Grad-CAM
    assert len(metrics) == 3 * (4 * 2 + 1 + 4 + 3)
    floor = metrics[metrics["metric"] == "equivariance_floor"]["value"]
    assert np.allclose(floor.astype(float), 0.0, atol=1e-6)  # 90-degree turns and flips are exact on the grid
    pipeline.render_image(str(tmp_path / "digit.npz"), str(tmp_path / "digit.json"), str(tmp_path / "fig"),
                          str(tmp_path / "sheet.json"), [])
    sheet = json.loads((tmp_path / "sheet.json").read_text())
    assert sheet["sheet_layers"] == ["conv1", "conv2"]
    assert Image.open(tmp_path / "fig" / sheet["activations"]["conv1"]["identity"]).size[0] > 28 * 4
    # raw.npz keeps the drawn channels (conv1 in full, top_k = 4 of conv2); with raw_channels: all,
    # every channel, and the same pictures
    full = tmp_path / "full"
    full.mkdir()
    pipeline.analyze_shard(out["model"], out["info"], image_entries(full, [entries[0]]),
                           {**cfg, "activations": {**cfg["activations"], "raw_channels": "all"}}, 2)
    with np.load(tmp_path / "digit.npz") as slim, np.load(full / "digit.npz") as every:
        assert slim["act_0"].shape == every["act_0"].shape == (3, 28, 28, 16)
        assert slim["act_2"].shape[-1] == 4 and every["act_2"].shape[-1] == 32
        drawn = slim["channels_2"]
        assert drawn.tolist() == every["channels_2"].tolist() == slim["act_channels_2"].tolist()
        assert np.array_equal(slim["act_2"], every["act_2"][..., drawn])
        reference = every["act_2"][0].astype(np.float32)
        assert drawn.tolist() == np.argsort(-reference.mean(axis=(0, 1)), kind="stable")[:4].tolist()
    pipeline.render_image(str(full / "digit.npz"), str(tmp_path / "digit.json"), str(full / "fig"),
                          str(full / "sheet.json"), [])
    for name in sorted(p.name for p in (tmp_path / "fig").iterdir()):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "fig" / name)), np.asarray(Image.open(full / "fig" / name)))
    # mixed precision: the same measurements within float16 rounding
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    pipeline.analyze_shard(out["model"], out["info"], image_entries(mixed, [entries[0]]), {**cfg, "mixed_precision": True}, 2)
    a, b = (pd.read_csv(d / "digit.csv", keep_default_na=False, na_values=[""]) for d in (tmp_path, mixed))
    assert a[["transform", "layer", "metric"]].equals(b[["transform", "layer", "metric"]])
    assert np.allclose(a["value"], b["value"], atol=0.02, equal_nan=True)
    pipeline.filters(out["model"], out["info"], cfg, 0, 2, str(tmp_path / "filters"), str(tmp_path / "filters.json"))
    assert (tmp_path / "filters" / "kernels.png").is_file()


def test_application_model_with_random_weights_on_a_photo(tmp_path):
    from skimage import data as skdata

    spec = {"source": "load", "application": "MobileNetV2", "weights": None, "input_size": 64, "classes": 5,
            "preprocess": "auto", "class_names": list("abcde")}
    out = {k: str(tmp_path / f"{k}.{ext}") for k, ext in (("model", "keras"), ("info", "json"), ("architecture", "csv"))}
    pipeline.load_model("mobilenet", spec, 2, out)
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["input_shape"] == [64, 64, 3] and info["preprocess"] == "tf"
    Image.fromarray(skdata.chelsea()).save(tmp_path / "chelsea.png")
    entries = image_entries(tmp_path, [{"id": "chelsea", "path": str(tmp_path / "chelsea.png")}])
    pipeline.analyze_shard(out["model"], out["info"], entries, analysis_config(), 2)
    summary = json.loads((tmp_path / "chelsea.json").read_text())
    assert summary["error"] is None and "resized from 451x300 to 64x64" in summary["notes"][0]
    with np.load(tmp_path / "chelsea.npz") as raw:
        probs = raw["probs"]
        assert np.allclose(probs.sum(-1), 1, atol=1e-5)
        for row, p in zip(summary["transforms"], probs):
            assert row["predicted"] == int(p.argmax()) and row["predicted_name"] == "abcde"[int(p.argmax())]
            assert row["confidence"] == pytest.approx(float(p.max()), abs=1e-6)
            assert row["flipped"] == (int(p.argmax()) != int(probs[0].argmax()))
    assert pipeline._layer_file("base/conv#1?") == "base__conv_1_"
    with pytest.raises(InputError, match="class_names: 2 names for a model with 5 outputs"):
        pipeline.load_model("mobilenet", {**spec, "class_names": ["x", "y"]}, 2, out)


def test_h5_file_loads(tmp_path):
    from convlens import models

    model = models.build_mnist_cnn()
    model.save(tmp_path / "legacy.h5")
    loaded = models.load({"path": str(tmp_path / "legacy.h5")})
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def nested_classifier(size=64):
    """The transfer-learning case: a keras.applications base inside a Sequential classifier."""
    keras.utils.set_random_seed(0)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    return keras.Sequential([keras.Input((size, size, 3)), base, keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(3, activation="softmax", name="head")])


def test_every_heatmap_method_runs_through_the_pipeline_on_a_nested_application_model(tmp_path):
    from skimage import data as skdata

    from convlens import attribution

    nested_classifier().save(tmp_path / "nested.keras")
    out = {k: str(tmp_path / f"{k}.{ext}") for k, ext in (("model", "keras"), ("info", "json"), ("architecture", "csv"))}
    pipeline.load_model("nested", {"path": str(tmp_path / "nested.keras"), "preprocess": "caffe",
                                   "class_names": ["a", "b", "c"]}, 2, out)
    Image.fromarray(skdata.astronaut()).save(tmp_path / "astronaut.png")
    cfg = analysis_config(heatmaps={"methods": "all", "layer": "vgg16/block5_pool",
                                    "params": {"smoothgrad": {"samples": 3}, "integrated_gradients": {"steps": 4},
                                               "occlusion": {"patch": 16, "stride": 16}}})
    entries = image_entries(tmp_path, [{"id": "astronaut", "path": str(tmp_path / "astronaut.png")}])
    pipeline.analyze_shard(out["model"], out["info"], entries, cfg, 2)
    summary = json.loads((tmp_path / "astronaut.json").read_text())
    assert summary["methods"] == list(attribution.METHODS)  # all twelve, cam included (block5_pool -> GAP -> dense)
    with np.load(tmp_path / "astronaut.npz") as raw:
        for j in range(12):
            maps = raw[f"heat_{j}"]
            assert maps.shape == (3, 64, 64) and np.isfinite(maps).all(), j
            # Score-CAM's weights p(x * H_k) - p(black) may all be negative on random weights (all-zero map)
            assert np.abs(maps).max() > 0 or summary["methods"][j] == "scorecam"
    metrics = pd.read_csv(tmp_path / "astronaut.csv", keep_default_na=False, na_values=[""])
    assert set(metrics[metrics["metric"] == "heatmap_pearson"]["layer"]) == set(attribution.METHODS)
    pipeline.render_image(str(tmp_path / "astronaut.npz"), str(tmp_path / "astronaut.json"), str(tmp_path / "fig"),
                          str(tmp_path / "sheet.json"), [])
    sheet = json.loads((tmp_path / "sheet.json").read_text())
    for method in attribution.METHODS:
        for t in sheet["transforms"]:
            assert (tmp_path / "fig" / sheet["heatmaps"][method][t]).is_file()
    # cam at the last conv layer (a max-pool follows it) does not apply: 'all' leaves it out and says why
    model = keras.saving.load_model(out["model"], safe_mode=True)
    names, notes = pipeline.heatmap_methods(model, "all", "vgg16/block5_conv3")
    assert "cam" not in names and len(names) == 11 and "cam left out" in notes[0]
    with pytest.raises(InputError, match="config.heatmaps.methods: cam"):
        pipeline.heatmap_methods(model, ["cam"], "vgg16/block5_conv3")


def test_method_quality_table_matches_the_library(tmp_path):
    """The quality table holds the numbers cascading_randomization gives for the same images and seed."""
    from convlens import attribution, backend

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, name="head")])
    model.save(tmp_path / "m.keras")
    (tmp_path / "info.json").write_text(json.dumps({"name": "m", "source": "load", "input_shape": [16, 16, 3],
                                                    "class_names": ["x", "y"], "preprocess": "unit"}))
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(tmp_path / f"im{i}.png")
    images = [{"id": f"im{i}", "path": str(tmp_path / f"im{i}.png")} for i in range(2)]
    cfg = {"heatmaps": {"methods": ["saliency", "cam"], "layer": None, "score": "logit", "params": {},
                        "quality_steps": 4}, "batch_size": 8}
    out = {"json": str(tmp_path / "q.json"), "csv": str(tmp_path / "q.csv"), "figures": str(tmp_path / "qf")}
    pipeline.method_quality(str(tmp_path / "m.keras"), str(tmp_path / "info.json"), images, cfg, 3, 2, out)
    table = pd.read_csv(tmp_path / "q.csv").set_index("method")
    x = np.stack([np.asarray(Image.open(tmp_path / f"im{i}.png")) for i in range(2)]).astype(np.float32) / 255
    targets = np.full(2, backend.TARGET_PREDICTED)
    again = attribution.cascading_randomization(model, x, targets, ["saliency", "cam"], seed=3)
    assert table.loc["saliency", "spearman_randomized"] == pytest.approx(np.nanmean(again["spearman"]["saliency"][-1]))
    assert bool(table.loc["saliency", "insensitive"]) == again["insensitive"]["saliency"]
    assert (tmp_path / "qf" / "randomization.png").is_file() and (tmp_path / "qf" / "deletion_insertion.png").is_file()

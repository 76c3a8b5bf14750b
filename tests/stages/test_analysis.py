"""The measure and draw stages without Snakemake (stages.measure, stages.draw, stages.analysis): a
grayscale MNIST model through every stage, every heatmap method on a nested keras.applications model,
and the maps the sheets get."""

import json

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from convlens import attribution  # noqa: E402
from convlens.attribution import Explainer  # noqa: E402
from convlens.core.head import TARGET_PREDICTED, TARGET_REFERENCE  # noqa: E402
from convlens.core.layers import last_conv_layer  # noqa: E402
from convlens.data import load_mnist  # noqa: E402
from convlens.errors import InputError  # noqa: E402
from convlens.sensitivity.analyzer import Analyzer  # noqa: E402
from convlens.stages.analysis import explain  # noqa: E402
from convlens.stages.common import heatmap_explainer  # noqa: E402
from convlens.stages.filters import filters  # noqa: E402
from convlens.stages.load_model import load_model  # noqa: E402
from convlens.stages.train_model import train_model  # noqa: E402
from tests.helpers import analysis_config, analyze, gap_model, images  # noqa: E402


def fake_mnist(path):
    """A stand-in mnist.npz in the Keras layout: digits drawn as bars, 28x28 uint8."""
    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 10, n)
        x = np.zeros((n, 28, 28), np.uint8)
        for i, label in enumerate(y):
            x[i, 4:24, 2 + 2 * label : 4 + 2 * label] = 255
        return x, y.astype(np.uint8)

    (xtr, ytr), (xte, yte) = make(60), make(20)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)


@pytest.mark.slow
def test_grayscale_mnist_model_through_every_stage(tmp_path):
    fake_mnist(tmp_path / "mnist.npz")
    ds = load_mnist(tmp_path / "mnist.npz")
    assert ds.x_train.shape == (60, 28, 28, 1) and ds.class_names[3] == "3"
    ds.save(tmp_path / "data.npz")
    spec = {
        "architecture": "mnist_cnn",
        "epochs": 1,
        "batch_size": 16,
        "learning_rate": 1e-3,
        "validation_fraction": 0.2,
        "source": "train",
    }
    out = {
        k: str(tmp_path / f"{k}.{ext}")
        for k, ext in (
            ("model", "keras"),
            ("info", "json"),
            ("architecture", "csv"),
            ("history", "csv"),
            ("metrics", "json"),
        )
    }
    out.update(checkpoints=str(tmp_path / "ckpt"), tensorboard=str(tmp_path / "tb"))
    train_model("mnist", spec, str(tmp_path / "data.npz"), 1, 2, {"epochs": [1, 5], "image": 0}, out)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch_001.weights.h5"]
    cfg = analysis_config(activations={"top_k": 4})
    sources = [{"id": "digit", "dataset_npz": str(tmp_path / "data.npz"), "index": 0, "resize": "stretch"}]
    got = analyze(out["model"], out["info"], sources, cfg, tmp_path / "slim")["digit"]
    summary = json.loads(got["summary"].read_text())
    assert summary["conv_layers"] == ["conv1", "conv2"] and summary["cam_layer"] == "conv2"
    assert [row["transform"] for row in summary["transforms"]] == ["identity", "rotate_90", "vflip"]
    with np.load(got["raw"]) as raw:
        assert raw["inputs"].shape == (3, 28, 28, 1)
        # the rotated input is exactly np.rot90 of the original
        assert np.allclose(raw["inputs"][1], np.rot90(raw["inputs"][0]), atol=1e-3)
    metrics = got["metrics"]
    assert list(metrics.columns) == ["image", "transform", "param", "layer", "metric", "value"]
    # conv1, pool1, conv2, pool2: equivariance and invariance; the floor; 4 prediction metrics (labelled); Grad-CAM
    assert len(metrics) == 3 * (4 * 2 + 1 + 4 + 3)
    floor = metrics[metrics["metric"] == "equivariance_floor"]["value"]
    assert np.allclose(floor.astype(float), 0.0, atol=1e-6)  # 90-degree turns and flips are exact on the grid
    sheet = json.loads(got["sheet"].read_text())
    assert sheet["sheet_layers"] == ["conv1", "conv2"]
    assert Image.open(got["figures"] / sheet["activations"]["conv1"]["identity"]).size[0] > 28 * 4
    # raw.npz keeps the drawn channels (conv1 in full, top_k = 4 of conv2); with raw_channels: all,
    # every channel, and the same pictures
    full = analyze(
        out["model"],
        out["info"],
        sources,
        {**cfg, "activations": {**cfg["activations"], "raw_channels": "all"}},
        tmp_path / "full",
    )["digit"]
    with np.load(got["raw"]) as slim, np.load(full["raw"]) as every:
        assert slim["act_0"].shape == every["act_0"].shape == (3, 28, 28, 16)
        assert slim["act_2"].shape[-1] == 4 and every["act_2"].shape[-1] == 32
        drawn = slim["channels_2"]
        assert drawn.tolist() == every["channels_2"].tolist() == slim["act_channels_2"].tolist()
        assert np.array_equal(slim["act_2"], every["act_2"][..., drawn])
        reference = every["act_2"][0].astype(np.float32)
        assert drawn.tolist() == np.argsort(-reference.mean(axis=(0, 1)), kind="stable")[:4].tolist()
    for name in sorted(p.name for p in got["figures"].iterdir()):
        assert np.array_equal(
            np.asarray(Image.open(got["figures"] / name)), np.asarray(Image.open(full["figures"] / name))
        )
    # mixed precision: the same measurements within float16 rounding
    mixed = analyze(out["model"], out["info"], sources, {**cfg, "mixed_precision": True}, tmp_path / "mixed")["digit"]
    a, b = got["metrics"], mixed["metrics"]
    assert a[["transform", "layer", "metric"]].equals(b[["transform", "layer", "metric"]])
    assert np.allclose(a["value"], b["value"], atol=0.02, equal_nan=True)
    filters(out["model"], out["info"], cfg, 0, 2, str(tmp_path / "filters"), str(tmp_path / "filters.json"))
    assert (tmp_path / "filters" / "kernels.png").is_file()


def nested_classifier(size=32):
    """The transfer-learning case: a keras.applications base inside a Sequential classifier."""
    keras.utils.set_random_seed(0)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            base,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax", name="head"),
        ]
    )


@pytest.mark.slow  # a full-size keras.applications model
def test_every_heatmap_method_runs_through_the_stages_on_a_nested_application_model(tmp_path):
    from skimage import data as skdata

    nested_classifier().save(tmp_path / "nested.keras")
    out = {
        k: str(tmp_path / f"{k}.{ext}") for k, ext in (("model", "keras"), ("info", "json"), ("architecture", "csv"))
    }
    load_model(
        "nested",
        {"path": str(tmp_path / "nested.keras"), "preprocess": "caffe", "class_names": ["a", "b", "c"]},
        2,
        out,
    )
    Image.fromarray(skdata.astronaut()).save(tmp_path / "astronaut.png")
    cfg = analysis_config(
        heatmaps={
            "methods": "all",
            "layer": "vgg16/block5_pool",
            "params": {
                "smoothgrad": {"samples": 3},
                "integrated_gradients": {"steps": 4},
                "occlusion": {"patch": 16, "stride": 16},
            },
        }
    )
    got = analyze(
        out["model"],
        out["info"],
        [{"id": "astronaut", "path": str(tmp_path / "astronaut.png"), "resize": "stretch"}],
        cfg,
        tmp_path,
    )["astronaut"]
    summary = json.loads(got["summary"].read_text())
    assert summary["methods"] == list(attribution.METHODS)  # all twelve, cam included (block5_pool -> GAP -> dense)
    with np.load(got["raw"]) as raw:
        for j in range(12):
            maps = raw[f"heat_{j}"]
            assert maps.shape == (3, 32, 32) and np.isfinite(maps).all(), j
            # Score-CAM's weights p(x * H_k) - p(black) may all be negative on random weights (all-zero map)
            assert np.abs(maps).max() > 0 or summary["methods"][j] == "scorecam"
    metrics = got["metrics"]
    assert set(metrics[metrics["metric"] == "heatmap_pearson"]["layer"]) == set(attribution.METHODS)
    sheet = json.loads(got["sheet"].read_text())
    for method in attribution.METHODS:
        for t in sheet["transforms"]:
            assert (got["figures"] / sheet["heatmaps"][method][t]).is_file()
    # cam at the last conv layer (a max-pool follows it) does not apply: 'all' leaves it out and says why
    model = keras.saving.load_model(out["model"], safe_mode=True)
    hcfg = {"score": "logit", "params": {}}
    explainer, names, notes = heatmap_explainer(
        model, {"heatmaps": {**hcfg, "methods": "all"}, "batch_size": 8}, "caffe", "vgg16/block5_conv3"
    )
    assert "cam" not in names and len(names) == 11 and "cam left out" in notes[0]
    assert [m.name for m in explainer.methods] == names and explainer.cam_dense is None
    with pytest.raises(InputError, match="config.heatmaps.methods: cam"):
        heatmap_explainer(
            model, {"heatmaps": {**hcfg, "methods": ["cam"]}, "batch_size": 8}, "caffe", "vgg16/block5_conv3"
        )


@pytest.mark.parametrize("score", ["logit", "probability"])
def test_explain_gives_the_explainers_gradcam_for_the_resolved_targets(score):
    """The sheets' maps are the Explainer's for the classes resolve_targets picks (the reference
    class, each row's predicted class, or a class index); the study's are for the reference class."""
    model = gap_model(shape=(12, 12, 3), filters=6, classes=3, head="softmax", seed=6)
    # two images, three rows each; brightness changes the top class (the biases are not zero)
    x = images((6, 12, 12, 3), seed=8) * np.array([1, 3, 0.2, 0.5, 4, 1.5], "float32")[:, None, None, None]
    explainer = Explainer(model, ["gradcam", "saliency"], score=score)
    assert explainer.cam_layer == last_conv_layer(model) == "conv"
    logits = Analyzer(model, [], "unit").run(x, 3)["logits"]
    assert np.allclose(logits, explainer.predict(x)[0], atol=1e-5)
    reference = np.repeat(logits[::3].argmax(-1), 3)
    wanted = {TARGET_REFERENCE: reference, TARGET_PREDICTED: logits.argmax(-1), 2: np.full(6, 2)}
    assert len({tuple(t) for t in wanted.values()}) == 3  # three different sets of classes
    by_reference = explainer.explain(x, reference)
    for code, targets in wanted.items():
        got = explain(explainer, x, logits, code, 3)
        assert got["target"].tolist() == targets.tolist()
        assert explainer.resolve_targets(x, np.full(6, code), 3)[0].tolist() == targets.tolist()
        direct = explainer.explain(x, targets)["gradcam"]
        assert np.allclose(got["cam"], direct.raw, rtol=1e-4, atol=1e-7)
        assert np.allclose(got["cam_up"], direct.maps, rtol=1e-4, atol=1e-7)
        assert np.allclose(got["heatmaps"]["gradcam"], direct.maps, rtol=1e-4, atol=1e-7)
        for name in ("gradcam", "saliency"):
            assert np.allclose(got["heatmaps_reference"][name], by_reference[name].maps, rtol=1e-4, atol=1e-7), name
    assert not np.allclose(explain(explainer, x, logits, 2, 3)["cam"], by_reference["gradcam"].raw)


@pytest.mark.parametrize("code", [TARGET_REFERENCE, TARGET_PREDICTED, 1])
def test_the_model_steps_cam_maps_equal_the_explainers_own_pass(code):
    """The study's model step makes the CAM family's maps with Explainer.cam_maps from its own
    forward pass; they equal the Explainer's own pass for the same classes (sheets and reference)."""
    model = gap_model(shape=(12, 12, 3), filters=6, classes=3, head="softmax", seed=6)
    x = images((6, 12, 12, 3), seed=8) * np.array([1, 3, 0.2, 0.5, 4, 1.5], "float32")[:, None, None, None]
    explainer = Explainer(model, ["gradcam", "gradcam_pp", "layercam", "cam", "scorecam"], score="probability")
    step = Analyzer(model, ["conv"], "unit", explainer=explainer, reference_too=code != TARGET_REFERENCE).run(
        x, 3, code
    )
    by_step = explain(explainer, x, step["logits"], code, 3, step)
    own = explain(explainer, x, step["logits"], code, 3)
    assert by_step["target"].tolist() == own["target"].tolist()
    for key in ("heatmaps", "heatmaps_reference"):
        for name, maps in own[key].items():
            assert np.allclose(by_step[key][name], maps, rtol=1e-4, atol=1e-6), (key, name)
    assert np.allclose(by_step["cam"], own["cam"], rtol=1e-4, atol=1e-7)

"""The cost estimate behind images_per_job: auto (convlens.model_cost): multiply-accumulates counted from
a model's config against a count from the shapes Keras itself computes, the built-in architectures'
formulas and the keras.applications table against both, the methods' passes, and the shard sizes."""

import json
import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import model_cost  # noqa: E402
from convlens.attribution.perturbations import Patches  # noqa: E402
from convlens.attribution.registry import method  # noqa: E402
from convlens.config import shard_count, validate  # noqa: E402
from convlens.core.layers import iter_layers  # noqa: E402
from convlens.models import build_mnist_cnn, build_shapes_cnn  # noqa: E402


def keras_macs(model) -> float:
    """An independent count: every convolution's and dense layer's multiply-accumulates from the input
    and output shapes Keras computed for the built model (not from its serialized config)."""
    total = 0.0
    for _, layer in iter_layers(model):
        name = type(layer).__name__
        if name not in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"):
            continue
        inp, out = layer.input.shape, layer.output.shape
        if name == "Dense":
            total += math.prod(d for d in inp[1:-1]) * inp[-1] * layer.units
            continue
        kh, kw = layer.kernel_size
        c = inp[-1]
        if name == "Conv2D":
            total += out[1] * out[2] * kh * kw * (c // layer.groups) * layer.filters
        elif name == "DepthwiseConv2D":
            total += out[1] * out[2] * kh * kw * c * layer.depth_multiplier
        else:
            total += out[1] * out[2] * c * layer.depth_multiplier * (kh * kw + layer.filters)
    return float(total)


def config_of(model) -> dict:
    """The structure a .keras file's config.json holds."""
    return json.loads(json.dumps(keras.saving.serialize_keras_object(model)))


def odd_model():
    """Strides, 'valid' padding, dilation, groups, depthwise and separable convolutions, a dense layer
    on a feature map, inside an outer model (a nested model, as a transfer classifier has)."""
    inner_in = keras.Input((33, 31, 4))
    x = keras.layers.Conv2D(8, 5, strides=2, padding="valid", name="a")(inner_in)
    x = keras.layers.Conv2D(8, 3, dilation_rate=2, padding="valid", groups=2, name="b")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=(2, 1), padding="same", depth_multiplier=2, name="c")(x)
    x = keras.layers.SeparableConv2D(12, 3, padding="same", name="d")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    inner = keras.Model(inner_in, keras.layers.Dense(6, name="e")(x), name="inner")
    outer_in = keras.Input((33, 31, 4))
    y = keras.layers.GlobalAveragePooling2D()(inner(outer_in))
    return keras.Model(outer_in, keras.layers.Dense(3, name="head")(y))


@pytest.mark.parametrize(
    "build",
    [
        lambda: build_shapes_cnn((28, 28, 3), 3),
        lambda: build_shapes_cnn((45, 37, 1), 5),
        lambda: build_mnist_cnn((28, 28, 1), 10),
        odd_model,
    ],
)
def test_the_config_count_matches_the_shapes_keras_computed(build, tmp_path):
    model = build()
    expected = keras_macs(model)
    assert expected > 0
    assert model_cost.forward_macs_of_config(config_of(model)) == pytest.approx(expected, rel=1e-12)
    model.save(tmp_path / "m.keras")  # and read back from the file, without TensorFlow
    assert model_cost.file_macs(tmp_path / "m.keras") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("shape", [(28, 28, 3), (64, 48, 3), (28, 28, 1)])
def test_the_built_in_formulas_match_the_built_models(shape):
    assert model_cost.builtin_macs("shapes_cnn", shape, 3) == keras_macs(build_shapes_cnn(shape, 3))
    assert model_cost.builtin_macs("mnist_cnn", shape, 10) == keras_macs(build_mnist_cnn(shape, 10))
    assert model_cost.builtin_macs("transfer", shape, 3) is None


@pytest.mark.slow
@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50", "VGG16"])
def test_the_application_table_is_the_count_of_the_constructors_own_model(name):
    base = getattr(keras.applications, name)(weights=None, include_top=False, input_shape=(224, 224, 3))
    assert model_cost.APPLICATION_MACS[name] == keras_macs(base)
    # another input size: the count scaled by the pixels, within the border effects of 'valid' layers
    small = getattr(keras.applications, name)(weights=None, include_top=False, input_shape=(96, 96, 3))
    assert model_cost.application_macs(name, 96, 96) == pytest.approx(keras_macs(small), rel=0.15)


def test_a_file_without_layer_shapes_or_unreadable_gives_no_count(tmp_path):
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    assert model_cost.file_macs(tmp_path / "broken.keras") is None
    config = config_of(build_shapes_cnn((28, 28, 3), 3))
    for layer in config["config"]["layers"]:
        layer.pop("build_config", None)  # as an older file, which gives no input shape per layer
    assert model_cost.forward_macs_of_config(config) is None
    assert model_cost.auto_images_per_job(None) == model_cost.FALLBACK_IMAGES_PER_JOB


def test_methods_count_their_passes():
    side = 28
    assert method("saliency").passes(method("saliency").defaults, side) == 3
    ig = method("integrated_gradients")
    assert ig.passes({**ig.defaults, "steps": 16}, side) == 48
    sg = method("smoothgrad")
    assert sg.passes({**sg.defaults, "samples": 5}, side) == 15
    for name in ("gradcam", "gradcam_pp", "layercam", "cam"):
        assert method(name).passes(method(name).defaults, side) == 0
    occlusion = method("occlusion")
    params = {**occlusion.defaults, "patch": 6, "stride": 4}
    positions = len(Patches(np.zeros((1, side, side, 1)), 6, 4, 0.5).corners)
    assert occlusion.passes(params, side) == positions + 1  # the patches and the image
    heatmaps = {"methods": ["guided_gradcam", "integrated_gradients"], "params": {"integrated_gradients": {"steps": 4}}}
    # guided Grad-CAM reuses guided backprop (3) and Grad-CAM (0), each counted once
    assert model_cost.method_passes(heatmaps, side) == 3 + 12


def test_shard_sizes_follow_the_cost_and_an_explicit_number_wins():
    cfg = validate(
        {
            "datasets": {"shapes": {"kind": "shapes", "image_size": 28}},
            "models": {
                "small": {"source": "train", "architecture": "shapes_cnn", "dataset": "shapes"},
                "vgg": {"source": "load", "application": "VGG16", "input_size": 224},
                "fixed": {"source": "train", "architecture": "shapes_cnn", "dataset": "shapes", "images_per_job": 7},
            },
            "images": [{"dataset": "shapes", "count": 4}],
            "heatmaps": {"methods": ["gradcam"]},
            "lie_derivative": False,
            "transforms": [{"kind": "hflip"}],
        }
    )
    models = cfg["models"]
    small = model_cost.study_seconds_per_image(models["small"], cfg)
    vgg = model_cost.study_seconds_per_image(models["vgg"], cfg)
    # two rows (the image and its flip), one pass each: the estimate's own formula, by hand
    assert small == pytest.approx(2 * (model_cost.builtin_macs("shapes_cnn", (28, 28, 3), 10) / 50e9 + 1e-3))
    assert vgg == pytest.approx(2 * (15_346_630_656 / 50e9 + 1e-3))
    for name, seconds in (("small", small), ("vgg", vgg)):
        n = model_cost.images_per_job(models[name], cfg)
        assert n & (n - 1) == 0  # a power of two
        assert 100 / math.sqrt(2) <= n * seconds <= 100 * math.sqrt(2)  # ten starts of 10 s, the nearest power
    assert model_cost.images_per_job(models["fixed"], cfg) == 7
    assert model_cost.images_per_job(models["small"], {**cfg, "images_per_job": 5}) == 5
    # the Lie derivative adds its passes: 2.5 per generator and image, spread over the rows
    lie = {**cfg, "lie_derivative": True, "transforms": [{"kind": "rotate", "angle_deg": 10}]}
    macs = model_cost.builtin_macs("shapes_cnn", (28, 28, 3), 10)
    assert model_cost.study_seconds_per_image(models["small"], lie) == pytest.approx(
        2 * (macs * (1 + 2.5 / 2) / 50e9 + 1e-3)
    )


def test_with_cka_every_model_is_split_alike_and_a_shard_holds_a_minibatch():
    """CKA pairs the models' minibatches of the same images, made within one shard: with CKA on, every model
    gets the largest model's shard count (and auto at least one minibatch a shard); with it off, each its own."""
    from convlens.config import ImageEntry

    base = {
        "datasets": {"shapes": {"kind": "shapes", "image_size": 28}},
        "models": {
            "small": {"source": "train", "architecture": "shapes_cnn", "dataset": "shapes"},
            "vgg": {"source": "load", "application": "VGG16", "input_size": 224},
        },
        "images": [{"dataset": "shapes", "count": 4}],
        "heatmaps": {"methods": ["gradcam"]},
        "lie_derivative": False,
        "transforms": [{"kind": "hflip"}],
    }
    images = [ImageEntry(f"im{i}") for i in range(1000)]
    off = validate({**base, "cka": {"enabled": False}})
    alone = model_cost.shard_plan(images, off, ["small", "vgg"])
    per_job = {m: model_cost.images_per_job(off["models"][m], off) for m in ("small", "vgg")}
    assert per_job["small"] >= 1024 and per_job["vgg"] == 128  # 0.62 s an image: 162 images for ten starts
    assert len(alone["small"]) == 1 and len(alone["vgg"]) == shard_count(1000, 128) == 8
    cfg = validate({**base, "cka": {"enabled": True, "batch_images": 16}})
    together = model_cost.shard_plan(images, cfg, ["small", "vgg"])
    assert together["small"] == together["vgg"] == alone["vgg"]
    assert sorted(i.id for s in together["small"].values() for i in s) == sorted(i.id for i in images)
    # a costly model: auto gives at least a minibatch (16 images) a shard while CKA is on
    costly = validate(
        {**base, "heatmaps": {"methods": ["integrated_gradients", "smoothgrad"]}, "cka": {"enabled": True}}
    )
    assert model_cost.images_per_job(costly["models"]["vgg"], costly) == costly["cka"]["batch_images"]


def test_a_folder_dataset_has_no_size_before_its_files_are_read():
    spec = {"source": "train", "architecture": "shapes_cnn", "dataset": "photos"}
    datasets = {"photos": {"kind": "folder", "image_size": 28}}  # the schema fills image_size in every dataset
    assert model_cost.forward_macs(spec, datasets) is None
    cfg = {"datasets": datasets, "transforms": [], "images_per_job": "auto"}
    assert model_cost.images_per_job(spec, cfg) == model_cost.FALLBACK_IMAGES_PER_JOB
    assert model_cost.unknown_cost({"m": spec}, cfg) == ["m"]
    assert model_cost.unknown_cost({"m": {**spec, "images_per_job": 9}}, cfg) == []

"""Suspicious setups (convlens.suspicious): warnings as data, each against a hand-made case."""

import numpy as np

from convlens import suspicious


def test_application_looking_model_with_unit_pixels_is_flagged_only_when_preprocess_was_auto():
    vgg_layers = [f"block{b}_conv{c}" for b in range(1, 6) for c in range(1, 4)]
    warned = suspicious.application_preprocess(
        "models/vgg.keras", "config.models.m.preprocess", "functional", vgg_layers, "unit", "auto"
    )
    assert warned["kind"] == "preprocess"
    assert "models/vgg.keras looks like a keras.applications VGG model (layer 'block5_conv3')" in warned["message"]
    assert "set config.models.m.preprocess: caffe" in warned["message"]
    by_name = suspicious.application_preprocess("r.keras", "k", "resnet50", ["conv1_conv"], "unit", "auto")
    assert "ResNet model (model name 'resnet50')" in by_name["message"] and "'caffe'" in by_name["message"]
    assert (
        "'tf'"
        in suspicious.application_preprocess("m.keras", "k", "mobilenetv2_1.00_224", [], "unit", "auto")["message"]
    )
    # the user chose unit, or the preprocessing is not unit, or it is the default shapes_cnn: no warning
    assert suspicious.application_preprocess("v.keras", "k", "functional", vgg_layers, "unit", "unit") is None
    assert suspicious.application_preprocess("v.keras", "k", "functional", vgg_layers, "caffe", "auto") is None
    shapes = [f"block{b}_conv{c}" for b in range(1, 4) for c in range(1, 3)]
    assert suspicious.application_preprocess("s.keras", "k", "shapes_cnn", shapes, "unit", "auto") is None


def test_stretched_photos_are_counted_only_beyond_the_tolerance_and_only_when_stretched():
    warned = suspicious.stretched_images(
        ["stretch", "stretch", "stretch", "crop", "stretch"], [0.75, 1.0, 1.03, 0.5, 4 / 3]
    )
    assert warned["kind"] == "stretched"
    assert warned["message"].startswith("2 of 5 images were stretched") and "up to 1.33x" in warned["message"]
    assert suspicious.stretched_images(["stretch", "pad"], [1.0, 0.5]) is None


def test_near_uniform_outputs_are_flagged_against_chance():
    assert suspicious.near_uniform([0.34, 0.36, 0.4], 3) is not None  # chance 0.333; all below 1.5 / 3 = 0.5
    assert suspicious.near_uniform([0.34, 0.36, 0.9], 3) is None  # one confident image: a working model
    assert suspicious.near_uniform([0.0011, 0.0012], 1000)["message"].startswith(
        "the model's outputs are near-uniform: the top probability is at most 0.001 over 2 images (1000 classes"
    )


def test_dead_layers_are_named_when_zero_on_every_image():
    pooled = {
        "a": {"c1": np.array([0.0, 0.2]), "c2": np.zeros(3), "c3": np.array([0.0, 0.0, 1e-6])},
        "b": {"c1": np.zeros(2), "c2": np.zeros(3), "c3": np.zeros(3)},
    }
    warned = suspicious.dead_layers(pooled, ["c1", "c2", "c3"])
    assert warned["message"].startswith("1 of 3 conv/pool layers are all zero on every one of 2 images (dead: c2)")
    assert suspicious.dead_layers({"a": {"c1": np.ones(2)}}, ["c1"]) is None

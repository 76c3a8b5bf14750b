"""Suspicious setups: runs that work but whose results are likely not what the user meant.

Each check returns warnings as data, ``{"kind": ..., "message": ...}``: the stage that finds one
logs it and writes it into its JSON (``info.json``, ``study.json``), and the report shows them all
in one place (the run summary's Warnings). Plain numpy, no TensorFlow.
"""

from __future__ import annotations

import numpy as np

from convlens.data import ASPECT_TOLERANCE, stretched

# the preprocessing each keras.applications family's ImageNet weights expect (as models.APPLICATION_PREPROCESS)
FAMILY_PREPROCESS = {
    "VGG": "caffe",
    "ResNet": "caffe",
    "ResNetV2": "tf",
    "MobileNet": "tf",
    "MobileNetV2": "tf",
    "MobileNetV3": "raw255",
    "DenseNet": "torch",
    "EfficientNet": "raw255",
    "Xception": "tf",
    "Inception": "tf",
    "NASNet": "tf",
    "ConvNeXt": "raw255",
}
# model.name prefixes keras.applications gives its models (kept when saved to .keras), most specific first
MODEL_NAMES = (
    ("vgg", "VGG"),
    ("resnet50v2", "ResNetV2"),
    ("resnet101v2", "ResNetV2"),
    ("resnet152v2", "ResNetV2"),
    ("resnet", "ResNet"),
    ("mobilenetv3", "MobileNetV3"),
    ("mobilenetv2", "MobileNetV2"),
    ("mobilenet", "MobileNet"),
    ("densenet", "DenseNet"),
    ("efficientnet", "EfficientNet"),
    ("xception", "Xception"),
    ("inception", "Inception"),
    ("nasnet", "NASNet"),
    ("convnext", "ConvNeXt"),
)
# layer names only keras.applications families use, most specific first
LAYER_SIGNATURES = (
    ("block5_conv3", "VGG"),
    ("conv2_block1_preact_bn", "ResNetV2"),
    ("conv2_block1_0_conv", "ResNet"),
    ("conv2_block1_concat", "DenseNet"),
    ("expanded_conv_depthwise", "MobileNetV2"),
    ("conv_dw_1", "MobileNet"),
    ("block1a_dwconv", "EfficientNet"),
    ("block2_sepconv1", "Xception"),
    ("mixed10", "Inception"),
)
NEAR_UNIFORM = 1.5  # outputs are near-uniform when the top probability stays below 1.5 / n_classes


def warning(kind: str, message: str) -> dict:
    return {"kind": kind, "message": message}


def application_family(model_name: str, layer_names: list[str]) -> tuple[str, str] | None:
    """(keras.applications family, the evidence) when a model looks like one, else None."""
    lowered = model_name.lower()
    for prefix, family in MODEL_NAMES:
        if lowered.startswith(prefix):
            return family, f"model name {model_name!r}"
    names = set(name.rsplit("/", 1)[-1] for name in layer_names)
    for layer, family in LAYER_SIGNATURES:
        if layer in names:
            return family, f"layer {layer!r}"
    return None


def application_preprocess(
    source: str, preprocess_key: str, model_name: str, layer_names: list[str], preprocess: str, chosen: str
) -> dict | None:
    """A warning when a model file looks like a keras.applications model but gets ``unit`` pixels
    because preprocess was left at ``auto`` (``chosen``): ImageNet weights expect their own scaling."""
    if preprocess != "unit" or chosen != "auto":
        return None
    found = application_family(model_name, layer_names)
    if not found:
        return None
    family, evidence = found
    expected = FAMILY_PREPROCESS[family]
    return warning(
        "preprocess",
        f"{source} looks like a keras.applications {family} model ({evidence}) but gets "
        f"preprocess 'unit' ([0, 1] pixels, the auto choice for a file); ImageNet weights "
        f"of {family} expect {expected!r}: set {preprocess_key}: {expected}, or "
        f"{preprocess_key}: unit if it was trained on [0, 1] pixels",
    )


def stretched_images(resize_modes: list[str], aspect_changes: list[float]) -> dict | None:
    """A warning counting the images whose aspect ratio a ``stretch`` resize changed by more than
    ``ASPECT_TOLERANCE`` (a 4:3 photo on a square input: 33 %)."""
    flagged = [
        max(c, 1 / c)
        for mode, c in zip(resize_modes, aspect_changes, strict=False)
        if mode == "stretch" and c > 0 and stretched(c)
    ]
    if not flagged:
        return None
    return warning(
        "stretched",
        f"{len(flagged)} of {len(aspect_changes)} images were stretched to the model's input "
        f"shape, their aspect ratio changed by more than {ASPECT_TOLERANCE:.0%} (up to "
        f"{max(flagged):.2f}x): set resize: crop or resize: pad to keep it",
    )


def near_uniform(confidences: list[float], n_classes: int) -> dict | None:
    """A warning when the top probability stays close to chance (below ``NEAR_UNIFORM`` / n_classes) on
    every measured image: an untrained model, wrong preprocessing, or a broken output layer."""
    conf = np.asarray(confidences, dtype=np.float64)
    if not len(conf) or n_classes < 2 or conf.max() >= NEAR_UNIFORM / n_classes:
        return None
    return warning(
        "near-uniform",
        f"the model's outputs are near-uniform: the top probability is at most "
        f"{conf.max():.3f} over {len(conf)} images ({n_classes} classes, chance "
        f"{1 / n_classes:.3f}); check the weights and the preprocess key",
    )


def dead_layers(pooled: dict[str, dict[str, np.ndarray]], layers: list[str]) -> dict | None:
    """A warning naming the layers whose feature maps are zero everywhere on every measured image
    (their globally average-pooled maps, which the measure jobs keep, are all zero)."""
    if not pooled:
        return None
    dead = [layer for layer in layers if all(not np.any(np.asarray(features[layer])) for features in pooled.values())]
    if not dead:
        return None
    return warning(
        "dead-layers",
        f"{len(dead)} of {len(layers)} conv/pool layers are all zero on every one of "
        f"{len(pooled)} images (dead: {', '.join(dead)}); their maps and metrics say nothing",
    )

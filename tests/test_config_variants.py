"""Config checks of the training variants (augment, antialias, transfer) and the digits dataset."""

from pathlib import Path

import pytest

from convlens import config as cfgmod
from convlens.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def base_config():
    return {
        "datasets": {"shapes": {"kind": "shapes"}, "digits": {"kind": "digits"}},
        "models": {"m": {"source": "train", "architecture": "shapes_cnn", "dataset": "shapes"}},
        "images": [{"dataset": "digits", "count": 10}],
    }


def test_variants_and_digits_are_accepted_with_defaults():
    cfg = base_config()
    cfg["models"]["m"].update(augment={"shift_px": 2, "hflip": True}, antialias={"filter_size": 4})
    cfg["models"]["d"] = {"source": "train", "architecture": "mnist_cnn", "dataset": "digits", "antialias": True}
    cfg["models"]["t"] = {
        "source": "train",
        "architecture": "transfer",
        "dataset": "shapes",
        "base": "MobileNetV2",
        "base_options": {"alpha": 0.35},
        "fine_tune": 3,
    }
    out = cfgmod.validate(cfg)
    assert out["models"]["m"]["augment"] == {
        "shift_px": 2,
        "rotate_deg": 0,
        "scale": [1.0, 1.0],
        "hflip": True,
        "vflip": False,
        "fill_mode": "constant",
    }
    assert out["datasets"]["digits"]["image_size"] == 28
    # absent keys stay absent, so configs without variants keep their exact training parameters
    assert "antialias" not in out["models"]["t"] and "augment" not in out["models"]["d"]


@pytest.mark.parametrize(
    "edit,expected",
    [
        (
            lambda c: c["models"].update(l={"source": "load", "application": "VGG16", "augment": {"shift_px": 1}}),
            "config.models.l.augment: only for source train",
        ),
        (lambda c: c["models"]["m"].update(base="VGG16"), "config.models.m.base: only for architecture transfer"),
        (lambda c: c["models"]["m"].update(augment={"rotate_deg": 0}), "config.models.m.augment: changes nothing"),
        (
            lambda c: c["models"]["m"].update(augment={"scale": [1.2, 0.9]}),
            "config.models.m.augment.scale: [1.2, 0.9] must have low <= high",
        ),
        (lambda c: c["models"]["m"].update(augment={"shear": 3}), "config.models.m.augment: unknown key(s) 'shear'"),
        (lambda c: c["models"]["m"].update(antialias={"filter_size": 9}), "config.models.m.antialias"),
        (
            lambda c: c["models"]["m"].update(architecture="transfer"),
            "config.models.m.base: required for architecture transfer",
        ),
        (
            lambda c: c["models"]["m"].update(architecture="transfer", base="VGG17"),
            "config.models.m.base: 'VGG17' is not allowed; allowed: VGG16, VGG19",
        ),
        (
            lambda c: c["models"]["m"].update(architecture="transfer", base="VGG16", antialias=True),
            "config.models.m.antialias: only for shapes_cnn and mnist_cnn",
        ),
        (
            lambda c: c["models"]["m"].update(architecture="transfer", base="VGG16", base_weights="nope.weights.h5"),
            "config.models.m.base_weights: file 'nope.weights.h5' does not exist",
        ),
        (
            lambda c: c["models"]["m"].update(architecture="transfer", base="VGG16", base_weights="weights.bin"),
            "must be null, imagenet or a .weights.h5, .h5 or .keras file",
        ),
        (
            lambda c: c["models"]["m"].update(architecture="transfer", base="VGG16", dataset="digits"),
            "config.models.m.dataset: transfer needs RGB images",
        ),
        (
            lambda c: c["models"]["m"].update(architecture="transfer", base="VGG16", fine_tune=0),
            "config.models.m.fine_tune",
        ),
        (
            lambda c: c["images"].append({"dataset": "digits", "indices": [539]}),
            "index 539 is past the end of the test split (539 images)",
        ),
    ],
)
def test_bad_variant_config_fails_with_one_line(edit, expected):
    cfg = base_config()
    edit(cfg)
    with pytest.raises(ConfigError) as info:
        cfgmod.validate(cfg, base_dir=ROOT)
    assert expected in str(info.value) and "\n" not in str(info.value)

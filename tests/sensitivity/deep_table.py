"""A synthetic study table over a deep model's layers (MobileNetV2, 52 conv layers) for the plot tests."""

import numpy as np
import pandas as pd

from convlens import transforms as tr
from convlens.attribution.registry import METHODS
from convlens.sensitivity import metrics as sensitivity

SPECS = [
    {"kind": "rotate", "range": [-90, 90, 15]},
    {"kind": "shift", "range": [-8, 8, 4]},
    {"kind": "scale", "range": [0.7, 1.3, 0.1]},
    {"kind": "hflip"},
    {"kind": "vflip"},
]


def deep_layers() -> list[str]:
    """The conv and pooling layers of keras.applications.MobileNetV2 (alpha 0.35, 1000 classes)."""
    import keras

    from convlens.core.layers import feature_layers

    model = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3), classes=1000)
    return feature_layers(model)


def deep_table(layers: list[str], images=("a", "b"), seed: int = 0):
    """Every metric of every image × transform × layer (and every heatmap method), random but in range."""
    rng = np.random.default_rng(seed)
    transforms = tr.build_transforms(SPECS)
    rows = []
    for image in images:
        for t in transforms:
            same = t.name == "identity"
            for depth, layer in enumerate(layers):
                rows.append(
                    (
                        image,
                        t.name,
                        t.param,
                        layer,
                        "equivariance_error",
                        0.0 if same else rng.random() * (1 - 0.5 * depth / len(layers)),
                    )
                )
                rows.append((image, t.name, t.param, layer, "invariance_cosine", 1.0 if same else rng.random()))
            rows.append((image, t.name, t.param, "input", "equivariance_floor", 0.0 if same else 0.1 * rng.random()))
            flip = float(not same and rng.random() < 0.3)
            rows += [
                (image, t.name, t.param, "output", "top1_change", flip),
                (image, t.name, t.param, "output", "prob_change", flip * rng.random()),
                (image, t.name, t.param, "output", "kl_divergence", rng.random()),
                (image, t.name, t.param, "output", "correct", 1.0 - flip),
            ]
            for method in METHODS:
                rows.append((image, t.name, t.param, method, "heatmap_pearson", 1.0 if same else rng.random()))
    return pd.DataFrame(rows, columns=sensitivity.COLUMNS), transforms

"""The sensitivity stage's suspicious-setup warnings over all measured images (stages.sensitivity)."""

import numpy as np
import pandas as pd

from convlens.stages.sensitivity import study_warnings


def test_stretched_photos_dead_layers_and_near_uniform_outputs_are_warned_over_all_images():
    images = pd.DataFrame(
        {
            "image": ["a", "b", "c"],
            "confidence": ["0.36", "0.4", "0.35"],
            "resize": ["stretch", "stretch", "crop"],
            "aspect_change": ["0.75", "1.0", "1.0"],
        }
    )
    pooled = {i: {"conv1": np.array([0.5, 0.0]), "conv2": np.zeros(4)} for i in "abc"}
    found = study_warnings(images, pooled, ["conv1", "conv2"], n_classes=3)
    assert [w["kind"] for w in found] == ["stretched", "dead-layers", "near-uniform"]
    assert found[0]["message"].startswith("1 of 3 images were stretched") and "(dead: conv2)" in found[1]["message"]
    # tables from before the resize columns, a confident model, live layers: nothing to say
    old = pd.DataFrame({"image": ["a"], "confidence": ["0.9"], "resize": [np.nan], "aspect_change": [np.nan]})
    assert study_warnings(old, {"a": {"conv1": np.ones(2)}}, ["conv1"], n_classes=3) == []

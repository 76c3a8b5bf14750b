"""The method_quality stage (stages.method_quality): its table holds the library's numbers."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from convlens import attribution  # noqa: E402
from convlens.core.head import TARGET_PREDICTED  # noqa: E402
from convlens.stages.method_quality import method_quality  # noqa: E402


def test_method_quality_table_matches_the_library(tmp_path):
    """The quality table holds the numbers cascading_randomization gives for the same images and seed."""
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
    method_quality(str(tmp_path / "m.keras"), str(tmp_path / "info.json"), images, cfg, 3, 2, out)
    table = pd.read_csv(tmp_path / "q.csv").set_index("method")
    x = np.stack([np.asarray(Image.open(tmp_path / f"im{i}.png")) for i in range(2)]).astype(np.float32) / 255
    targets = np.full(2, TARGET_PREDICTED)
    again = attribution.cascading_randomization(model, x, targets, ["saliency", "cam"], seed=3)
    assert table.loc["saliency", "spearman_randomized"] == pytest.approx(np.nanmean(again["spearman"]["saliency"][-1]))
    assert bool(table.loc["saliency", "insensitive"]) == again["insensitive"]["saliency"]
    assert (tmp_path / "qf" / "randomization.png").is_file() and (tmp_path / "qf" / "deletion_insertion.png").is_file()

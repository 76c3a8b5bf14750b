"""The measure stage with ``lie_derivative`` on and a shift sweep: Lie derivative and consistency rows
next to the study's, and the sensitivity study reads the table."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from convlens.stages.load_model import load_model  # noqa: E402
from convlens.stages.measure import measure_shard  # noqa: E402
from convlens.stages.sensitivity import sensitivity_study  # noqa: E402
from tests.helpers import analysis_config  # noqa: E402

TRANSFORMS = [
    {"kind": "shift", "range": [-2, 2, 1], "direction": "x"},
    {"kind": "rotate", "angle_deg": 10},
    {"kind": "shift", "range": [-1, 1, 1], "direction": "y", "mode": "circular"},
    {"kind": "shift", "range": [-1, 1, 1], "direction": "y", "mode": "crop"},
]


def test_lie_and_consistency_rows_and_the_study_reads_them(tmp_path):
    # conv, stride-2 pool, conv, softmax head: the shapes CNN's kinds of layer in a graph a third of its size
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((28, 28, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x)).save(tmp_path / "m.keras")
    out = {
        k: str(tmp_path / f"{k}.{ext}") for k, ext in (("model", "keras"), ("info", "json"), ("architecture", "csv"))
    }
    load_model("m", {"source": "load", "path": str(tmp_path / "m.keras"), "class_names": ["a", "b", "c"]}, 2, out)
    rng = np.random.default_rng(0)
    sources = []
    for name in ("one", "two", "three", "four"):
        Image.fromarray((rng.random((28, 28, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
        sources.append({"id": name, "path": str(tmp_path / f"{name}.png"), "resize": "stretch"})
    # 2 images per chunk, two chunks of the same size: the Lie step compiles once (a last chunk of another
    # size would compile it again, 26 s of CPU)
    cfg = analysis_config(transforms=TRANSFORMS, lie_derivative=True, batch_size=28)
    shard = {
        k: str(tmp_path / "shard" / f"{k}.{e}")
        for k, e in (("metrics", "csv.gz"), ("images", "csv"), ("pooled", "npz"))
    }
    measure_shard(out["model"], out["info"], sources, cfg, 2, shard)
    table = pd.read_csv(shard["metrics"], keep_default_na=False, na_values=[""])
    lie = table[table["metric"] == "lie_derivative"]
    layers = [c for c in table.loc[table["metric"] == "equivariance_error", "layer"].unique()]
    assert len(lie) == 4 * 3 * (1 + len(layers))  # images × generators (shift_x, shift_y, rotate) × (output + layers)
    assert set(lie["transform"]) == {"shift_x", "shift_y", "rotate"} and lie["value"].notna().all()
    assert (lie.loc[lie["layer"] == "output", "value"] > 0).all()
    kept = table[table["metric"] == "consistency"]
    assert list(kept["transform"]) == ["shift_x", "shift_y_circular", "shift_y_crop"] * 4
    fill_x = table["transform"].str.match(r"^(identity|shift_dx-?\d+_dy0)$")
    probs_rows = table[(table["metric"] == "top1_change") & fill_x]
    for image, rows in probs_rows.groupby("image"):
        changed = rows["value"].to_numpy()  # 1 where the class differs from the reference's
        same = (changed == 0).sum()
        other = len(changed) - same  # the classes of the changed rows may differ among themselves: at least
        value = kept.loc[(kept["image"] == image) & (kept["transform"] == "shift_x"), "value"].item()
        assert value >= (same * (same - 1) / 2) / (len(changed) * (len(changed) - 1) / 2) - 1e-12
        if other <= 1:  # then the count is exact
            assert value == pytest.approx((same * (same - 1) / 2) / (len(changed) * (len(changed) - 1) / 2))
    study = {k: str(tmp_path / "study" / f"{k}.{e}") for k, e in (("images", "csv"), ("manifest", "json"))}
    study["figures"] = str(tmp_path / "study" / "figures")
    sensitivity_study([shard], TRANSFORMS, 0, study, out["info"])
    assert (tmp_path / "study" / "manifest.json").exists()

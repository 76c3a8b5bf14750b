"""The comparison stage with differently-structured models: layers paired by structure, a warning
naming the unpaired one, no difference across a same-named layer of another stride."""

import json

import numpy as np
import pandas as pd

from convlens.stages.comparison import compare_models

PLAIN = [("conv1", 28, 1.0), ("pool1", 14, 2.0), ("conv2", 14, 2.0)]
OTHER = [("conv1", 28, 1.0), ("pool1", 28, 1.0), ("pool1_blur", 14, 2.0), ("conv2", 14, 2.0)]


def write_model(tmp_path, name, layers, offset):
    rng = np.random.default_rng(len(name))
    rows = []
    for i in range(8):
        for t in ("identity", "hflip"):
            for k, (layer, _, _) in enumerate(layers):
                value = 0.0 if t == "identity" else 0.1 * k + offset + 0.01 * rng.random()
                rows.append(
                    {"image": f"im{i}", "transform": t, "param": "", "layer": layer}
                    | {"metric": "equivariance_error", "value": value}
                )
            rows.append(
                {"image": f"im{i}", "transform": t, "param": "", "layer": "output", "metric": "top1_change"}
                | {"value": float(t == "hflip" and i % 2)}
            )
    metrics = tmp_path / f"{name}_metrics.csv"
    pd.DataFrame(rows).to_csv(metrics, index=False)
    study = tmp_path / f"{name}_study.json"
    study.write_text(json.dumps({"layers": [la for la, _, _ in layers]}))
    structure = tmp_path / f"{name}_layers.csv"
    pd.DataFrame([{"layer": la, "height": h, "width": h, "channels": 8, "stride": s} for la, h, s in layers]).to_csv(
        structure, index=False
    )
    return str(metrics), str(study), str(structure)


def test_a_stride_one_pool_is_not_compared_with_a_stride_two_pool(tmp_path):
    files = {"plain": write_model(tmp_path, "plain", PLAIN, 0.0), "aa": write_model(tmp_path, "aa", OTHER, 0.5)}
    out = {k: str(tmp_path / f"{k}.csv") for k in ("summary", "differences", "group_summary", "group_differences")}
    out |= {"manifest": str(tmp_path / "comparison.json"), "figures": str(tmp_path / "figures")}
    options = {"reference": "plain", "n_boot": 200, "level": 0.95, "adjust": "bh", "test": "t", "layers": {}}
    compare_models(
        {m: f[0] for m, f in files.items()},
        {m: f[1] for m, f in files.items()},
        [{"kind": "hflip"}],
        options,
        0,
        out,
        {m: f[2] for m, f in files.items()},
    )
    manifest = json.loads(open(out["manifest"]).read())
    assert any("layer pool1 (28×28×8, stride 1) not paired by name" in w for w in manifest["layer_pairing"])
    assert manifest["layers"] == ["conv1", "pool1 (aa)", "pool1", "conv2"]
    summary = pd.read_csv(out["summary"], keep_default_na=False, na_values=[""])
    aa = summary[(summary["model"] == "aa") & (summary["transform"] == "hflip")].set_index("layer")["mean"]
    # aa's pool1_blur (k = 2: 0.7 + noise) is measured under the plain model's pool1; its own pool1 apart
    assert 0.7 <= aa["pool1"] <= 0.71 and 0.6 <= aa["pool1 (aa)"] <= 0.61
    diffs = pd.read_csv(out["differences"], keep_default_na=False, na_values=[""])
    compared = set(diffs[diffs["transform"] == "hflip"]["layer"])
    assert "pool1 (aa)" not in compared and {"conv1", "pool1", "conv2"} <= compared

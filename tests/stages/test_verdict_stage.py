"""Rule verdict's stage end to end on fabricated per-image tables whose answer is known: model b keeps
its prediction under rotation where the reference a flips it on every image, and the two agree under
hflip. The comparison's own code makes the tables; the verdict's numbers are checked against numpy."""

import json

import numpy as np
import pandas as pd

from convlens.sensitivity import comparison as cmp
from convlens.stages.verdict import build_verdict
from convlens.transforms import build_transforms

SPECS = [{"kind": "rotate", "range": [-90, 90, 90]}, {"kind": "hflip"}]
N = 40


def tidy(flips_under_rotate: np.ndarray, hflip_flips: np.ndarray, labels_right: np.ndarray) -> pd.DataFrame:
    rows = []
    for i in range(N):
        image = f"img-{i:02d}"
        for t, flip in (("identity", 0), ("rotate_-90", flips_under_rotate[i]), ("rotate_90", flips_under_rotate[i])):
            rows.append((image, t, "", "output", "top1_change", flip))
            rows.append((image, t, "", "output", "correct", float(labels_right[i] and not flip)))
        rows.append((image, "hflip", "", "output", "top1_change", hflip_flips[i]))
        rows.append((image, "hflip", "", "output", "correct", float(labels_right[i] and not hflip_flips[i])))
        for t in ("rotate_-90", "rotate_90", "hflip"):
            rows.append((image, t, "", "conv2", "equivariance_error", 0.5 + 0.01 * (i % 3)))
    return pd.DataFrame(rows, columns=["image", "transform", "param", "layer", "metric", "value"])


def test_the_verdict_says_which_model_is_more_robust_with_the_comparisons_numbers(tmp_path):
    rng = np.random.default_rng(3)
    hflip = (rng.random(N) < 0.2).astype(float)
    right = rng.random(N) < 0.9
    b_rotate = np.zeros(N)
    b_rotate[:4] = 1.0
    tables = {"a": tidy(np.ones(N), hflip, right), "b": tidy(b_rotate, hflip, right)}
    wide = cmp.widen(tables)
    summary, _ = cmp.compare(wide, "a", 400, 0.95, 0)
    grouped = cmp.group_transforms(wide, build_transforms(SPECS))
    group_summary, group_diffs = cmp.compare(grouped, "a", 400, 0.95, 0)
    paths = {}
    for name, frame in (("summary", summary), ("group_summary", group_summary), ("group_differences", group_diffs)):
        paths[name] = tmp_path / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    paths["manifest"] = tmp_path / "comparison.json"
    paths["manifest"].write_text(
        json.dumps(
            {"models": ["a", "b"], "reference": "a", "level": 0.95, "images": N, "deepest_common_layer": "conv2"}
        )
    )
    baseline = tmp_path / "baseline.csv"
    pd.DataFrame({"layer": ["conv2"], "mean": [0.9], "std": [0.01], "n_pairs": [780]}).to_csv(baseline, index=False)
    out = tmp_path / "verdict.json"
    build_verdict(paths, {"a": baseline, "b": baseline}, {}, SPECS, str(out), str(tmp_path / "verdict.png"))
    verdict = json.loads(out.read_text())
    assert (tmp_path / "verdict.png").is_file() and verdict["figure"] == "verdict.png"
    # clean accuracy: the identity rows, against numpy
    assert np.isclose(verdict["clean_accuracy"]["a"], right.mean()) and np.isclose(
        verdict["clean_accuracy"]["b"], right.mean()
    )
    sentences = verdict["sentences"]
    assert sentences[0] == (
        "Judged by how often the prediction flips: b is more robust than a to rotate (most under rotate: "
        "flip rate -90.0 points, 95 % CI -97.5 to -80 points); a difference under hflip is not supported."
    )
    # the flip rate under rotation: 4 of 40 against 40 of 40
    assert any("less often under rotate (0.1 against 1 of the images, -90.0 points" in s for s in sentences)
    assert not any("more often" in s for s in sentences)
    rows = pd.DataFrame(verdict["key_rows"])
    flip = rows[(rows["measure"] == "flip_rate") & (rows["group"] == "rotate")].set_index("model")["mean"]
    assert np.isclose(flip["a"], 1.0) and np.isclose(flip["b"], b_rotate.mean())
    acc = rows[(rows["measure"] == "accuracy") & (rows["group"] == "hflip")].set_index("model")["mean"]
    assert np.isclose(acc["a"], (right & (hflip == 0)).mean())
    assert set(rows["measure"]) == {"accuracy", "flip_rate", "equivariance_error"}

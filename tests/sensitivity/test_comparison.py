"""The comparison's tables on hand-made tidy tables of two or three models with known differences."""

import numpy as np
import pandas as pd
import pytest

from convlens import stats
from convlens.sensitivity import comparison as cmp
from convlens.transforms import Transform

IMAGES = [f"img{i}" for i in range(6)]


def tidy(values: dict[tuple, list[float]], images=IMAGES) -> pd.DataFrame:
    """A model's tidy table from (transform, param, layer, metric) -> one value per image."""
    rows = [(im, *key, v) for key, vs in values.items() for im, v in zip(images, vs, strict=False)]
    frame = pd.DataFrame(rows, columns=["image", "transform", "param", "layer", "metric", "value"])
    for c in frame.columns[:-1]:
        frame[c] = frame[c].astype("category")
    return frame


ERR = ("shift_dx1_dy0", "dx=1,dy=0", "pool2", "equivariance_error")
FLIP = ("shift_dx1_dy0", "dx=1,dy=0", "output", "top1_change")
CONV = ("shift_dx1_dy0", "dx=1,dy=0", "conv1", "equivariance_error")


def two_models(shift=-0.3, seed=0):
    r = np.random.default_rng(seed)
    base = r.uniform(0.4, 0.8, 6)
    flips = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    conv = r.uniform(0.1, 0.2, 6)
    a = tidy({ERR: list(base), FLIP: flips, CONV: list(conv)})
    b = tidy({ERR: list(base + shift + r.normal(0, 0.01, 6)), FLIP: flips, CONV: list(conv)})
    return {"baseline": a, "antialiased": b}


def test_a_known_difference_is_found_with_its_interval_and_identical_values_give_none():
    wide = cmp.widen(two_models(shift=-0.3))
    summary, diffs = cmp.compare(wide, "baseline", n_boot=2000, level=0.95, seed=0)
    assert list(summary.columns) == ["model", "transform", "param", "layer", "metric", "mean", "ci_low", "ci_high", "n"]
    assert len(summary) == 6 and (summary["n"] == 6).all()
    assert (summary["ci_low"] <= summary["mean"]).all() and (summary["mean"] <= summary["ci_high"]).all()
    err = diffs[diffs["layer"] == "pool2"].iloc[0]
    assert err["model"] == "antialiased" and err["reference"] == "baseline" and err["n"] == 6
    assert err["difference"] == pytest.approx(err["mean_model"] - err["mean_reference"])
    # the interval holds the sample's difference, excludes 0, and the difference is the one built in
    assert err["ci_low"] < err["difference"] < err["ci_high"] < 0 and err["difference"] == pytest.approx(-0.3, abs=0.02)
    assert err["p_value"] < 1e-6 and err["p_adj"] < 0.05 and cmp.supported(err, 0.95)
    for same in (diffs[diffs["layer"] == "output"].iloc[0], diffs[diffs["layer"] == "conv1"].iloc[0]):
        assert same["difference"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0
        assert same["p_value"] == 1 and not cmp.supported(same, 0.95)


def test_the_differences_interval_is_the_bootstrap_of_the_paired_differences():
    # where both models measured every image, the difference's replicates are taken as the difference
    # of the models' replicates: the same as resampling the paired differences with the same seed
    models = two_models(shift=0.1, seed=3)
    models["antialiased"].loc[0, "value"] = np.nan  # and one pair missing: resampled directly
    wide = cmp.widen(models)
    _, diffs = cmp.compare(wide, "baseline", n_boot=500, level=0.9, seed=4)
    direct = stats.mean_ci(wide.values["antialiased"] - wide.values["baseline"], n_boot=500, level=0.9, seed=4)
    order = [list(map(tuple, wide.keys.to_numpy())).index(tuple(r)) for r in diffs[cmp.KEYS].to_numpy()]
    assert np.allclose(diffs["ci_low"], direct["ci_low"][order]) and np.allclose(
        diffs["ci_high"], direct["ci_high"][order]
    )
    assert list(diffs["n"]) == list(direct["n"][order])
    assert diffs.set_index("layer").loc["pool2", "n"] == 5


def test_images_are_matched_by_id_and_groups_missing_in_a_model_are_left_out():
    a = tidy({ERR: [1, 2, 3, 4, 5, 6], CONV: [0, 0, 0, 0, 0, 0]})
    # the other model lists its images in another order, misses img0 and has no conv1
    b = tidy({ERR: [7, 6, 5, 4, 3]}, images=["img5", "img4", "img3", "img2", "img1"])
    wide = cmp.widen({"a": a, "b": b})
    assert wide.images == IMAGES and len(wide.keys) == 2
    summary, diffs = cmp.compare(wide, "a", n_boot=200)
    assert len(summary) == 3  # b has no conv1 row
    row = diffs.iloc[0]
    assert len(diffs) == 1 and row["layer"] == "pool2" and row["n"] == 5
    assert row["difference"] == pytest.approx(1.0) and row["mean_reference"] == pytest.approx(4.0)


def test_one_model_gives_the_summary_and_no_differences():
    wide = cmp.widen({"only": two_models()["baseline"]})
    summary, diffs = cmp.compare(wide, None, n_boot=200)
    assert len(summary) == 3 and len(diffs) == 0 and "p_adj" in diffs.columns


def test_transform_groups_split_shifts_by_parity_and_average_per_image():
    groups = [
        cmp.transform_group(Transform(k, p))
        for k, p in (
            ("identity", {}),
            ("shift", {"dx": 1, "dy": 0}),
            ("shift", {"dx": 2, "dy": 4}),
            ("shift", {"dx": 2, "dy": 1}),
            ("shift", {"dx": 0.5, "dy": 0}),
            ("rotate", {"angle_deg": 15}),
            ("hflip", {}),
        )
    ]
    assert groups == [
        None,
        "shift (odd px)",
        "shift (even px)",
        "shift (odd px)",
        "shift (sub-pixel)",
        "rotate",
        "hflip",
    ]
    transforms = [Transform("identity"), Transform("shift", {"dx": 1, "dy": 0}), Transform("shift", {"dx": 3, "dy": 0})]
    names = [t.name for t in transforms]
    a = tidy(
        {
            (names[0], "", "pool2", "equivariance_error"): [0.0] * 6,
            (names[1], "dx=1,dy=0", "pool2", "equivariance_error"): [1, 2, 3, 4, 5, 6],
            (names[2], "dx=3,dy=0", "pool2", "equivariance_error"): [3, 2, np.nan, 0, 1, 2],
        }
    )
    grouped = cmp.group_transforms(cmp.widen({"a": a}), transforms)
    assert grouped.keys.to_dict("records") == [
        {"group": "shift (odd px)", "layer": "pool2", "metric": "equivariance_error"}
    ]
    assert np.allclose(grouped.values["a"][:, 0], [2, 2, 3, 2, 3, 4])  # NaN left out of img2's mean


def test_layer_order_and_the_deepest_common_layer():
    base = ["c1", "p1", "c2", "p2", "c3"]
    blurred = ["c1", "p1", "blur1", "c2", "p2", "blur2", "c3"]
    assert cmp.layer_order([base, blurred]) == ["c1", "p1", "blur1", "c2", "p2", "blur2", "c3"]
    assert cmp.deepest_common([base, blurred]) == "c3"
    assert cmp.deepest_common([base, ["c1", "p1"]]) == "p1"


def test_findings_claim_only_supported_differences_and_say_when_images_are_few():
    models = two_models(shift=-0.3)
    wide = cmp.widen(models)
    transforms = [Transform("identity"), Transform("shift", {"dx": 1, "dy": 0})]
    grouped = cmp.group_transforms(wide, transforms)
    _, diffs = cmp.compare(grouped, "baseline", n_boot=1000, seed=0)
    sentences = cmp.findings(diffs, "pool2", 0.95, 1000, "bh")
    text = " ".join(sentences)
    assert "Only 6 images" in text and "Benjamini–Hochberg" in text
    body = [s for s in sentences if s.startswith("antialiased vs baseline, under shift (odd px)")]
    assert len(body) == 1
    assert "equivariance error at pool2 lower by 0.3" in body[0]  # the known difference, with its interval
    assert "flip rate: no detectable difference (+0, 95 % CI 0 to 0 spans 0)" in body[0]
    key = cmp.key_table(diffs, "pool2", 0.95)
    assert list(key["supported"]) == [False, True]  # flip rate, pool2 error; no MAC or cosine in these tables
    assert cmp.findings(diffs.iloc[:0], "pool2", 0.95, 1000, "bh") == []


def test_the_wilcoxon_test_gives_its_exact_p_value_for_six_consistent_differences():
    wide = cmp.widen(two_models(shift=-0.3))
    _, diffs = cmp.compare(wide, "baseline", n_boot=200, test="wilcoxon")
    err = diffs.set_index("layer").loc["pool2"]
    assert err["statistic"] == 0 and err["p_value"] == pytest.approx(2 / 64)  # every image lower: 2 of 64 patterns
    assert (diffs.set_index("layer").loc[["output", "conv1"], "p_value"] == 1).all()


def test_the_prediction_before_the_first_layer_is_said_only_when_it_moved_more():
    base = {"model": "aug", "reference": "base", "group": "rotate", "n": 60, "statistic": 0.0}
    rows = pd.DataFrame(
        [
            {
                **base,
                "layer": "output",
                "metric": "prob_change",
                "mean_reference": 0.04,
                "mean_model": 0.004,
                "difference": -0.036,
                "ci_low": -0.05,
                "ci_high": -0.02,
                "p_value": 1e-4,
                "p_adj": 1e-3,
            },
            {
                **base,
                "layer": "c1",
                "metric": "equivariance_error",
                "mean_reference": 0.6,
                "mean_model": 0.58,
                "difference": -0.02,
                "ci_low": -0.03,
                "ci_high": -0.01,
                "p_value": 1e-4,
                "p_adj": 1e-3,
            },
        ]
    )
    said = cmp.prediction_before_layers(rows, "c1", 0.95)
    assert said.startswith("the prediction became more invariant before the first layer") and "(-90 %)" in said
    assert "c1 0.6 → 0.58 (-3 %)" in said
    early_moved_more = rows.assign(mean_model=[0.004, 0.06], difference=[-0.036, -0.54])
    assert cmp.prediction_before_layers(early_moved_more, "c1", 0.95) is None
    unsupported = rows.assign(ci_high=[0.01, -0.01])  # the MAC interval spans 0: nothing claimed
    assert cmp.prediction_before_layers(unsupported, "c1", 0.95) is None
    assert cmp.first_common([["a", "b", "c"], ["x", "b", "c"]]) == "b"

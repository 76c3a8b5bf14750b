"""User journey: two models of the tiny config compared in one run (rule comparison and its chapter), on
the session's shared run (tests/conftest.py default_like_run)."""

import json

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration


def test_two_models_are_compared_with_intervals_and_the_report_opens_with_it(default_like_run):
    two_model_run = default_like_run  # tiny and tiny2 (tests/conftest.py)
    folder = two_model_run / "results" / "comparison"
    summary = pd.read_csv(folder / "summary.csv", keep_default_na=False, na_values=[""])
    assert list(summary.columns) == ["model", "transform", "param", "layer", "metric", "mean", "ci_low", "ci_high", "n"]
    assert set(summary["model"]) == {"tiny", "tiny2"} and (summary["n"] == 2).all()  # 2 images, every group
    defined = summary.dropna(subset=["mean"])
    assert ((defined["ci_low"] <= defined["mean"] + 1e-9) & (defined["mean"] <= defined["ci_high"] + 1e-9)).all()
    # each model's means are its own study's means
    own = pd.read_csv(
        two_model_run / "results" / "tiny" / "sensitivity" / "summary.csv", keep_default_na=False, na_values=[""]
    )
    merged = summary[summary["model"] == "tiny"].merge(own, on=["transform", "param", "layer", "metric"])
    assert len(merged) == len(own) and np.allclose(merged["mean_x"], merged["mean_y"], rtol=1e-5, equal_nan=True)
    diffs = pd.read_csv(folder / "differences.csv", keep_default_na=False, na_values=[""])
    assert list(diffs.columns) == [
        "model",
        "reference",
        "transform",
        "param",
        "layer",
        "metric",
        "mean_model",
        "mean_reference",
        "difference",
        "ci_low",
        "ci_high",
        "n",
        "statistic",
        "p_value",
        "p_adj",
    ]
    assert set(diffs["model"]) == {"tiny2"} and set(diffs["reference"]) == {"tiny"} and len(diffs) == len(own)
    identity = diffs[(diffs["transform"] == "identity") & (diffs["metric"] == "equivariance_error")]
    assert len(identity) and (identity["difference"] == 0).all() and (identity["p_value"] == 1).all()
    tested = diffs.dropna(subset=["p_value"])
    assert ((tested["p_value"] >= 0) & (tested["p_value"] <= 1) & (tested["p_adj"] >= tested["p_value"] - 1e-12)).all()
    groups = pd.read_csv(folder / "differences_groups.csv", keep_default_na=False, na_values=[""])
    assert set(groups["group"]) == {
        "shift (even px)",
        "rotate",
        "hflip",
        "Lie derivative (shift)",  # lie_derivative is on by default (shift_x and shift_y pooled)
        "Lie derivative (rotate)",
        "consistency (shift x)",
    }
    manifest = json.loads((folder / "comparison.json").read_text())
    assert manifest["reference"] == "tiny" and manifest["images"] == 2 and manifest["deepest_common_layer"]
    assert any("Only 2 images" in s for s in manifest["findings"])
    assert (folder / "figures" / "by_layer.png").is_file() and (
        folder / "figures" / manifest["sweeps"]["rotate"]
    ).is_file()
    html = (two_model_run / "results" / "report" / "report.html").read_text()
    assert html.index('id="comparison"') < html.index('id="sensitivity"') < html.index('id="run-summary"')
    assert "comparison/figures/by_layer.png" in html and "tiny2 vs tiny, under rotate" in html

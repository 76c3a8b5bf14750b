"""User journey: two models of the tiny config compared in one run (rule comparison and its chapter), on
the session's shared run (tests/conftest.py default_like_run)."""

import json

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def two_model_run(default_like_run):
    """tiny and tiny2, the session's shared two-model run (tests/conftest.py, tests/runs.py)."""
    return default_like_run


def test_two_models_are_compared_with_intervals_and_the_report_opens_with_it(two_model_run):
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
        "clean",  # the shapes images have labels: clean accuracy, the scale of accuracy under each group
        "shift (even px)",
        "rotate",
        "hflip",
        "blur",
        "Lie derivative (shift)",  # lie_derivative is on by default (shift_x and shift_y pooled)
        "Lie derivative (rotate)",
        "consistency (shift x)",
    }
    manifest = json.loads((folder / "comparison.json").read_text())
    assert manifest["reference"] == "tiny" and manifest["images"] == 2 and manifest["deepest_common_layer"]
    assert any("Only 2 images" in s for s in manifest["findings"])
    accuracy = [r for r in manifest["key_table"] if r["metric"] == "correct"]
    assert [r["group"] for r in accuracy][:2] == ["clean", "shift (even px)"] and manifest["accuracy"] == "accuracy.png"
    assert (folder / "figures" / "by_layer.png").is_file() and (
        folder / "figures" / manifest["sweeps"]["rotate"]
    ).is_file()
    html = (two_model_run / "results" / "report" / "report.html").read_text()
    assert html.index('id="comparison"') < html.index('id="sensitivity"') < html.index('id="run-summary"')
    assert "comparison/figures/by_layer.png" in html and "tiny2 vs tiny, under rotate" in html
    assert "comparison/figures/accuracy.png" in html


def test_every_model_draws_the_same_exemplars_and_the_report_shows_them_side_by_side(two_model_run):
    from PIL import Image

    from convlens.exemplar_grid import layout

    results = two_model_run / "results"
    shared = json.loads((results / "exemplars.json").read_text())
    chosen = [e["image"] for e in shared["exemplars"]]
    assert shared["models"] == ["tiny", "tiny2"] and chosen
    for model in ("tiny", "tiny2"):  # each draw job drew exactly the study's exemplars, in its order
        drawn = json.loads((results / model / "exemplars.json").read_text())["exemplars"]
        assert [e["image"] for e in drawn] == chosen
        folders = [p.name for p in (results / model / "exemplars").iterdir() if not p.name.startswith(".")]
        assert sorted(folders) == sorted(chosen)  # (Snakemake's .snakemake_timestamp aside)
    side = json.loads((results / "exemplars" / "side_by_side.json").read_text())
    html = (results / "report" / "report.html").read_text()
    for entry in side["exemplars"]:
        figure = Image.open(results / "exemplars" / "figures" / entry["file"])
        lay = layout(len(entry["transforms"]), 2)  # a row per sheet transform, two models
        assert figure.size == (lay.width, lay.height)
        assert f"exemplars/figures/{entry['file']}" in html
    assert html.index('id="shared-exemplars"') < html.index('id="sensitivity"')


def test_the_summary_pdf_opens_with_the_verdict_and_its_pages_are_packed(two_model_run, tmp_path):
    from tests.pdf_pages import chapter_starts, outline_titles, pdf_text, underfilled_pages

    report = two_model_run / "results" / "report"
    pdf = report / "report.pdf"
    verdict = json.loads((two_model_run / "results" / "verdict" / "verdict.json").read_text())
    assert verdict["models"] == ["tiny", "tiny2"] and 1 <= len(verdict["sentences"]) <= 5
    assert {"flip_rate", "equivariance_error"} <= {r["measure"] for r in verdict["key_rows"]}
    text = pdf_text(pdf)
    pages = text.split("\f")
    # the first two pages: the verdict with its sentences and intervals (accuracy: the shapes have labels)
    first = " ".join(" ".join(pages[:2]).split())
    assert "Verdict" in first and "95 % bootstrap intervals" in first and "Figure 1." in first
    assert "accuracy" in first.lower() and verdict["clean_accuracy"]
    assert " ".join(verdict["sentences"][0].split())[:60] in first
    # summary: no per-model chapter, no image sheet in the PDF; the HTML keeps everything
    titles = outline_titles(pdf)
    assert titles[0] == "Verdict" and "Comparison of models" in titles
    assert not [t for t in titles if t.startswith(("Model ", "Image ")) or t == "Architecture"], titles
    html = (report / "report.html").read_text()
    assert 'id="model-tiny2"' in html and 'id="sheet-tiny-shapes-test-0000"' in html and 'id="verdict"' in html
    # every figure numbered; every reference resolved
    assert "Figure ?" not in text and "Figure ?" not in html
    assert len(chapter_starts(pdf)) >= 4  # verdict, comparison, sensitivity, run summary, method check
    # packed: no page but a chapter's last has ink on less than half its height
    assert underfilled_pages(pdf, tmp_path / "pages") == []
    # the shared exemplars (the same images for every model, test above) are in the summary
    assert "The same images through every model" in " ".join(text.split())


def test_nothing_that_does_not_apply_is_drawn(two_model_run):
    from tests.pdf_pages import pdf_text

    results = two_model_run / "results"
    text = pdf_text(results / "report" / "report.pdf")
    assert "does not apply:" not in text and "blank: photometric" not in text
    drawn = [p for p in results.glob("**/figures/*.svg") if "does not apply" in p.read_text()]
    assert drawn == []

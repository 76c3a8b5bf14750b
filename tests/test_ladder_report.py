"""The ladder's and the Lie derivative's report numbers and sentences (sensitivity.ladder_report),
on fabricated metrics tables whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from convlens.sensitivity import ladder_report as lr
from convlens.sensitivity.ladder_plots import plot_ladder, plot_lie

LAYERS = ["block1_conv1", "block2_conv1", "block3_conv1"]
KINDS = {"rotate_90": "rotate", "rotate_180": "rotate", "hflip": "hflip", "identity": "identity"}


def ladder_table(e0: dict, e1: dict, e2: dict, images=("a", "b", "c", "d")) -> pd.DataFrame:
    """Rows of the three rungs for the two rotations, every image the same values, plus a fit image
    ("fit") with a same-channel row only (it must be left out) and identity rows."""
    rows = []
    for image in images:
        for t in ("rotate_90", "rotate_180", "identity"):
            for layer in LAYERS:
                for metric, v in (("equivariance_error", e0), (lr.RUNG_ORDER[1], e1), (lr.RUNG_ORDER[2], e2)):
                    rows.append(dict(image=image, transform=t, layer=layer, metric=metric, value=v[layer]))
    for t in ("rotate_90", "rotate_180"):
        for layer in LAYERS:
            rows.append(dict(image="fit", transform=t, layer=layer, metric="equivariance_error", value=100.0))
    return pd.DataFrame(rows)


def test_rung_table_matches_numpy_and_leaves_out_unscored_images():
    rng = np.random.default_rng(0)
    rows = []
    for image in "abcdef":
        for t in ("rotate_90", "rotate_180", "hflip"):
            for metric in lr.RUNG_ORDER:
                rows.append(dict(image=image, transform=t, layer="L", metric=metric, value=rng.random()))
    rows.append(dict(image="fit", transform="rotate_90", layer="L", metric="equivariance_error", value=50.0))
    table = pd.DataFrame(rows)
    got = lr.rung_table(table, KINDS)
    rot = table[(table["transform"].str.startswith("rotate")) & (table["image"] != "fit")]
    for metric in lr.RUNG_ORDER:
        per_image = rot[rot["metric"] == metric].groupby("image")["value"].mean().to_numpy()
        row = got[(got["kind"] == "rotate") & (got["metric"] == metric)].iloc[0]
        assert row["mean"] == pytest.approx(per_image.mean())
        assert row["n"] == 6
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
        # the percentile interval of the image means, as scipy's percentile bootstrap computes it
        boot = np.random.default_rng(1).choice(per_image, size=(4000, 6)).mean(axis=1)
        assert row["ci_low"] == pytest.approx(np.quantile(boot, 0.025), abs=0.05)
        assert row["ci_high"] == pytest.approx(np.quantile(boot, 0.975), abs=0.05)
    assert set(got["kind"]) == {"rotate", "hflip"}


def test_ladder_sentence_gives_the_split_where_it_applies():
    e0 = {"block1_conv1": 0.91, "block2_conv1": 0.5, "block3_conv1": 0.8}
    e1 = {"block1_conv1": 0.59, "block2_conv1": 0.4, "block3_conv1": 0.72}
    e2 = {"block1_conv1": 0.28, "block2_conv1": 0.3, "block3_conv1": 0.6}
    rungs = lr.rung_table(ladder_table(e0, e1, e2), KINDS)
    [sentence] = lr.ladder_sentences(rungs, LAYERS)
    text = sentence[0]["text"]
    assert text.startswith("Under rotations, at block1_conv1, a channel permutation explains 35 % of the")
    assert (
        "(0.91 → 0.59) and a 1×1 linear map explains 69 % (→ 0.28): most of what looks like broken equivariance" in text
    )
    assert "at block3_conv1, a channel permutation explains 10 % " in text  # (0.8 - 0.72) / 0.8
    assert "1×1 linear map explains 25 % (→ 0.60): most of the error is not a re-mapping of channels" in text
    assert "block2_conv1" not in text
    e1["block3_conv1"], e2["block3_conv1"] = 0.8, 0.9  # held out, the maps can score worse than none
    text = lr.ladder_sentences(lr.rung_table(ladder_table(e0, e1, e2), KINDS), LAYERS)[0][0]["text"]
    assert (
        "at block3_conv1, a channel permutation explains none of the same-channel error (0.80 → 0.80) and a 1×1 "
        in text
    )
    assert "linear map explains none (→ 0.90): most of the error is not a re-mapping of channels" in text
    assert "mean over 4 held-out images" in text


def test_no_ladder_sentence_without_rungs_or_error():
    assert (
        lr.ladder_sentences(
            lr.rung_table(pd.DataFrame(columns=["image", "transform", "layer", "metric", "value"]), KINDS), LAYERS
        )
        == []
    )
    small = {layer: 0.01 for layer in LAYERS}
    rungs = lr.rung_table(ladder_table(small, small, small), KINDS)
    assert len(rungs) == 9
    assert lr.ladder_sentences(rungs, LAYERS) == []


def lie_rows(values: dict[str, list[float]], images=("a", "b", "c")) -> pd.DataFrame:
    rows = []
    for image in images:
        for generator, per_layer in values.items():
            for layer, v in zip([*LAYERS, "output"], per_layer, strict=True):
                rows.append(dict(image=image, transform=generator, layer=layer, metric="lie_derivative", value=v))
    return pd.DataFrame(rows)


def test_lie_sentence_names_the_largest_step():
    table = lie_rows({"rotate": [0.2, 0.45, 0.77, 3.0], "shift_x": [0.1, 0.5, 0.55, 1.0]})
    lie = lr.lie_table(table)
    out = lie[lie["layer"] == "output"].set_index("generator")
    assert out.loc["rotate", "mean"] == pytest.approx(3.0)
    assert out.loc["rotate", "n"] == 3
    texts = [s[0]["text"] for s in lr.lie_sentences(lie, LAYERS)]
    assert texts == [
        "Along rotate, the Lie derivative says equivariance breaks most at block3_conv1: the relative Lie "
        "derivative rises from 0.45 at block2_conv1 to 0.77 (the largest step between probed layers; "
        "mean over 3 images).",
        "Along shift_x, the Lie derivative says equivariance breaks most at block2_conv1: the relative Lie "
        "derivative rises from 0.10 at block1_conv1 to 0.50 (the largest step between probed layers; "
        "mean over 3 images).",
    ]


def test_no_lie_sentence_when_it_never_rises():
    table = lie_rows({"rotate": [0.8, 0.5, 0.4, 2.0], "scale": [0.5, 0.51, 0.52, 1.0]})  # falls; rises < 10 %
    assert lr.lie_sentences(lr.lie_table(table), LAYERS) == []
    assert lr.lie_sentences(lr.lie_table(table.iloc[0:0]), LAYERS) == []


def test_plots_draw_only_with_rows(tmp_path):
    e = {layer: 0.5 for layer in LAYERS}
    assert plot_ladder(lr.rung_table(ladder_table(e, e, e), KINDS), LAYERS, tmp_path / "ladder.png")
    assert (tmp_path / "ladder.png").stat().st_size > 0
    assert not plot_ladder(lr.rung_table(ladder_table(e, e, e).iloc[0:0], KINDS), LAYERS, tmp_path / "none.png")
    lie = lr.lie_table(lie_rows({"rotate": [0.2, 0.45, 0.77, 3.0]}))
    assert plot_lie(lie, LAYERS, tmp_path / "lie.png")
    assert not plot_lie(lie[lie["layer"] == "output"], LAYERS, tmp_path / "none2.png")
    assert not (tmp_path / "none.png").exists() and not (tmp_path / "none2.png").exists()


def test_report_files_with_the_ladder_off_and_cka_on():
    from convlens.report import MODEL_FILES
    from convlens.stages.report import model_files

    inputs = {key: [f"{key}_a", f"{key}_b"] for key in MODEL_FILES}
    inputs |= {"channel_maps": [], "cka": ["cka_a", "cka_b"]}
    files = model_files(inputs, ["a", "b"], [])
    assert files["b"]["cka"] == "cka_b" and files["a"]["info"] == "info_a"
    assert "channel_maps" not in files["a"] and "channel_maps" not in files["b"]
    files = model_files({**inputs, "channel_maps": ["maps_a", "maps_b"]}, ["a", "b"], [])
    assert files["a"]["channel_maps"] == "maps_a"

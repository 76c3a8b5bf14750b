"""Layers paired across models by structure (sensitivity.layer_match, stages.cka.pair_models) and a
comparison plot that never draws a model's line through a layer it lacks."""

import numpy as np
import pandas as pd
import pytest

from convlens.sensitivity import comparison_plots
from convlens.sensitivity.layer_match import Layer, pair_layers, renamed
from convlens.stages.cka import pair_models

REFERENCE = [
    Layer("conv1", 28, 28, 8, 1.0),
    Layer("pool1", 14, 14, 8, 2.0),
    Layer("conv2", 14, 14, 16, 2.0),
    Layer("pool2", 7, 7, 16, 4.0),
]
STRIDE_ONE_POOL = [  # pool1 keeps the resolution (stride 1); the rest as the reference
    Layer("conv1", 28, 28, 8, 1.0),
    Layer("pool1", 28, 28, 8, 1.0),
    Layer("conv2", 14, 14, 16, 2.0),
    Layer("pool2", 7, 7, 16, 4.0),
]


def test_a_same_named_layer_at_another_stride_is_not_paired_and_the_warning_names_it():
    pairs, how, warnings = pair_layers(REFERENCE, STRIDE_ONE_POOL, model="b")
    assert pairs == {"conv1": "conv1", "conv2": "conv2", "pool2": "pool2"}
    assert set(how.values()) == {"name"}
    text = "\n".join(warnings)
    assert "layer pool1 (28×28×8, stride 1) not paired by name with the reference's pool1 (14×14×8, stride 2)" in text
    assert "b: layers without a partner in the reference: pool1" in text
    assert "reference layers without a partner in b: pool1" in text


def test_differently_named_layers_pair_by_resolution_and_relative_depth():
    other = [
        Layer("a", 28, 28, 4, 1.0),
        Layer("b", 28, 28, 4, 1.0),
        Layer("c", 14, 14, 32, 2.0),
        Layer("d", 7, 7, 64, 4.0),
        Layer("e", 3, 3, 64, 8.0),
    ]
    pairs, how, warnings = pair_layers(REFERENCE, other, model="x")
    # a (depth 0) and b (0.25) both sit at 28×28 stride 1: a is closer to conv1 (depth 0); b then has none
    assert pairs == {"a": "conv1", "c": "conv2", "d": "pool2"}
    assert set(how.values()) == {"resolution and depth"}
    assert any("x: layers without a partner in the reference: b, e" in w for w in warnings)
    assert any("reference layers without a partner in x: pool1" in w for w in warnings)


def test_an_explicit_mapping_wins_and_an_unknown_layer_is_named():
    pairs, how, _ = pair_layers(REFERENCE, STRIDE_ONE_POOL, {"pool1": "pool1"}, model="b")
    assert pairs["pool1"] == "pool1" and how["pool1"] == "explicit"
    with pytest.raises(ValueError, match=r"config.comparison.layers.b: pool1 named as the partner of two layers"):
        pair_layers(REFERENCE, STRIDE_ONE_POOL, {"pool1": "pool1", "conv2": "pool1"}, model="b")
    pairs, how, warnings = pair_layers(REFERENCE, STRIDE_ONE_POOL, {"pool1": "conv1"}, model="b")
    assert pairs["pool1"] == "conv1" and how["pool1"] == "explicit"
    assert "conv1" not in [k for k, v in how.items() if v == "name"]  # conv1 of the reference is taken
    said = "b: layer conv1 not paired by name: config.comparison.layers.b pairs the reference's conv1 with pool1"
    assert said in warnings  # and says why
    with pytest.raises(ValueError, match=r"config.comparison.layers.b: pool9 is not a probed layer"):
        pair_layers(REFERENCE, STRIDE_ONE_POOL, {"pool9": "pool1"}, model="b")


def test_unpaired_layers_keep_a_name_of_their_own():
    names = renamed(["conv1", "pool1", "x"], {"conv1": "conv1"}, ["conv1", "pool1"], "b")
    assert names == {"conv1": "conv1", "pool1": "pool1 (b)", "x": "x"}


def structure_csv(tmp_path, name, layers):
    path = tmp_path / f"{name}.csv"
    pd.DataFrame([vars(la) for la in layers]).rename(columns={"name": "layer"}).to_csv(path, index=False)
    return str(path)


def test_pair_models_reads_the_structure_tables(tmp_path):
    structures = {"a": structure_csv(tmp_path, "a", REFERENCE), "b": structure_csv(tmp_path, "b", STRIDE_ONE_POOL)}
    table, warnings = pair_models(structures, "a", {})
    assert table.set_index("layer")["reference_layer"].to_dict() == {
        "conv1": "conv1",
        "pool1": "",
        "conv2": "conv2",
        "pool2": "pool2",
    }
    assert any("pool1" in w for w in warnings)


def test_the_by_layer_plot_breaks_a_line_where_the_model_has_no_layer(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(comparison_plots, "save_figure", lambda fig, path: figures.append(fig))
    layers = ["conv1", "pool1", "pool1 (b)", "conv2"]
    rows = []
    for model, own in (("a", ["conv1", "pool1", "conv2"]), ("b", ["conv1", "pool1 (b)", "conv2"])):
        for k, layer in enumerate(own):
            for metric in ("equivariance_error", "invariance_cosine"):
                value = 0.1 * (k + 1)
                rows.append(
                    {"model": model, "group": "flip", "layer": layer, "metric": metric, "mean": value}
                    | {"ci_low": value - 0.01, "ci_high": value + 0.01}
                )
    comparison_plots.plot_by_layer(pd.DataFrame(rows), ["flip"], layers, ["a", "b"], 0.95, tmp_path / "x.png")
    ax = figures[0].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    a_y, b_y = np.asarray(lines["a"].get_ydata(), float), np.asarray(lines["b"].get_ydata(), float)
    assert np.isnan(a_y[2]) and np.isfinite(a_y[[0, 1, 3]]).all()  # a has no "pool1 (b)"
    assert np.isnan(b_y[1]) and np.isfinite(b_y[[0, 2, 3]]).all()  # b has no (structure-matched) pool1


def test_plain_and_antialiased_shapes_cnn_pair_by_structure(tmp_path):
    """The new-user case: the anti-aliased CNN's block1_pool has stride 1, the plain one's stride 2.
    Not paired by name; the stride-2 blur layer after it takes the plain pool's place."""
    pytest.importorskip("keras")
    from convlens import models
    from convlens.core.layers import feature_layers
    from convlens.stages.cka import layer_structure

    plain, smooth = models.build_shapes_cnn(), models.build_shapes_cnn(antialias=3)
    paths = {}
    for name, model in (("plain", plain), ("aa", smooth)):
        paths[name] = str(tmp_path / f"{name}.csv")
        layer_structure(model, feature_layers(model)).to_csv(paths[name], index=False)
    table, warnings = pair_models(paths, "plain", {})
    partner = table.set_index("layer")["reference_layer"].to_dict()
    structure = pd.read_csv(paths["aa"]).set_index("layer")
    assert (
        structure.loc["block1_pool", "stride"] == 1
        and pd.read_csv(paths["plain"]).set_index("layer").loc["block1_pool", "stride"] == 2
    )
    assert partner["block1_pool"] == ""
    assert partner["block1_conv1"] == "block1_conv1" and partner["block3_conv2"] == "block3_conv2"
    assert any("layer block1_pool (28×28×32, stride 1) not paired by name" in w for w in warnings)
    assert partner["block1_pool_blur"] == "block1_pool"  # the stride-2 blur pool sits where the plain pool does
    assert partner["block2_pool_blur"] == "block2_pool" and partner["block2_pool"] == ""
    assert any("layers without a partner in the reference: block1_pool, block2_pool" in w for w in warnings)

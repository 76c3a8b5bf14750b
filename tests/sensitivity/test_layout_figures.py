"""Nothing drawn that does not apply: a photometric sweep has no equivariance panel (nor a lone dot),
the heat table no blank column, the comparison's sweep and layer plots no "does not apply" panel; the
figures read transforms as labels and their axes carry no offset. Synthetic tables, known answers."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from convlens import plots
from convlens import transforms as tr
from convlens.sensitivity import comparison_plots, tables
from convlens.sensitivity import metrics as sensitivity
from convlens.sensitivity import plots as study_plots
from convlens.transform_labels import label_of

SPECS = [{"kind": "rotate", "range": [-30, 30, 15]}, {"kind": "blur", "range": [0, 2, 1]}, {"kind": "hflip"}]
LAYERS = ["l1", "l2", "l3"]


def synthetic(seed: int = 0) -> tuple[pd.DataFrame, list]:
    """Every metric of images a, b as the study writes them: no equivariance rows for the blur."""
    rng = np.random.default_rng(seed)
    transforms = tr.build_transforms(SPECS)
    rows = []
    for image in "ab":
        for t in transforms:
            same = t.kind == "identity"
            for layer in LAYERS:
                if not t.photometric:
                    rows.append((image, t.name, t.param, layer, "equivariance_error", 0.0 if same else rng.random()))
                rows.append((image, t.name, t.param, layer, "invariance_cosine", 1.0 if same else rng.random()))
            if not t.photometric:
                rows.append((image, t.name, t.param, "input", "equivariance_floor", 0.0 if same else 0.01))
            rows += [
                (image, t.name, t.param, "output", "top1_change", 0.0 if same else float(rng.random() < 0.5)),
                (image, t.name, t.param, "output", "prob_change", 0.0 if same else rng.random()),
                (image, t.name, t.param, "output", "kl_divergence", 0.0 if same else rng.random()),
                (image, t.name, t.param, "output", "correct", 1.0),
                (image, t.name, t.param, "gradcam", "heatmap_pearson", 1.0 if same else rng.random()),
            ]
    return pd.DataFrame(rows, columns=sensitivity.COLUMNS), transforms


@pytest.fixture
def recorded(monkeypatch):
    """Every figure's axes (title, x tick labels), texts and colour-bar tick sizes, just before saving."""
    seen = {}

    def recording(fig, path, *args, **kwargs):
        fig.canvas.draw()
        data_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.get_visible()]
        seen[path.name] = {
            "titles": [ax.get_title() for ax in data_axes],
            "xticks": [[t.get_text() for t in ax.get_xticklabels()] for ax in data_axes],
            "texts": [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_visible()],
            "offsets": [a.get_major_formatter().get_offset() for ax in data_axes for a in (ax.xaxis, ax.yaxis)],
            "lines": [[len(np.unique(line.get_xdata())) for line in ax.get_lines()] for ax in data_axes],
        }
        matplotlib.pyplot.close(fig)
        return [path]

    monkeypatch.setattr(study_plots, "save_figure", recording)
    monkeypatch.setattr(comparison_plots, "save_figure", recording)
    return seen


def no_offset_and_nothing_inapplicable(seen: dict) -> None:
    assert not any("does not apply" in text for text in seen["texts"])
    assert all(offset == "" for offset in seen["offsets"])  # no "+1" above an axis


def test_a_photometric_sweep_draws_only_the_panels_that_apply(recorded, tmp_path):
    table, transforms = synthetic()
    curves = tables.curves(table, transforms)
    study_plots.plot_curve("blur", curves["blur"], LAYERS, tmp_path / "sweep_blur.png")
    study_plots.plot_curve("rotate", curves["rotate"], LAYERS, tmp_path / "sweep_rotate.png")
    blur, rotate = recorded["sweep_blur.png"], recorded["sweep_rotate.png"]
    assert blur["titles"] == ["cosine of pooled features", "flip rate / MAC", "heatmaps (Pearson)"]
    assert rotate["titles"][0] == "equivariance error" and len(rotate["titles"]) == 4
    for seen, points in ((blur, 3), (rotate, 5)):  # σ 0, 1, 2 (the identity at 0); five angles
        no_offset_and_nothing_inapplicable(seen)
        assert all(n == points for panel in seen["lines"] for n in panel if n > 1)
        assert min(n for panel in seen["lines"] for n in panel) >= 2  # no lone dot


def test_the_heat_table_leaves_out_a_column_without_numbers(recorded, tmp_path):
    table, transforms = synthetic()
    files = study_plots.plot_heat_table(table, transforms, LAYERS, tmp_path / "heat_table.png")
    assert files == ["heat_table_1.png"]
    seen = recorded["heat_table_1.png"]
    # independently: a metric's column is drawn when some layer has a mean for that transform
    names = [t.name for t in transforms[1:]]
    for title, ticks in zip(seen["titles"], seen["xticks"], strict=True):
        metric = "equivariance_error" if "equivariance" in title else "invariance_cosine"
        rows = table[(table["metric"] == metric) & table["layer"].isin(LAYERS)]
        measured = [n for n in names if np.isfinite(rows[rows["transform"] == n]["value"].to_numpy(float)).any()]
        assert ticks == [label_of(n) for n in measured]
    assert seen["xticks"][0] == ["rotate −30°", "rotate −15°", "rotate 15°", "rotate 30°", "hflip"]
    assert "blur σ 1 px" in seen["xticks"][1]  # the cosine has the blur's columns
    assert not any("blank" in t for t in seen["titles"])
    no_offset_and_nothing_inapplicable(seen)


def comparison_summary(models: list[str]) -> pd.DataFrame:
    """A comparison summary: per model, transform, metric and layer a mean and its interval."""
    table, transforms = synthetic()
    rows = []
    for k, model in enumerate(models):
        for (t, metric, layer), part in table.groupby(["transform", "metric", "layer"]):
            mean = float(part["value"].mean()) + 0.01 * k
            rows.append((model, t, metric, layer, mean, mean - 0.05, mean + 0.05))
    return pd.DataFrame(rows, columns=["model", "transform", "metric", "layer", "mean", "ci_low", "ci_high"])


def test_the_comparison_draws_no_panel_that_does_not_apply_and_keeps_the_model_order(recorded, tmp_path):
    models = ["ref", "b_model", "a_model"]  # config order, the reference first: never sorted
    summary = comparison_summary(models)
    members = {"identity": 0.0, "blur_1": 1.0, "blur_2": 2.0}
    comparison_plots.plot_sweep(summary, "blur", members, "l3", models, 0.95, tmp_path / "sweep_blur.png")
    seen = recorded["sweep_blur.png"]
    assert seen["titles"] == ["pooled-feature cosine at l3", "flip rate", "MAC (probability change)", "accuracy"]
    no_offset_and_nothing_inapplicable(seen)
    groups = summary.assign(group=summary["transform"].map(lambda t: t.split("_")[0]))
    groups = groups[groups["group"] != "identity"]
    comparison_plots.plot_by_layer(groups, ["rotate", "blur"], LAYERS, models, 0.95, tmp_path / "by_layer.png")
    seen = recorded["by_layer.png"]
    assert seen["titles"] == [
        "rotate: equivariance error",
        "rotate: pooled-feature cosine",
        "blur: pooled-feature cosine",
    ]
    assert [t for t in seen["texts"] if t in models] == models  # the legend in the models' order
    no_offset_and_nothing_inapplicable(seen)


def test_an_axis_near_one_shows_its_values_not_an_offset():
    plt = plots.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1.0001, 1.0002])
    fig.canvas.draw()
    assert ax.yaxis.get_major_formatter().get_offset() == ""
    plt.close(fig)


def test_the_chapter_text_of_a_photometric_study_reads_labels_and_has_no_inapplicable_panel(tmp_path):
    """The sensitivity chapter's partials rendered with a real study manifest (run_study on the synthetic
    table, a blur sweep among the transforms) and fabricated exemplars: no "does not apply", transforms
    as labels, the spaces the trimmed blocks used to eat."""
    import shutil
    from html.parser import HTMLParser

    from convlens import report
    from convlens.stages.sensitivity import run_study

    table, transforms = synthetic()
    table.to_csv(tmp_path / "m.csv", index=False)
    pooled = {i: {layer: np.array([1.0, k + 1.0]) for layer in LAYERS} for k, i in enumerate("ab")}
    study = run_study([str(tmp_path / "m.csv")], pooled, transforms, LAYERS, tmp_path / "out", tmp_path / "fig")
    study["unreadable"] = [{"image": "broken.png"}]
    templates = tmp_path / "templates"
    shutil.copytree(report_templates() / "sections", templates / "sections")
    (templates / "report.html.j2").write_text(
        '{% set sec = {"anchor": "s", "title": "Sensitivity", "model": m} %}'
        '{% include "sections/sensitivity.html.j2" %}{% include "sections/sensitivity_model.html.j2" %}'
    )
    exemplars = {
        "measured": 2,
        "exemplars": [],
        "choice": {"sensitive": 1, "flipped": 0, "random": 0, "images": []},
        "seed": 0,
    }
    m = {"name": "cnn", "study": study, "study_dir": "cnn", "exemplars": exemplars}
    config = {"fill_mode": "constant", "fill_value": 0.0}
    html = report.render_html({"models": [], "m": m, "config": config, "metric_help": {}, "base": "."}, templates)

    class Text(HTMLParser):
        parts: list = []

        def handle_data(self, data):
            self.parts.append(data)

    parser = Text()
    parser.feed(html)
    text = " ".join(" ".join(parser.parts).split())  # the words a reader sees (no attributes)
    assert "does not apply" not in text
    assert "constant (0.0)" in text and "2 images (1 more could not be read" in text
    assert "blur σ 1 px" in text and "rotate −30°" in text  # the prediction table's rows
    assert not any(t.name in text.split() for t in transforms if t.name not in ("identity", "hflip"))


def report_templates():
    from pathlib import Path

    return Path(__file__).resolve().parents[2] / "reports" / "templates"


@pytest.mark.parametrize("n_panels", [1, 2, 6, 8, 14, 20, 30])
def test_the_comparison_layer_plot_fits_the_printed_page_at_its_own_size(n_panels):
    frame = comparison_plots.layer_frame_in(36)  # "block1_pool (shapes_cnn_antialiased)"
    n_cols, n_rows, row_in = comparison_plots.layer_grid(n_panels, frame)
    assert n_cols * n_rows >= n_panels and n_rows == -(-n_panels // n_cols)
    assert frame + n_rows * row_in <= comparison_plots.FIGURE_MAX_IN + 1e-9  # no shrinking by the CSS's max-height
    css = (report_templates() / "report.css").read_text()
    assert f"figure img {{ max-height: {comparison_plots.FIGURE_MAX_IN * 25.4:g}mm;" in css
    assert row_in >= comparison_plots.LAYER_ROW_IN[0] or n_cols == 4  # more columns before lower rows


def test_a_study_of_pixel_changes_alone_has_no_equivariance_panel_against_depth(recorded, tmp_path):
    table, transforms = synthetic()
    blur_only = [t for t in transforms if t.kind in ("identity", "blur")]
    table = table[table["transform"].isin([t.name for t in blur_only])]
    baseline = pd.DataFrame({"layer": LAYERS, "mean": [0.5, 0.4, 0.3]})
    study_plots.plot_by_layer(table, blur_only, LAYERS, baseline, tmp_path / "by_layer.png")
    assert recorded["by_layer.png"]["titles"] == ["cosine of pooled features (higher: more invariant)"]
    study_plots.plot_by_layer(synthetic()[0], transforms, LAYERS, baseline, tmp_path / "by_layer.png")
    assert recorded["by_layer.png"]["titles"][0] == "equivariance error (lower: more equivariant)"
    no_offset_and_nothing_inapplicable(recorded["by_layer.png"])

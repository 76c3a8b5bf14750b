"""convlens.plots: the saved pair of files, the layers a plot names, readable text, the model charts."""

import csv
import json
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

from convlens import plots
from convlens.attribution.registry import display_name, method_colour


def test_pick_layers_edge_cases():
    layers = [f"l{i}" for i in range(52)]
    assert plots.pick_layers(layers[:5], [], 8) == layers[:5]
    assert plots.pick_layers(layers, [], 8) == ["l0", "l7", "l15", "l22", "l29", "l36", "l44", "l51"]
    many = [f"l{i}" for i in range(1, 11)]
    assert plots.pick_layers(layers, many, 8) == many  # named ones are kept past the maximum
    got = plots.pick_layers(layers, ["l1", "l50"], 8)
    assert len(got) == 8 and {"l0", "l1", "l50", "l51"} <= set(got)


def test_text_colour_is_the_one_that_contrasts_more():
    assert plots.text_colour((1.0, 1.0, 0.9)) == "black" and plots.text_colour((0.1, 0.0, 0.3)) == "white"
    for grey in np.linspace(0, 1, 21):
        lum = plots.luminance((grey,) * 3)
        best = max((1.05 / (lum + 0.05), "white"), ((lum + 0.05) / 0.05, "black"))[1]
        assert plots.text_colour((grey,) * 3) == best


def test_save_figure_writes_png_and_parseable_svg_and_nothing_else(tmp_path):
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1], color=method_colour("gradcam"), label=display_name("gradcam"))
    written = plots.save_figure(fig, tmp_path / "f.png")
    assert [p.name for p in written] == ["f.png", "f.svg"] and sorted(p.name for p in tmp_path.iterdir()) == [
        "f.png",
        "f.svg",
    ]
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    root = ET.parse(tmp_path / "f.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    again = plots.pyplot().subplots(figsize=(2, 1))
    again[1].plot([0, 1], [0, 1], color=method_colour("gradcam"), label=display_name("gradcam"))
    plots.save_figure(again[0], tmp_path / "g.png")
    assert (tmp_path / "f.svg").read_text() == (tmp_path / "g.svg").read_text()  # reproducible: no date, fixed ids


def test_model_charts_fit_the_page_for_many_classes(tmp_path):
    rng = np.random.default_rng(0)
    n = 100
    metrics = {
        "confusion_matrix": rng.integers(0, 5, (n, n)).tolist(),
        "class_names": [f"c{i}" for i in range(n)],
        "test_accuracy": 0.5,
        "best_epoch": 2,
    }
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    plots.confusion_matrix_figure(str(tmp_path / "m.json"), str(tmp_path / "cm.png"))
    w, h = Image.open(tmp_path / "cm.png").size
    assert w <= plots.FIGURE_WIDTH_IN * plots.FIGURE_DPI + 1 and h <= w  # a 100-class matrix stays on the page
    assert (tmp_path / "cm.svg").is_file()
    with open(tmp_path / "h.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["epoch", "loss", "val_loss", "accuracy", "val_accuracy"])
        writer.writerows([[e, 1 / e, 1.1 / e, 1 - 1 / (e + 1), 1 - 1.2 / (e + 1)] for e in range(1, 5)])
    plots.training_curves_figure(str(tmp_path / "h.csv"), str(tmp_path / "m.json"), str(tmp_path / "curves.png"))
    w, h = Image.open(tmp_path / "curves.png").size
    assert abs(w - plots.FIGURE_WIDTH_IN * plots.FIGURE_DPI) <= 1 and (tmp_path / "curves.svg").is_file()

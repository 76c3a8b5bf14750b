"""The method_quality stage (stages.method_quality): its table holds the library's numbers."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from convlens import attribution, report  # noqa: E402
from convlens.core.head import TARGET_PREDICTED  # noqa: E402
from convlens.sensitivity.method_findings import method_findings  # noqa: E402
from convlens.stages.filters import filters  # noqa: E402
from convlens.stages.method_quality import method_quality  # noqa: E402
from convlens.stages.model_extras import model_extras  # noqa: E402

TEMPLATES = Path(__file__).resolve().parents[2] / "reports" / "templates"


def small_study(tmp_path):
    """A saved 16 px model with its info.json, two noise images and a method-check config."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, name="head"),
        ]
    )
    model.save(tmp_path / "m.keras")
    (tmp_path / "info.json").write_text(
        json.dumps(
            {"name": "m", "source": "load", "input_shape": [16, 16, 3], "class_names": ["x", "y"], "preprocess": "unit"}
        )
    )
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(tmp_path / f"im{i}.png")
    images = [{"id": f"im{i}", "path": str(tmp_path / f"im{i}.png"), "resize": "stretch"} for i in range(2)]
    cfg = {
        "heatmaps": {
            "methods": ["saliency", "cam"],
            "layer": None,
            "score": "logit",
            "params": {},
            "quality_steps": 4,
            "quality_spearman": 0.9,
        },
        "batch_size": 8,
    }
    return model, images, cfg


def test_method_quality_table_matches_the_library(tmp_path):
    """The quality table holds the numbers cascading_randomization gives for the same images and seed."""
    model, images, cfg = small_study(tmp_path)
    out = {"json": str(tmp_path / "q.json"), "csv": str(tmp_path / "q.csv"), "figures": str(tmp_path / "qf")}
    method_quality(str(tmp_path / "m.keras"), str(tmp_path / "info.json"), images, cfg, 3, 2, out)
    table = pd.read_csv(tmp_path / "q.csv").set_index("method")
    x = np.stack([np.asarray(Image.open(tmp_path / f"im{i}.png")) for i in range(2)]).astype(np.float32) / 255
    targets = np.full(2, TARGET_PREDICTED)
    again = attribution.cascading_randomization(model, x, targets, ["saliency", "cam"], seed=3)
    for name in ("saliency", "cam"):
        # constant maps count as 0 in the library's arrays, so the plain mean over images is the table's
        assert table.loc[name, "spearman_randomized"] == pytest.approx(again["spearman"][name][-1].mean())
        assert table.loc[name, "spearman_top"] == pytest.approx(again["spearman"][name][0].mean())
        assert table.loc[name, "n_constant_randomized"] == again["n_constant"][name][-1]
        assert bool(table.loc[name, "insensitive"]) == again["insensitive"][name]
    assert (tmp_path / "qf" / "randomization.png").is_file() and (tmp_path / "qf" / "deletion_insertion.png").is_file()
    quality = json.loads((tmp_path / "q.json").read_text())
    assert quality["layers"] == ["head", "c1"] and quality["threshold"] == 0.9
    steps = quality["per_step"]["saliency"]
    assert [s["spearman"] for s in steps] == pytest.approx(again["spearman"]["saliency"].mean(axis=1))
    assert [s["n_constant"] for s in steps] == again["n_constant"]["saliency"].tolist()
    # deletion and insertion against the random order: the paired difference and its interval
    for kind in ("deletion", "insertion"):
        diff = table[f"{kind}_auc"] - table[f"random_{kind}_auc"]
        assert np.allclose(table[f"{kind}_diff"], diff)
        assert (table[f"{kind}_low"] <= table[f"{kind}_diff"]).all()
        assert (table[f"{kind}_diff"] <= table[f"{kind}_high"]).all()
    assert quality["findings"]  # something is always said: flags, or that a method passes
    # the report's section renders every sentence and the per-step table from this json
    html = render_methods_section(tmp_path, quality)
    for sentence in quality["findings"]:
        assert _escaped(sentence) in html
    assert html.count("<tr><td>") == len(quality["methods"])  # one per-step row per method


def _escaped(text):
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;").replace("'", "&#39;")
    )


def render_methods_section(tmp_path, quality):
    (tmp_path / "t" / "sections").mkdir(parents=True)
    (tmp_path / "t" / "sections" / "methods.html.j2").write_text(
        (TEMPLATES / "sections" / "methods.html.j2").read_text()
    )
    (tmp_path / "t" / "report.html.j2").write_text('{% include "sections/methods.html.j2" %}')
    sec = {
        "model": {"name": "m", "quality": quality, "quality_dir": "m/methods/figures"},
        "anchor": "a",
        "title": "Heatmap methods",
    }
    return report.render_html({"models": [], "sec": sec, "base": "."}, tmp_path / "t")


def row(method, **kw):
    base = {
        "method": method,
        "insensitive": False,
        "deletion_beats_random": True,
        "insertion_beats_random": True,
        "n_constant_randomized": 0,
        "n_blank": 0,
        "deletion_diff": -0.1,
        "deletion_low": -0.2,
        "deletion_high": -0.05,
        "insertion_diff": 0.2,
        "insertion_low": 0.1,
        "insertion_high": 0.3,
        "spearman_top": 0.5,
        "spearman_randomized": 0.2,
        "ssim_randomized": 0.1,
        "similar_steps": "",
        "deletion_auc": 0.3,
        "random_deletion_auc": 0.4,
        "insertion_auc": 0.6,
        "random_insertion_auc": 0.4,
    }
    return {**base, **kw}


def steps(*values, threshold=0.9):
    layers = ["head", "conv3", "conv2", "conv1"]
    return [
        {"layer": layer, "spearman": v, "ssim": v, "n_constant": 0, "similar": v > threshold}
        for layer, v in zip(layers, values, strict=False)
    ]


def test_method_findings_say_what_the_numbers_say(tmp_path):
    rows = [
        row("guided_backprop", insensitive=True),
        row(
            "integrated_gradients",
            insertion_beats_random=False,
            insertion_diff=-0.03,
            insertion_low=-0.05,
            insertion_high=-0.01,
        ),
        row("gradcam", n_constant_randomized=4),
        row("saliency"),
    ]
    per_step = {
        "guided_backprop": steps(0.98, 0.93, 0.7, 0.5),
        "integrated_gradients": steps(0.5, 0.4, 0.3, 0.2),
        "gradcam": steps(0.2, 0.1, 0.0, 0.0),
        "saliency": steps(0.6, 0.5, 0.4, 0.3),
    }
    out = method_findings(rows, per_step, 6, 0.9, 0.95)
    assert out[0] == (
        "Guided backprop: maps barely change when the top layer is randomized (Spearman 0.98 after "
        "head; above 0.9 at 2 of 4 steps, the deepest after conv3 (0.93)) — it explains the image, not the model."
    )
    assert out[1] == (
        "Integrated Gradients is worse than a random pixel order on insertion (AUC diff -0.030, "
        "95% CI [-0.050, -0.010], 6 images)."
    )
    assert out[2] == (
        "Maps that became constant count as fully changed (similarity 0), not left out; after every "
        "layer was randomized: Grad-CAM 4 of 6."
    )
    assert out[3].endswith(": Grad-CAM, Saliency.")  # pass every check
    assert len(out) == 4  # 6 images: no warning about rough intervals
    rows[0]["similar_steps"] = "head conv3"
    html = render_methods_section(
        tmp_path,
        {
            "rows": rows,
            "methods": [r["method"] for r in rows],
            "per_step": per_step,
            "findings": out,
            "images": list("abcdef"),
            "layers": ["head", "conv3", "conv2", "conv1"],
            "threshold": 0.9,
            "level": 0.95,
            "n_boot": 10000,
            "random_orders": 4,
            "steps": 20,
            "notes": [],
        },
    )
    assert "maps stay similar at 2 of 4 steps" in html and html.count("not better than random") == 1
    assert "<strong>0.98</strong>" in html and "<strong>0.93</strong>" in html  # the flagged steps, per step
    assert "-0.030 [-0.050, -0.010]" in html
    blank = method_findings([row("occlusion", n_blank=1)], {"occlusion": per_step["saliency"]}, 6, 0.9, 0.95)
    assert blank[0] == (
        "Occlusion: the original map of 1 of 6 images is constant, so there is nothing to compare; "
        "those images are left out of its sanity check."
    )
    few = method_findings(rows[3:], {"saliency": per_step["saliency"]}, 3, 0.9, 0.95)
    assert few[0] == (
        "With 3 images the intervals are rough (a bootstrap over 3 values); heatmaps.quality_images "
        "sets how many the check uses."
    )
    # a method first similar at a deeper step is named by that step
    late = method_findings([row("x", insensitive=True)], {"x": steps(0.5, 0.95, 0.3, 0.2)}, 6, 0.9, 0.95)
    assert late[0].startswith("x: maps barely change when the layers down to conv3 are randomized (Spearman 0.95")
    # an interval across 0 is "does not beat", and many failures are grouped with each interval in the table
    tie = dict(deletion_beats_random=False, deletion_diff=0.01, deletion_low=-0.02, deletion_high=0.04)
    many = [row(f"m{i}", **tie) for i in range(4)] + [row("good")]
    out = method_findings(many, {r["method"]: steps(0.1, 0.1, 0.1, 0.1) for r in many}, 6, 0.9, 0.95)
    assert out[0].startswith("On deletion, 4 of 5 methods do not beat a random pixel order")
    assert "m0, m1, m2, m3; only good does." in out[0]
    assert out[-1].endswith(": good.")
    one = method_findings([row("m", **tie)], {"m": steps(0.1, 0.1, 0.1, 0.1)}, 6, 0.9, 0.95)
    assert one == [
        "m does not beat a random pixel order on deletion (AUC diff +0.010, 95% CI [-0.020, +0.040], 6 images)."
    ]


def test_the_method_check_says_how_many_images_it_used_and_why_fewer(tmp_path, caplog):
    """One unreadable image among the first four: the check runs on 3 and says so (log, json, report)."""
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="c1"), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    model.save(tmp_path / "m.keras")
    info = {"name": "m", "source": "load", "input_shape": [8, 8, 3], "class_names": ["x", "y"], "preprocess": "unit"}
    (tmp_path / "info.json").write_text(json.dumps(info))
    rng = np.random.default_rng(0)
    images = []
    for i in range(4):
        path = tmp_path / f"im{i}.png"
        if i == 2:
            path.write_bytes(b"not an image")
        else:
            Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(path)
        images.append({"id": f"im{i}", "path": str(path), "resize": "stretch"})
    cfg = {
        "heatmaps": {
            "methods": ["saliency"],
            "layer": None,
            "score": "logit",
            "params": {},
            "quality_steps": 2,
            "quality_spearman": 0.9,
            "quality_images": 4,
        },
        "batch_size": 8,
    }
    out = {"json": str(tmp_path / "q.json"), "csv": str(tmp_path / "q.csv"), "figures": str(tmp_path / "qf")}
    with caplog.at_level("INFO", logger="convlens"):
        method_quality(str(tmp_path / "m.keras"), str(tmp_path / "info.json"), images, cfg, 0, 1, out, study_images=10)
    quality = json.loads((tmp_path / "q.json").read_text())
    expected = "method check: 3 of 10 images (why fewer: heatmaps.quality_images is 4; 1 unreadable: im2)"
    assert quality["subset"] == expected and quality["images"] == ["im0", "im1", "im3"]
    assert expected in caplog.text
    assert _escaped(expected) in render_methods_section(tmp_path, quality)


@pytest.mark.parametrize(
    "args,expected",
    [
        ((5, 5, 8), "stage: 5 of 5 images"),  # all of them: no reason given
        ((3, 60, 3), "stage: 3 of 60 images (why fewer: k is 3)"),
        ((3, None, 3), "stage: 3 of the study's images (why fewer: k is 3)"),
        ((2, None, 3, ["b"]), "stage: 2 of the study's images (why fewer: k is 3; 1 unreadable: b)"),
        ((4, 4, 10), "stage: 4 of 4 images"),  # asked for more than there are, got every one
        ((3, 4, 10, ["b"]), "stage: 3 of 4 images (why fewer: k is 10 but there are only 4; 1 unreadable: b)"),
    ],
)
def test_subset_line_names_the_reason(args, expected):
    from convlens.stages.common import subset_line

    used, available, wanted, *unreadable = args
    assert subset_line("stage", used, available, "k", wanted, *unreadable) == expected


def test_with_no_image_the_check_writes_its_empty_outputs_without_opening_the_model(tmp_path):
    """heatmaps.quality_images: 0 (the check off) costs no TensorFlow job: the model file is never
    read (here there is none)."""
    from convlens.stages.method_quality import method_quality

    info = {"name": "m", "source": "load", "input_shape": [8, 8, 3], "class_names": ["x", "y"], "preprocess": "unit"}
    (tmp_path / "info.json").write_text(json.dumps(info))
    cfg = {"heatmaps": {"methods": ["saliency"], "quality_images": 0}, "batch_size": 8}
    out = {"json": str(tmp_path / "q.json"), "csv": str(tmp_path / "q.csv"), "figures": str(tmp_path / "qf")}
    method_quality(str(tmp_path / "absent.keras"), str(tmp_path / "info.json"), [], cfg, 0, 1, out, study_images=10)
    quality = json.loads((tmp_path / "q.json").read_text())
    assert quality["rows"] == []
    assert quality["subset"] == "method check: 0 of 10 images (why fewer: heatmaps.quality_images is 0)"
    assert (tmp_path / "q.csv").read_text().splitlines()[0].split(",")[0] == "method"


def test_the_extras_in_one_process_write_what_each_stage_writes_alone(tmp_path):
    """Rule model_extras runs filters and the method check on one load of the model (core.setup.shared_model):
    the same files, byte for byte, as each stage in a process of its own, whichever runs first (the method
    check randomizes the model's weights; the next stage still gets them as saved)."""
    _, images, cfg = small_study(tmp_path)
    model, info = str(tmp_path / "m.keras"), str(tmp_path / "info.json")
    fcfg = {
        "layers": [],
        "n_filters": 2,
        "steps": 2,
        "step_size": 0.02,
        "image_size": None,
        "regularized": {"steps": 0},
    }
    fcfg = {"filters": fcfg}

    def parts(folder):
        return {
            "filters": {"cfg": fcfg, "seed": 3, "out_dir": str(folder / "ff"), "out_json": str(folder / "f.json")},
            "method_quality": {
                "images": images,
                "cfg": cfg,
                "seed": 3,
                "out": {"json": str(folder / "q.json"), "csv": str(folder / "q.csv"), "figures": str(folder / "qf")},
            },
        }

    alone, together = tmp_path / "alone", tmp_path / "together"
    p = parts(alone)
    filters(model, info, threads=2, **p["filters"])
    method_quality(model, info, threads=2, **p["method_quality"])
    model_extras(model, info, 2, parts(together))
    # the method check first, then the filters, in one process
    reordered = tmp_path / "reordered"
    p = parts(reordered)
    from convlens.core.setup import shared_model

    with shared_model(model, 2):
        method_quality(model, info, threads=2, **p["method_quality"])
        filters(model, info, threads=2, **p["filters"])
    files = sorted(str(f.relative_to(alone)) for f in alone.rglob("*") if f.is_file())
    assert "f.json" in files and "q.json" in files and any(f.startswith("ff/") for f in files)
    for other in (together, reordered):
        assert sorted(str(f.relative_to(other)) for f in other.rglob("*") if f.is_file()) == files
        for name in files:
            assert (other / name).read_bytes() == (alone / name).read_bytes(), name

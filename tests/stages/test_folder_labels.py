"""A folder of photos with labels (class subfolders, or a labels.csv) and no dataset declared: the measure
stage gives `correct` rows, the comparison gives accuracy beside clean accuracy; ids keep the file names."""

import gzip
import json
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from convlens import models, report  # noqa: E402
from convlens.attribution.cams import SHEET_METHOD  # noqa: E402
from convlens.attribution.registry import display_name  # noqa: E402
from convlens.config import list_images  # noqa: E402
from convlens.data import SHAPE_CLASSES, make_shapes  # noqa: E402
from convlens.errors import InputError  # noqa: E402
from convlens.figure_numbers import figref  # noqa: E402
from convlens.stages.comparison import compare_models  # noqa: E402
from convlens.stages.load_model import load_model  # noqa: E402
from convlens.stages.measure import measure_shard  # noqa: E402
from convlens.transform_labels import label_of  # noqa: E402
from tests.helpers import analysis_config  # noqa: E402

TEMPLATES = Path(__file__).resolve().parents[2] / "reports" / "templates"
TRANSFORMS = [{"kind": "shift", "range": [-3, 3, 1], "direction": "x"}, {"kind": "hflip"}]


def write_photos(root, layout: str) -> dict[str, str]:
    """Nine generated shapes as PNGs, by class folder or listed in labels.csv: file stem -> class."""
    ds = make_shapes(n_per_class=5, image_size=28, test_fraction=0.6, seed=3)
    truth, lines = {}, ["file,class"]
    for i, (image, label) in enumerate(zip(ds.x_test[:9], ds.y_test[:9], strict=True)):
        cls = SHAPE_CLASSES[int(label)]
        rel = f"{cls}/shape{i}.png" if layout == "subfolders" else f"shape{i}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / rel)
        truth[f"shape{i}"] = cls
        lines.append(f"{rel},{cls}")
    if layout == "labels_csv":
        (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return truth


def loaded(tmp, name, seed, classes=SHAPE_CLASSES):
    keras.utils.set_random_seed(seed)
    models.build_shapes_cnn((28, 28, 3), 3).save(tmp / f"{name}.keras")
    out = {
        k: str(tmp / f"{name}.{k}.{ext}") for k, ext in (("model", "keras"), ("info", "json"), ("architecture", "csv"))
    }
    load_model(name, {"source": "load", "path": str(tmp / f"{name}.keras"), "class_names": list(classes)}, 2, out)
    return out


def entries(tmp, cfg_models):
    """The image entries as workflow/rules/common.smk's image_params hands them to the measure stage."""
    found = list_images({"images": [{"folder": "photos"}], "models": cfg_models}, tmp)
    return [
        {"id": e.id, "path": str(tmp / e.path), "resize": e.resize, "label": e.label, "label_source": e.label_source}
        for e in found
    ]


def measure(tmp, name, paths, sources):
    folder = tmp / name
    shard = {k: str(folder / f) for k, f in (("metrics", "m.csv.gz"), ("images", "images.csv"), ("pooled", "p.npz"))}
    cfg = analysis_config(heatmaps={"methods": ["gradcam"]}, transforms=TRANSFORMS)
    measure_shard(paths["model"], paths["info"], sources, cfg, 2, shard)
    with gzip.open(shard["metrics"]) as fh:
        table = pd.read_csv(fh, keep_default_na=False, na_values=[""])
    table.to_csv(folder / "metrics.csv", index=False)
    layers = list(dict.fromkeys(la for la in table["layer"] if la != "output"))
    (folder / "study.json").write_text(json.dumps({"layers": layers}))
    return table, pd.read_csv(shard["images"], keep_default_na=False)


@pytest.mark.parametrize("layout", ["subfolders", "labels_csv"])
def test_a_labelled_folder_gives_accuracy_in_the_comparison_without_a_dataset(tmp_path, layout):
    truth = write_photos(tmp_path / "photos", layout)
    spec = {"source": "load", "path": "x.keras", "class_names": list(SHAPE_CLASSES)}
    sources = entries(tmp_path, {"a": spec, "b": spec})
    assert sorted(s["id"] for s in sources) == sorted(truth)  # ids keep the file names
    assert {s["id"]: s["label"] for s in sources} == truth
    measured = {m: measure(tmp_path, m, loaded(tmp_path, m, seed), sources) for m, seed in (("a", 0), ("b", 1))}
    for table, images in measured.values():
        correct = table[table["metric"] == "correct"]
        assert len(correct) == len(truth) * (1 + 6 + 1) and set(correct["value"]) <= {
            0.0,
            1.0,
        }  # identity, 6 shifts, hflip
        clean = correct[correct["transform"] == "identity"].set_index("image")["value"]
        # independent: the image table's true class and prediction
        by_image = images.set_index("image")
        assert (by_image.loc[clean.index, "label"] == pd.Series(truth)[clean.index]).all()
        assert np.array_equal(
            clean.to_numpy(),
            (by_image.loc[clean.index, "label"] == by_image.loc[clean.index, "predicted"]).to_numpy(float),
        )
    out = {k: str(tmp_path / f"{k}.csv") for k in ("summary", "differences", "group_summary", "group_differences")}
    out |= {"manifest": str(tmp_path / "comparison.json"), "figures": str(tmp_path / "figures")}
    options = {"reference": "a", "n_boot": 200, "level": 0.95, "adjust": "bh", "test": "t", "layers": {}}
    options["groups"] = {"small_shift": {"kind": "shift", "max": 2}}
    compare_models(
        {m: str(tmp_path / m / "metrics.csv") for m in "ab"},
        {m: str(tmp_path / m / "study.json") for m in "ab"},
        TRANSFORMS,
        options,
        0,
        out,
    )
    manifest = json.loads(open(out["manifest"]).read())
    assert manifest["accuracy"] == "accuracy.png" and (tmp_path / "figures" / "accuracy.png").is_file()
    assert manifest["user_groups"] == {"small_shift": "shift, magnitude ≤ 2 px"}
    key = pd.DataFrame(manifest["key_table"])
    accuracy = key[key["metric"] == "correct"]
    assert list(accuracy["group"]) == ["clean", "shift (odd px)", "shift (even px)", "small_shift", "hflip"]
    summary = pd.read_csv(out["group_summary"])
    clean = summary[(summary["group"] == "clean")].set_index("model")["mean"]
    for m, (_, images) in measured.items():
        assert clean[m] == pytest.approx((images["label"] == images["predicted"]).mean())
    assert any("on the untransformed images: accuracy" in s for s in manifest["findings"])
    assert any("under small_shift: accuracy" in s and "(clean " in s for s in manifest["findings"])
    html = chapter({**manifest, "dir": "comparison", "cka": None})
    assert 'src="./comparison/figures/accuracy.png"' in html and "small_shift</span> (shift, magnitude ≤ 2 px)" in html
    assert "accuracy.png" not in chapter({**manifest, "dir": "comparison", "cka": None, "accuracy": None})


def chapter(manifest: dict) -> str:
    """The comparison chapter's template rendered alone, with the report's filters (convlens.report)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        num=lambda v, d=3: f"{float(v):.{d}f}",
        breakable=report.breakable,
        vector=lambda p: report.vector_path(p).as_posix(),
        figref=figref,
        anchor=report.anchor,
        transform=label_of,
        method_name=display_name,
    )
    sec = {"anchor": "comparison", "title": "Comparison of models"}
    return env.get_template("sections/comparison.html.j2").render(
        comparison=manifest, sec=sec, base=".", config={"seed": 0}, detail="full", sheet_method=SHEET_METHOD
    )


def test_a_label_the_model_does_not_have_stops_the_measure_step_naming_the_file(tmp_path):
    write_photos(tmp_path / "photos", "subfolders")
    sources = entries(tmp_path, {})
    paths = loaded(tmp_path, "m", 0, classes=("circle", "squares", "triangle"))
    with pytest.raises(InputError, match=r"photos/square/shape\d.png: class 'square' .* \(did you mean 'squares'\?\)"):
        measure(tmp_path, "m", paths, sources)

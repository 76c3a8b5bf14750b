"""Rules choose_exemplars and side_by_side (stages.exemplars): the study's exemplars chosen once from
every model's fabricated measure shards, drawn by two models' draw jobs (the same images), then the
side-by-side figure from their saved arrays."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from convlens.errors import InputError
from convlens.exemplar_grid import layout
from convlens.sensitivity.metrics import COLUMNS
from convlens.stages.exemplars import choose_exemplars, draw_side_by_side, model_shards, shard_scores
from convlens.stages.measure import IMAGE_COLUMNS
from tests.helpers import analysis_config, loaded_shapes_model, random_png_sources

TRANSFORMS = ["identity", "rotate_90", "vflip"]


def write_shard(folder, name, per_image: dict[str, tuple[str, list[float], list[int]]], broken=()):
    """A measure shard's metrics.csv.gz and images.csv: per image (predicted, prob_change and
    top1_change per non-identity transform), plus a conv row that must not count; ``broken``: ids
    that could not be read (an images row with an error, no metric rows)."""
    rows, images = [], []
    for image, (predicted, changes, flips) in per_image.items():
        for t, change, flip in zip(TRANSFORMS, [0.0, *changes], [0, *flips], strict=True):
            rows.append([image, t, "", "output", "prob_change", change])
            rows.append([image, t, "", "output", "top1_change", float(flip)])
            rows.append([image, t, "", "block1_conv1", "invariance_cosine", 0.5])
        images.append({"image": image, "predicted": predicted, "confidence": 0.9, "flips": sum(flips), "error": ""})
    images += [{"image": b, "error": "cannot read"} for b in broken]
    metrics, listing = folder / f"{name}_metrics.csv.gz", folder / f"{name}_images.csv"
    with gzip.open(metrics, "wt") as fh:
        pd.DataFrame(rows, columns=COLUMNS).to_csv(fh, index=False)
    pd.DataFrame(images).reindex(columns=IMAGE_COLUMNS).to_csv(listing, index=False)
    return {"metrics": str(metrics), "images": str(listing)}


# Model A and model B on im0..im4, in two shards each. Known answers: im3 is the only image the two
# models give different classes (disagreement); im1 changes most on average ((0.8 + 0.6) / 2);
# im4 flips under both transforms in both models; im0 and im2 are calm.
A = [
    {"im0": ("a", [0.0, 0.1], [0, 0]), "im1": ("b", [0.8, 0.8], [0, 0]), "im2": ("a", [0.1, 0.0], [0, 0])},
    {"im3": ("c", [0.1, 0.1], [0, 0]), "im4": ("a", [0.3, 0.3], [1, 1])},
]
B = [
    {"im0": ("a", [0.0, 0.1], [0, 0]), "im1": ("b", [0.6, 0.6], [0, 0]), "im2": ("a", [0.1, 0.0], [0, 0])},
    {"im3": ("a", [0.1, 0.1], [0, 0]), "im4": ("a", [0.3, 0.3], [1, 1])},
]


def shards_of(tmp, name, tables, broken=()):
    return [write_shard(tmp, f"{name}{k}", t, broken if k == 0 else ()) for k, t in enumerate(tables)]


def test_shard_scores_are_the_output_rows_means_against_numpy(tmp_path):
    shard = write_shard(tmp_path, "s", A[0], broken=["gone"])
    scores = shard_scores(shard["metrics"], shard["images"]).set_index("image")
    assert list(scores.index) == ["im0", "im1", "im2"]  # the unreadable image is not scored
    for image, (predicted, changes, flips) in A[0].items():
        assert scores.loc[image, "prob_change"] == pytest.approx(np.mean(changes))
        assert scores.loc[image, "flips"] == np.sum(flips) and scores.loc[image, "predicted"] == predicted


def test_the_choice_reads_every_models_shards_and_puts_the_disagreement_first(tmp_path):
    shards = {"A": shards_of(tmp_path, "A", A), "B": shards_of(tmp_path, "B", B)}
    flat = [s for m in ("A", "B") for s in shards[m]]
    counts = [len(shards["A"]), len(shards["B"])]
    assert model_shards([s["metrics"] for s in flat], [s["images"] for s in flat], ["A", "B"], counts) == shards
    # each model its own number of shards (images_per_job: auto sizes them by the model's cost)
    uneven = model_shards(["m0", "m1", "m2"], ["i0", "i1", "i2"], ["A", "B"], [1, 2])
    assert uneven == {
        "A": [{"metrics": "m0", "images": "i0"}],
        "B": [{"metrics": f"m{k}", "images": f"i{k}"} for k in (1, 2)],
    }
    with pytest.raises(ValueError, match="shards"):
        model_shards(["m0", "m1"], ["i0", "i1"], ["A", "B"], [1, 2])
    choice = {"images": [], "disagree": 1, "sensitive": 1, "flipped": 1, "random": 1}
    choose_exemplars(shards, choice, 7, str(tmp_path / "exemplars.json"))
    shared = json.loads((tmp_path / "exemplars.json").read_text())
    assert shared["models"] == ["A", "B"] and shared["measured"] == {"A": 5, "B": 5}
    assert [(c["image"], c["reason"]) for c in shared["exemplars"][:3]] == [
        ("im3", "models disagree"),
        ("im1", "most sensitive"),
        ("im4", "prediction flips"),
    ]
    assert shared["exemplars"][3]["reason"] == "random" and shared["exemplars"][3]["image"] in {"im0", "im2"}
    assert shared["exemplars"][0]["models"]["A"]["predicted"] == "c"
    assert shared["exemplars"][1]["prob_change"] == pytest.approx(0.7)


def test_a_model_without_any_measured_image_is_named(tmp_path):
    shards = {"A": shards_of(tmp_path, "A", A), "B": [write_shard(tmp_path, "B", {}, broken=["im0"])]}
    choice = {"images": [], "disagree": 1, "sensitive": 1, "flipped": 1, "random": 1}
    with pytest.raises(InputError, match="B: no image was measured"):
        choose_exemplars(shards, choice, 7, str(tmp_path / "exemplars.json"))


def test_two_models_draw_the_same_images_and_the_figure_puts_them_side_by_side(tmp_path):
    pytest.importorskip("keras")
    from convlens.stages.draw import draw_exemplars

    model = loaded_shapes_model(tmp_path)
    sources = random_png_sources(tmp_path, 5, "im{}")
    cfg = analysis_config(heatmaps={"methods": ["gradcam"]})
    shards = {"A": shards_of(tmp_path, "A", A), "B": shards_of(tmp_path, "B", B)}
    choice = {"images": [], "disagree": 1, "sensitive": 1, "flipped": 0, "random": 0}
    choose_exemplars(shards, choice, 0, str(tmp_path / "exemplars.json"))
    for name in ("A", "B"):  # the same network stands in for both: the choice is what is tested
        draw_exemplars(
            model["model"],
            model["info"],
            str(tmp_path / "exemplars.json"),
            name,
            sources,
            cfg,
            2,
            [],
            str(tmp_path / name),
            str(tmp_path / f"{name}.json"),
        )
    drawn = {n: json.loads((tmp_path / f"{n}.json").read_text())["exemplars"] for n in ("A", "B")}
    assert [c["image"] for c in drawn["A"]] == [c["image"] for c in drawn["B"]] == ["im3", "im1"]
    assert drawn["A"][1]["prob_change"] == pytest.approx(0.8) and drawn["B"][1]["prob_change"] == pytest.approx(0.6)
    assert sorted(p.name for p in (tmp_path / "A").iterdir()) == sorted(p.name for p in (tmp_path / "B").iterdir())
    out = tmp_path / "side"
    draw_side_by_side(
        str(tmp_path / "exemplars.json"),
        ["A", "B"],
        [str(tmp_path / "A"), str(tmp_path / "B")],
        str(out / "f"),
        str(out / "side.json"),
    )
    manifest = json.loads((out / "side.json").read_text())
    assert [e["image"] for e in manifest["exemplars"]] == ["im3", "im1"]
    rows = manifest["exemplars"][0]["transforms"]
    assert rows == TRANSFORMS  # sheet_transforms null: every transform
    figure = np.asarray(Image.open(out / "f" / "im3.png"))
    lay = layout(len(rows), 2)
    assert figure.shape == (lay.height, lay.width, 3)
    raw = np.load(tmp_path / "A" / "im3" / "raw.npz")
    first = (np.clip(raw["inputs"][0].astype(np.float32), 0, 1) * 255).round().astype(np.uint8)  # 28 px -> 96 px
    cell = figure[lay.row_y[0] : lay.row_y[0] + 96, lay.input_x[1] : lay.input_x[1] + 96]
    assert np.array_equal(cell, np.asarray(Image.fromarray(first).resize((96, 96), Image.Resampling.NEAREST)))

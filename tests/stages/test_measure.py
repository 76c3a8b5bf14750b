"""The measure stage (stages.measure): one compact table per shard, every image measured, none drawn."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from convlens import models  # noqa: E402
from convlens.stages.load_model import load_model  # noqa: E402
from convlens.stages.measure import IMAGE_COLUMNS, measure_shard  # noqa: E402
from tests.helpers import analysis_config  # noqa: E402

LAYERS = [
    "block1_conv1",
    "block1_conv2",
    "block1_pool",
    "block2_conv1",
    "block2_conv2",
    "block2_pool",
    "block3_conv1",
    "block3_conv2",
]


def shard_paths(folder):
    return {
        k: str(folder / name)
        for k, name in (("metrics", "metrics.csv.gz"), ("images", "images.csv"), ("pooled", "pooled.npz"))
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from skimage import data as skdata

    tmp = tmp_path_factory.mktemp("measure")
    keras.utils.set_random_seed(0)
    models.build_shapes_cnn((28, 28, 3), 3).save(tmp / "shapes.keras")
    out = {k: str(tmp / f"{k}.{ext}") for k, ext in (("model", "keras"), ("info", "json"), ("architecture", "csv"))}
    load_model("shapes", {"source": "load", "path": str(tmp / "shapes.keras"), "class_names": ["a", "b", "c"]}, 2, out)
    sources = []
    for name, picture in (
        ("coffee", skdata.coffee()),
        ("astronaut", skdata.astronaut()),
        ("chelsea", skdata.chelsea()),
    ):
        Image.fromarray(picture).resize((28, 28)).save(tmp / f"{name}.png")
        sources.append({"id": name, "path": str(tmp / f"{name}.png"), "resize": "stretch"})
    (tmp / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    sources.insert(1, {"id": "broken", "path": str(tmp / "broken.png"), "resize": "stretch"})
    cfg = analysis_config(heatmaps={"methods": ["gradcam", "saliency"]})
    measure_shard(out["model"], out["info"], sources, cfg, 2, shard_paths(tmp / "shard"))
    return tmp, out, sources, cfg


def read(folder):
    table = pd.read_csv(folder / "metrics.csv.gz", keep_default_na=False, na_values=[""])
    return table, pd.read_csv(folder / "images.csv", keep_default_na=False), np.load(folder / "pooled.npz")


def test_every_readable_image_has_its_rows_and_the_unreadable_one_its_error(setup):
    tmp, _, _, _ = setup
    table, images, pooled = read(tmp / "shard")
    assert list(images.columns) == IMAGE_COLUMNS
    assert images["image"].tolist() == ["coffee", "broken", "astronaut", "chelsea"]
    broken = images.set_index("image").loc["broken"]
    assert "broken.png" in broken["error"] and broken["predicted"] == ""
    assert (images.set_index("image").drop(index="broken")["error"] == "").all()
    # per image: 3 transforms x (8 layers x 2 + floor + 3 output metrics (no label) + 2 methods x 3)
    counts = table.groupby("image").size()
    assert counts.to_dict() == {name: 3 * (8 * 2 + 1 + 3 + 2 * 3) for name in ("astronaut", "chelsea", "coffee")}
    assert list(table.columns) == ["image", "transform", "param", "layer", "metric", "value"]
    assert pooled["ids"].tolist() == ["coffee", "astronaut", "chelsea"] and pooled["layers"].tolist() == LAYERS


def test_pooled_features_and_predictions_equal_a_keras_submodel(setup):
    tmp, out, sources, _ = setup
    _, images, pooled = read(tmp / "shard")
    model = keras.saving.load_model(out["model"], safe_mode=True)
    x = np.stack([np.asarray(Image.open(s["path"]).convert("RGB")) for s in sources if s["id"] != "broken"])
    x = x.astype("float32") / 255.0
    sub = keras.Model(model.inputs, [model.get_layer(n).output for n in LAYERS])
    for j, maps in enumerate(sub.predict(x, verbose=0)):
        assert np.allclose(pooled[f"pooled_{j}"], maps.mean(axis=(1, 2)), atol=1e-5)
    probs = model.predict(x, verbose=0)
    readable = images[images["error"] == ""]
    assert readable["predicted"].tolist() == [["a", "b", "c"][k] for k in probs.argmax(-1)]
    assert np.allclose(readable["confidence"].astype(float), probs.max(-1), atol=1e-5)


def test_the_table_does_not_depend_on_chunking_or_shard_company(setup):
    """One image per model call, the image alone in its shard: the same rows (read-ahead and batching
    change nothing)."""
    tmp, out, sources, cfg = setup
    alone = tmp / "alone"
    measure_shard(out["model"], out["info"], [sources[2]], {**cfg, "batch_size": 3}, 2, shard_paths(alone))
    table, _, _ = read(tmp / "shard")
    one, _, _ = read(alone)
    mine = table[table["image"] == "astronaut"].reset_index(drop=True)
    assert mine[["transform", "layer", "metric"]].equals(one[["transform", "layer", "metric"]])
    assert np.allclose(mine["value"], one["value"], rtol=1e-5, atol=1e-6, equal_nan=True)
    identity = mine[mine["transform"] == "identity"]
    assert (identity[identity["metric"] == "equivariance_error"]["value"] == 0).all()


def test_a_decompression_bomb_is_listed_with_its_error_and_the_other_images_complete(setup, monkeypatch):
    """The bomb goes the unreadable-image path: its row in images.csv names the file and the pixel
    limit; the images before and after it are measured. A stretched photo is recorded as such."""
    tmp, out, sources, cfg = setup
    Image.new("RGB", (100, 60)).save(tmp / "bomb.png")  # 6,000 pixels
    Image.new("RGB", (56, 28), (90, 90, 90)).save(tmp / "wide.png")  # 2:1 on the 28x28 input: stretched
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    shard = [
        sources[0],
        {"id": "bomb", "path": str(tmp / "bomb.png"), "resize": "stretch"},
        {"id": "wide", "path": str(tmp / "wide.png"), "resize": "stretch"},
        sources[3],
    ]
    measure_shard(out["model"], out["info"], shard, cfg, 2, shard_paths(tmp / "bombed"))
    table, images, _ = read(tmp / "bombed")
    rows = images.set_index("image")
    assert (
        f"cannot read image {tmp / 'bomb.png'}: 100x60 pixels is more than the limit of 5000 pixels"
        in rows.loc["bomb", "error"]
    )
    assert sorted(table["image"].unique()) == ["chelsea", "coffee", "wide"]
    assert rows.loc["wide", "resize"] == "stretch" and float(rows.loc["wide", "aspect_change"]) == pytest.approx(0.5)
    assert float(rows.loc["coffee", "aspect_change"]) == 1.0 and "(stretch)" in rows.loc["wide", "notes"]


def test_geometric_and_photometric_transforms_in_one_run(setup):
    """Warps and pixel operations measured together: photometric rows have no equivariance metrics, and
    an image's rows (noise included) do not depend on its batch, chunk or shard company."""
    tmp, out, sources, cfg = setup
    specs = [
        {"kind": "rotate", "angle_deg": 90},
        {"kind": "hflip"},
        {"kind": "blur", "range": [1, 2, 1]},
        {"kind": "noise", "std": 0.05},
        {"kind": "brightness", "delta": -0.2},
        {"kind": "contrast", "factor": 1.5},
        {"kind": "jpeg", "quality": 30},
    ]
    mixed = {**cfg, "transforms": specs}
    measure_shard(out["model"], out["info"], sources, mixed, 2, shard_paths(tmp / "mixed"))
    table, images, _ = read(tmp / "mixed")
    assert (images.set_index("image").drop(index="broken")["error"] == "").all()
    geometric, photometric = (
        ["identity", "rotate_90", "hflip"],
        ["blur_1", "blur_2", "noise_0.05", "brightness_-0.2", "contrast_1.5", "jpeg_30"],
    )
    per_image = len(geometric) * (8 * 2 + 1 + 3 + 2 * 3) + len(photometric) * (8 + 3 + 2 * 3)
    assert table.groupby("image").size().to_dict() == {name: per_image for name in ("astronaut", "chelsea", "coffee")}
    equivariance = table[table["metric"].str.startswith("equivariance")]
    assert set(equivariance["transform"]) == set(geometric)
    assert set(table["transform"]) == set(geometric + photometric)
    changed = table[(table["metric"] == "invariance_cosine") & table["transform"].isin(photometric)]
    assert changed["value"].between(-1, 1).all() and (changed["value"] < 1 - 1e-6).any()
    # astronaut alone, one image per model call: the same rows, the same noise
    alone = tmp / "mixed_alone"
    measure_shard(out["model"], out["info"], [sources[2]], {**mixed, "batch_size": 9}, 2, shard_paths(alone))
    one, _, _ = read(alone)
    mine = table[table["image"] == "astronaut"].reset_index(drop=True)
    assert mine[["transform", "layer", "metric"]].equals(one[["transform", "layer", "metric"]])
    assert np.allclose(mine["value"], one["value"], rtol=1e-5, atol=1e-6, equal_nan=True)
    # another seed draws other noise: only the noise rows change
    reseeded = tmp / "mixed_seed"
    measure_shard(out["model"], out["info"], [sources[2]], {**mixed, "seed": 7}, 2, shard_paths(reseeded))
    other, _, _ = read(reseeded)
    differs = ~np.isclose(mine["value"], other["value"], rtol=1e-5, atol=1e-6, equal_nan=True)
    assert differs.any() and set(mine.loc[differs, "transform"]) == {"noise_0.05"}

"""Rule fit_channel_maps (stages.channel_maps) and the measure stage scoring the ladder with its maps."""

import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from convlens import transforms as tr  # noqa: E402
from convlens.sensitivity import ladder  # noqa: E402
from convlens.sensitivity import metrics as sensitivity  # noqa: E402
from convlens.stages.channel_maps import fit_channel_maps, grid_turns  # noqa: E402
from convlens.stages.measure import measure_shard  # noqa: E402
from tests.helpers import analysis_config, loaded_shapes_model, random_png_sources  # noqa: E402

TRANSFORMS = [
    {"kind": "rotate", "angle_deg": 90},
    {"kind": "hflip"},
    {"kind": "shift", "dx": 2, "dy": 0},
    {"kind": "brightness", "delta": 0.1},
]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ladder")
    out = loaded_shapes_model(tmp)
    sources = random_png_sources(tmp, 5, "im{}")
    cfg = analysis_config(heatmaps={"methods": ["gradcam"]}, transforms=TRANSFORMS, equivariance={"fit_images": 2})
    maps = {k: str(tmp / f"channel_maps.{ext}") for k, ext in (("maps", "npz"), ("table", "csv"), ("figure", "png"))}
    fit_channel_maps(out["model"], out["info"], sources[:2], cfg, 2, maps)
    shard = {k: str(tmp / n) for k, n in (("metrics", "m.csv.gz"), ("images", "i.csv"), ("pooled", "p.npz"))}
    measure_shard(out["model"], out["info"], sources, cfg, 2, shard, channel_maps=maps["maps"])
    table = pd.read_csv(shard["metrics"])
    return table, maps, cfg, out, sources


def test_only_held_out_images_get_rung_rows_for_every_layer_and_geometric_transform(fitted):
    table, _, _, _, _ = fitted
    rungs = table[table["metric"].isin(ladder.RUNGS.values())]
    assert set(rungs["image"]) == {"im2", "im3", "im4"}  # im0, im1: the fit set
    same = table[table["metric"] == "equivariance_error"]
    assert set(same["image"]) == {f"im{i}" for i in range(5)}
    for metric in ladder.RUNGS.values():
        rows = rungs[rungs["metric"] == metric]
        assert len(rows) == len(same[same["image"].isin(["im2", "im3", "im4"])])  # 8 layers × 4 geometric
        assert "brightness_0.1" not in set(rows["transform"]) and rows["value"].notna().all()
    identity = rungs[rungs["transform"] == "identity"].set_index("metric")["value"]
    assert (identity[ladder.RUNGS["perm"]] < 1e-5).all()  # the identity permutation with scale 1
    # the ridge's shrinkage only: 2 fit images give the deep layers fewer pixels than C² parameters
    assert (identity[ladder.RUNGS["linear"]] < 5e-3).all()


def test_the_saved_maps_and_table_describe_the_first_conv_layer(fitted):
    _, maps, _, _, _ = fitted
    saved = ladder.ChannelMaps.load(maps["maps"])
    assert saved.fit_images == ["im0", "im1"] and saved.layers[0] == "block1_conv1"
    assert list(saved.fitted) == [True, True, True, True, False]  # identity, rotate, hflip, shift; brightness
    table = pd.read_csv(maps["table"])
    c = saved.source[0].shape[1]
    assert len(table) == 4 * c and (table["layer"] == "block1_conv1").all()
    for name, rows in table.groupby("transform"):
        assert sorted(rows["source"]) == list(range(c)), name  # a permutation
    assert Image.open(maps["figure"]).size[0] > 100


def test_rungs_turn_off_by_config(fitted, tmp_path):
    _, maps, cfg, out, sources = fitted
    cfg = {**cfg, "equivariance": {**cfg["equivariance"], "perm": False}}
    shard = {k: str(tmp_path / n) for k, n in (("metrics", "m.csv.gz"), ("images", "i.csv"), ("pooled", "p.npz"))}
    measure_shard(out["model"], out["info"], sources[2:3], cfg, 2, shard, channel_maps=maps["maps"])
    metrics = set(pd.read_csv(shard["metrics"])["metric"])
    assert ladder.RUNGS["linear"] in metrics and ladder.RUNGS["perm"] not in metrics


def test_the_figure_shows_flips_and_quarter_turns_only():
    built = tr.build_transforms(
        [{"kind": "rotate", "angle_deg": a} for a in (90, 20, 180)] + [{"kind": "vflip"}, {"kind": "shift", "dx": 1}]
    )
    study = sensitivity.Study.build(built, 16, 16, [], {}, "constant", 0.0)
    assert [study.transforms[t].name for t in grid_turns(study)] == ["rotate_90", "rotate_180", "vflip"]

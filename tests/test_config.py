"""Config validation: defaults, one-line errors naming the key, shards, digest."""

from pathlib import Path

import pytest
import yaml

from convlens import config as cfgmod
from convlens.config import ConfigError, ImageEntry

ROOT = Path(__file__).resolve().parent.parent


def default_config():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_default_config_is_valid_and_defaults_are_filled():
    cfg = cfgmod.validate(
        {
            "datasets": {"d": {"kind": "shapes"}},
            "models": {"m": {"source": "train", "architecture": "shapes_cnn", "dataset": "d"}},
            "images": [{"dataset": "d", "count": 2}],
        }
    )
    assert cfg["seed"] == 42 and cfg["fill_mode"] == "constant"
    assert cfg["models"]["m"]["epochs"] == 20
    assert cfg["datasets"]["d"]["n_per_class"] == 100
    assert cfg["heatmaps"]["target"] == "reference"
    assert cfg["transforms"][0]["kind"] == "shift"
    assert cfg["comparison"] == {
        "reference": "m",
        "n_boot": 2000,
        "level": 0.95,
        "test": "t",
        "adjust": "bh",
        "layers": {},
        "groups": {},
    }  # the first model
    assert cfg["cka"] == {"enabled": True, "batch_images": 16}
    cfgmod.validate(default_config(), base_dir=ROOT)


@pytest.mark.parametrize(
    "edit,expected",
    [
        (
            lambda c: c["models"]["shapes_cnn"].update(epochs=0),
            "config.models.shapes_cnn.epochs: 0 is less than the minimum of 1",
        ),
        (
            lambda c: c.update(fill_mode="mirror"),
            "config.fill_mode: 'mirror' is not allowed; allowed: 'constant', 'nearest', 'reflect', 'wrap'",
        ),
        (lambda c: c.update(colour="red"), "config: unknown key(s) 'colour'"),
        (
            lambda c: c["models"]["shapes_cnn"].update(dataset="nope"),
            "config.models.shapes_cnn.dataset: 'nope' is not a key of config.datasets",
        ),
        (
            lambda c: c["images"].append({"file": "missing.png"}),
            "config.images[1].file: file 'missing.png' does not exist",
        ),
        (
            lambda c: c["images"].append({"file": "a.png", "folder": "b"}),
            "config.images[1]: give exactly one of dataset, folder, file",
        ),
        (lambda c: c["transforms"].append({"kind": "hflip", "range": [0, 1, 1]}), "takes no range"),
        (lambda c: c["transforms"].append({"kind": "twist"}), "config.transforms[7].kind: 'twist' is not allowed"),
        (lambda c: c["heatmaps"].update(target="best"), "config.heatmaps.target: 'best' is not allowed"),
        (lambda c: c["images"][0].update(count=1000), "past the end of the test split"),
        (lambda c: c["transforms"].append({"kind": "rotate"}), "config.transforms[7]: rotate needs angle_deg"),
        (
            lambda c: c["report"].update(sheet_transforms=["rotate_50"]),
            "config.report.sheet_transforms: rotate_50 not in the study",
        ),
        (lambda c: c["transforms"].append({"kind": "scale", "range": [0, 2, 0.5]}), "must keep scale factors > 0"),
        (lambda c: c["images"].append({"folder": "tests"}), "config.images[1].folder: no image files in 'tests'"),
        # method parameters that would give NaN or all-zero maps, and unknown names: the list of what is allowed
        (
            lambda c: c["heatmaps"].update(params={"smoothgrad": {"samples": 0}}),
            "config.heatmaps.params.smoothgrad.samples: 0 is not allowed; allowed: an integer >= 1",
        ),
        (
            lambda c: c["heatmaps"].update(params={"integrated_gradients": {"steps": -3}}),
            "config.heatmaps.params.integrated_gradients.steps: -3 is not allowed; allowed: an integer >= 1",
        ),
        (
            lambda c: c["heatmaps"].update(params={"smoothgrad": {"noise": -0.1}}),
            "config.heatmaps.params.smoothgrad.noise: -0.1 is not allowed; allowed: a number >= 0",
        ),
        (
            lambda c: c["heatmaps"].update(params={"integrated_gradients": {"baseline": "grey"}}),
            "baseline: 'grey' is not allowed; allowed: black, white, blur, noise or a number >= 0 and <= 1",
        ),
        (
            lambda c: c["heatmaps"].update(params={"occlusion": {"patch": 0}}),
            "config.heatmaps.params.occlusion.patch: 0 is not allowed; allowed: an integer >= 1, or null (side // 8)",
        ),
        (
            lambda c: c["heatmaps"].update(params={"smoothgrad": {"sample": 4}}),
            "config.heatmaps.params.smoothgrad: unknown parameter(s) sample (did you mean 'samples'?); "
            "known: reduce, samples, noise, seed",
        ),
        (
            lambda c: c["heatmaps"].update(methods=["gradcam", "grad_cam"]),
            "config.heatmaps.methods[1]: 'grad_cam' is not allowed (did you mean 'gradcam'?); "
            "allowed: 'saliency', 'smoothgrad', ",
        ),
        (
            lambda c: c["models"]["shapes_cnn"].update(sheet_layer=["x"]),
            "config.models.shapes_cnn: unknown key(s) 'sheet_layer' (did you mean 'sheet_layers'?); allowed: ",
        ),
        (lambda c: c.update(resize="fit"), "config.resize: 'fit' is not allowed; allowed: 'stretch', 'crop', 'pad'"),
        (lambda c: c["images"][0].update(resize="zoom"), "config.images[0].resize: 'zoom' is not allowed"),
        (
            lambda c: c["transforms"].append({"kind": "blur", "sigma_px": -1}),
            "config.transforms[7].sigma_px: -1 is less than the minimum of 0",
        ),
        (
            lambda c: c["transforms"].append({"kind": "jpeg", "quality": 101}),
            "config.transforms[7].quality: 101 is greater than the maximum of 100",
        ),
        (
            lambda c: c["transforms"].append({"kind": "jpeg", "range": [10, 110, 50]}),
            "config.transforms[7].range: jpeg quality must be in [1, 100], not 110",
        ),
        (
            lambda c: c["transforms"].append({"kind": "jpeg", "range": [10, 50, 2.5]}),
            "config.transforms[7].range: jpeg quality must be a whole number, not 12.5",
        ),
        (
            lambda c: c["transforms"].append({"kind": "blur", "range": [-1, 1, 1]}),
            "config.transforms[7].range: blur sigma_px must be in [0, inf], not -1",
        ),
        (
            lambda c: c["transforms"].append({"kind": "noise", "range": [0.5, 1.5, 0.5]}),
            "config.transforms[7].range: noise std must be in [0, 1], not 1.5",
        ),
        (
            lambda c: c["transforms"].append({"kind": "contrast", "range": [0, 1, 0.5]}),
            "config.transforms[7].range: contrast factor must be in (0, inf], not 0",
        ),
        (
            lambda c: c["transforms"].append({"kind": "brightness", "dx": 1}),
            "config.transforms[7]: brightness needs delta (or a range)",
        ),
        (
            lambda c: c.update(comparison={"reference": "other"}),
            "config.comparison.reference: 'other' is not a key of config.models",
        ),
        (
            lambda c: c.update(comparison={"layers": {"other": {"a": "b"}}}),
            "config.comparison.layers: 'other' is not a key of config.models",
        ),
        (
            lambda c: c.update(cka={"batch_images": 3}),
            "config.cka.batch_images: 3 is less than the minimum of 4",
        ),
        (
            lambda c: c.update(comparison={"adjust": "bonferroni"}),
            "config.comparison.adjust: 'bonferroni' is not allowed; allowed: 'bh', 'holm'",
        ),
        (
            lambda c: c.update(comparison={"level": 1.5}),
            "config.comparison.level: 1.5 is greater than or equal to the maximum of 1",
        ),
        (
            lambda c: c["models"].update(comparison=c["models"]["shapes_cnn"]),
            "config.models: name 'comparison' is reserved",
        ),
    ],
)
def test_bad_config_fails_with_one_line_naming_the_key(edit, expected):
    cfg = default_config()
    edit(cfg)
    with pytest.raises(ConfigError) as info:
        cfgmod.validate(cfg, base_dir=ROOT)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_unknown_method_lists_every_allowed_name():
    cfg = default_config()
    cfg["heatmaps"]["methods"] = ["gradcamx"]
    with pytest.raises(ConfigError) as info:
        cfgmod.validate(cfg, base_dir=ROOT)
    from convlens.attribution.registry import METHODS

    assert all(repr(name) in str(info.value) for name in METHODS) and "'all'" in str(info.value)


@pytest.mark.parametrize(
    "name,content,expected",
    [
        ("model.keras", b"", "'model.keras' is empty (0 bytes)"),
        ("model.keras", b"PK not really a zip", "'model.keras' is not a Keras archive"),
        ("model.keras", None, "'model.keras' is a zip archive without config.json"),
        ("model.h5", b"\x89PNG\r\n\x1a\n", "'model.h5' is not an HDF5 file"),
    ],
)
def test_a_model_file_that_is_not_a_keras_model_is_named_before_any_job(tmp_path, name, content, expected):
    import zipfile

    if content is None:
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            archive.writestr("weights.txt", "no config here")
    else:
        (tmp_path / name).write_bytes(content)
    (tmp_path / "a.png").write_bytes(b"")  # exists: images are checked per image later
    cfg = {"models": {"m": {"source": "load", "path": name}}, "images": [{"file": "a.png"}]}
    with pytest.raises(ConfigError) as info:
        cfgmod.validate(cfg, base_dir=tmp_path)
    assert f"config.models.m.path: {expected}" in str(info.value) and "\n" not in str(info.value)


def test_resize_is_per_images_entry_with_a_top_level_default(tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"")
    cfg = cfgmod.validate(
        {
            "models": {"m": {"source": "train", "architecture": "shapes_cnn", "dataset": "d"}},
            "datasets": {"d": {"kind": "shapes"}},
            "resize": "crop",
            "images": [{"file": "a.png"}, {"file": "b.png", "resize": "pad"}, {"dataset": "d", "count": 1}],
        },
        base_dir=tmp_path,
    )
    assert cfg["resize"] == "crop"
    assert [e.resize for e in cfgmod.list_images(cfg, tmp_path)] == ["crop", "pad", "crop"]
    assert (
        cfgmod.validate(
            {
                "models": {"m": {"source": "train", "architecture": "shapes_cnn", "dataset": "d"}},
                "datasets": {"d": {"kind": "shapes"}},
                "images": [{"dataset": "d", "count": 1}],
            }
        )["resize"]
        == "stretch"
    )


def test_folder_and_file_images_get_unique_ids(tmp_path):
    (tmp_path / "imgs").mkdir()
    for name in ("b cat.png", "a.jpg", "notes.txt"):
        (tmp_path / "imgs" / name).write_bytes(b"x")
    cfg = {"images": [{"folder": "imgs"}, {"dataset": "d", "indices": [3]}]}
    ids = [e.id for e in cfgmod.list_images(cfg, tmp_path)]
    assert ids == ["a", "b_cat", "d-test-0003"]
    cfg = {"images": [{"folder": "imgs"}, {"file": "imgs/a.jpg"}]}
    with pytest.raises(ConfigError, match="both give image id 'a'"):
        cfgmod.list_images(cfg, tmp_path)


def test_adding_an_image_changes_only_its_own_shard():
    images = [ImageEntry(f"img{i:03d}") for i in range(40)]
    before = cfgmod.assign_shards(images, images_per_job=8)  # 5 needed -> 8 shards
    after = cfgmod.assign_shards(images + [ImageEntry("new-one")], images_per_job=8)
    changed = [s for s in set(before) | set(after) if before.get(s) != after.get(s)]
    assert len(changed) == 1 and ImageEntry("new-one") in after[changed[0]]
    assert sum(len(v) for v in after.values()) == 41


def test_shard_count_is_a_power_of_two_covering_the_target():
    assert cfgmod.shard_count(1, 16) == 1
    assert cfgmod.shard_count(16, 16) == 1
    assert cfgmod.shard_count(17, 16) == 2
    assert cfgmod.shard_count(100, 16) == 8


def test_digest_is_stable_and_sensitive():
    a = default_config()
    b = default_config()
    assert cfgmod.digest(a) == cfgmod.digest(b)
    b["seed"] = 43
    assert cfgmod.digest(a) != cfgmod.digest(b)


def reversed_keys(value, keep=("models",)):
    """``value`` with every mapping's keys in reverse order, except the names under ``keep``'s keys
    (whose own entries are reversed inside)."""
    if isinstance(value, list):
        return [reversed_keys(v, keep) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, entry in reversed(value.items()):
        out[key] = {n: reversed_keys(e) for n, e in entry.items()} if key in keep else reversed_keys(entry)
    return out


def test_the_same_config_in_another_key_order_validates_to_the_same_text():
    """Snakemake compares params by their text: a config that says the same in another key order, or
    writes a default out, must give every rule the same params (it reran the whole study before)."""
    a = default_config()
    b = reversed_keys(default_config())
    b["mixed_precision"] = False  # the default, written out (at the end of the file)
    assert list(b["models"]) == list(a["models"]) and list(b) != list(a)
    va, vb = cfgmod.validate(a), cfgmod.validate(b)
    assert repr(va) == repr(vb)
    assert list(va["models"]) == list(a["models"])  # the user's names keep the user's order
    assert list(va)[:2] == ["seed", "images_per_job"]  # the schema's order
    spec = va["models"]["shapes_cnn_augmented"]
    assert list(spec)[0] == "source" and list(spec["augment"]) == [
        "shift_px",
        "rotate_deg",
        "scale",
        "hflip",
        "vflip",
        "fill_mode",
    ]
    swapped = {"models": dict(reversed(a["models"].items()))}
    assert list(cfgmod.validate({**a, **swapped})["models"]) == list(reversed(list(a["models"])))


@pytest.mark.parametrize(
    "edit,expected",
    [
        (
            lambda c: c.update(transfroms=[]),
            "config: unknown key(s) 'transfroms' (did you mean 'transforms'?); allowed: ",
        ),
        (
            lambda c: c["models"]["m"].update(pth="x.keras"),
            "config.models.m: unknown key(s) 'pth' (did you mean 'path'?); allowed: ",
        ),
        (
            lambda c: c.update(transforms=[{"kind": "rotation", "angle": 5}]),
            "config.transforms[0].kind: 'rotation' is not allowed (did you mean 'rotate'?); allowed: ",
        ),
        (
            lambda c: c.update(heatmaps={"methods": ["grad_cam_pp"]}),
            "config.heatmaps.methods[0]: 'grad_cam_pp' is not allowed (did you mean 'gradcam_pp'?); allowed: ",
        ),
        (
            lambda c: c.update(heatmaps={"params": {"smothgrad": {}}}),
            "config.heatmaps.params.smothgrad: 'smothgrad' is not a method (did you mean 'smoothgrad'?)",
        ),
        (lambda c: c.update(fill_mode="wrapp"), "config.fill_mode: 'wrapp' is not allowed (did you mean 'wrap'?)"),
    ],
)
def test_a_near_miss_gets_a_suggestion(edit, expected):
    cfg = {
        "datasets": {"d": {"kind": "shapes"}},
        "models": {"m": {"source": "train", "architecture": "shapes_cnn", "dataset": "d"}},
        "images": [{"dataset": "d", "count": 2}],
    }
    edit(cfg)
    with pytest.raises(ConfigError) as error:
        cfgmod.validate(cfg)
    assert str(error.value).startswith(expected), str(error.value)


def test_a_far_miss_gets_no_suggestion():
    cfg = {"datasets": {}, "models": {}, "images": [], "colour": "red"}
    with pytest.raises(ConfigError) as error:
        cfgmod.validate(cfg)
    assert "did you mean" not in str(error.value)

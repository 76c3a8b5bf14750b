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
    cfg = cfgmod.validate({"datasets": {"d": {"kind": "shapes"}},
                           "models": {"m": {"source": "train", "architecture": "shapes_cnn", "dataset": "d"}},
                           "images": [{"dataset": "d", "count": 2}]})
    assert cfg["seed"] == 42 and cfg["fill_mode"] == "constant"
    assert cfg["models"]["m"]["epochs"] == 20
    assert cfg["datasets"]["d"]["n_per_class"] == 100
    assert cfg["heatmaps"]["target"] == "reference"
    assert cfg["transforms"][0]["kind"] == "shift"
    assert cfg["comparison"] == {"reference": "m", "n_boot": 2000, "level": 0.95, "test": "t", "adjust": "bh"}  # the first model
    cfgmod.validate(default_config(), base_dir=ROOT)


@pytest.mark.parametrize("edit,expected", [
    (lambda c: c["models"]["shapes_cnn"].update(epochs=0), "config.models.shapes_cnn.epochs: 0 is less than the minimum of 1"),
    (lambda c: c.update(fill_mode="mirror"), "config.fill_mode: 'mirror' is not allowed; allowed: 'constant', 'nearest', 'reflect', 'wrap'"),
    (lambda c: c.update(colour="red"), "config: unknown key(s) 'colour'"),
    (lambda c: c["models"]["shapes_cnn"].update(dataset="nope"), "config.models.shapes_cnn.dataset: 'nope' is not a key of config.datasets"),
    (lambda c: c["images"].append({"file": "missing.png"}), "config.images[1].file: file 'missing.png' does not exist"),
    (lambda c: c["images"].append({"file": "a.png", "folder": "b"}), "config.images[1]: give exactly one of dataset, folder, file"),
    (lambda c: c["transforms"].append({"kind": "hflip", "range": [0, 1, 1]}), "takes no range"),
    (lambda c: c["transforms"].append({"kind": "twist"}), "config.transforms[5].kind: 'twist' is not allowed"),
    (lambda c: c["heatmaps"].update(target="best"), "config.heatmaps.target: 'best' is not allowed"),
    (lambda c: c["images"][0].update(count=1000), "past the end of the test split"),
    (lambda c: c["transforms"].append({"kind": "rotate"}), "config.transforms[5]: rotate needs angle_deg"),
    (lambda c: c["report"].update(sheet_transforms=["rotate_50"]), "config.report.sheet_transforms: rotate_50 not in the study"),
    (lambda c: c["transforms"].append({"kind": "scale", "range": [0, 2, 0.5]}), "must keep scale factors > 0"),
    (lambda c: c["images"].append({"folder": "tests"}), "config.images[1].folder: no image files in 'tests'"),
    (lambda c: c.update(comparison={"reference": "other"}), "config.comparison.reference: 'other' is not a key of config.models"),
    (lambda c: c.update(comparison={"adjust": "bonferroni"}), "config.comparison.adjust: 'bonferroni' is not allowed; allowed: 'bh', 'holm'"),
    (lambda c: c.update(comparison={"level": 1.5}), "config.comparison.level: 1.5 is greater than or equal to the maximum of 1"),
    (lambda c: c["models"].update(comparison=c["models"]["shapes_cnn"]), "config.models: name 'comparison' is reserved"),
])
def test_bad_config_fails_with_one_line_naming_the_key(edit, expected):
    cfg = default_config()
    edit(cfg)
    with pytest.raises(ConfigError) as info:
        cfgmod.validate(cfg, base_dir=ROOT)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


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

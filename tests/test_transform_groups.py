"""Transform groups the user names (config comparison.groups): the kinds' magnitudes, the selectors and their errors."""

from pathlib import Path

import pytest
import yaml

from convlens.config import ConfigError, validate
from convlens.errors import InputError
from convlens.transform_groups import Group, parse_groups, user_groups_of
from convlens.transform_kinds import REGISTRY
from convlens.transforms import Transform, build_transforms


def test_each_kind_owns_its_magnitude():
    assert REGISTRY["shift"].magnitude_of({"dx": -3, "dy": 2}) == 3  # max(|dx|, |dy|)
    assert REGISTRY["rotate"].magnitude_of({"angle_deg": -45}) == -45
    assert REGISTRY["scale"].magnitude_of({"factor": 0.8}) == 0.8
    assert REGISTRY["jpeg"].magnitude_of({"quality": 70}) == 70
    assert REGISTRY["hflip"].magnitude_of({}) is None


def test_a_group_holds_the_transforms_within_its_bounds_by_distance_from_the_identity():
    study = build_transforms(
        [
            {"kind": "shift", "range": [-4, 4, 1], "direction": "x"},
            {"kind": "shift", "dx": 2, "dy": -3},
            {"kind": "rotate", "range": [-90, 90, 45]},
            {"kind": "scale", "range": [0.7, 1.3, 0.1]},
            {"kind": "hflip"},
            {"kind": "jpeg", "range": [50, 90, 20]},
        ]
    )
    groups = parse_groups(
        {
            "small_shift": {"kind": "shift", "max": 2},
            "large_shift": {"kind": "shift", "min": 3},
            "steep": {"kind": "rotate", "min": 45, "max": 90},
            "mild_scale": {"kind": "scale", "max": 1.25},
            "flips": {"kind": "hflip"},
            "mild_jpeg": {"kind": "jpeg", "max": 70},  # no farther from the identity than quality 70
        }
    )
    members = {g.name: [t.name for t in study if g.holds(t)] for g in groups}
    assert members["small_shift"] == [f"shift_dx{d}_dy0" for d in (-2, -1, 1, 2)]
    assert members["large_shift"] == [
        "shift_dx-4_dy0",
        "shift_dx-3_dy0",
        "shift_dx3_dy0",
        "shift_dx4_dy0",
        "shift_dx2_dy-3",
    ]
    assert members["steep"] == ["rotate_-90", "rotate_-45", "rotate_45", "rotate_90"]
    assert members["mild_scale"] == ["scale_0.8", "scale_0.9", "scale_1.1", "scale_1.2"]  # |log f| <= log 1.25
    assert members["flips"] == ["hflip"]
    assert members["mild_jpeg"] == ["jpeg_70", "jpeg_90"]  # 100 - quality <= 30
    assert user_groups_of(Transform("shift", {"dx": 2, "dy": 0}), groups) == ["small_shift"]
    assert user_groups_of(Transform("identity"), groups) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"s": {"kind": "shfit", "max": 2}},
            r"config.comparison.groups.s.kind: 'shfit' is not allowed \(did you mean 'shift'\?\)",
        ),
        (
            {"s": {"kind": "shift", "max_px": 2}},
            r"groups.s: unknown key 'max_px' \(did you mean 'max'\? .*\) for kind shift; allowed: kind, min, max",
        ),
        ({"s": {"kind": "hflip", "max": 1}}, r"groups.s: unknown key 'max' for kind hflip; allowed: kind$"),
        ({"s": {"kind": "shift", "min": 3, "max": 2}}, r"groups.s: min 3 is farther from the identity than max 2"),
        ({"s": {"kind": "scale", "max": 0}}, r"groups.s.max: must be a factor > 0"),
        ({"s": {"max": 2}}, r"groups.s: needs a mapping with kind"),
        ({"rotate": {"kind": "rotate"}}, r"group name 'rotate' is a built-in group's name"),
        ({"clean": {"kind": "rotate"}}, r"group name 'clean' is a built-in group's name"),
        ({"small shift": {"kind": "shift"}}, r"group name 'small shift' must be a letter"),
    ],
)
def test_a_bad_selector_is_a_one_line_error_naming_the_key(spec, message):
    with pytest.raises(InputError, match=message) as info:
        parse_groups(spec)
    assert "\n" not in str(info.value)


def test_the_config_checks_the_groups_before_any_job():
    base = {
        "datasets": {"d": {"kind": "shapes"}},
        "models": {"m": {"source": "train", "architecture": "shapes_cnn", "dataset": "d"}},
        "images": [{"dataset": "d", "count": 1}],
    }
    cfg = validate({**base, "comparison": {"groups": {"small_shift": {"kind": "shift", "max": 2}}}})
    assert cfg["comparison"]["groups"] == {"small_shift": {"kind": "shift", "max": 2}}
    assert validate(base)["comparison"]["groups"] == {}
    with pytest.raises(ConfigError, match=r"^config.comparison.groups.g: unknown key 'maximum'"):
        validate({**base, "comparison": {"groups": {"g": {"kind": "rotate", "maximum": 2}}}})
    with pytest.raises(ConfigError, match=r"config.comparison.groups.g.max"):  # the schema: a number
        validate({**base, "comparison": {"groups": {"g": {"kind": "rotate", "max": "big"}}}})


def test_the_default_study_defines_small_shift():
    root = Path(__file__).resolve().parent.parent
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    (group,) = [g for g in parse_groups(cfg["comparison"]["groups"]) if g.name == "small_shift"]
    assert group == Group("small_shift", "shift", None, 2.0)
    held = [t.name for t in build_transforms(cfg["transforms"]) if group.holds(t)]
    assert held == [f"shift_dx{d}_dy0" for d in (-2, -1, 1, 2)]

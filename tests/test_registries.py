"""The registries and what repeats them: the config schema names no transform kind and no heatmap
method (validation fills them from convlens/transform_kinds.py and the method classes), config/README.md
holds both tables as generated from the registries, and a throw-away kind and method show that each
is one entry."""

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from convlens import transform_kinds as tk
from convlens import transforms as tr
from convlens.attribution import METHODS
from convlens.config import SCHEMA_PATH, load_schema
from convlens.transform_docs import doc_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "config" / "README.md").read_text()


def _transform_item_schema() -> dict:
    return load_schema()["properties"]["transforms"]["items"]


def _section(title: str) -> str:
    """The text of one ``## `title` `` section of config/README.md."""
    match = re.search(rf"^## `{title}`\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"config/README.md has no section {title}"
    return match.group(1)


def test_the_schema_file_names_no_transform_kind():
    # the kinds, their parameters and the default study come from the registry (config.load_schema)
    raw = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]
    text = yaml.safe_dump([raw["transforms"], raw["report"]["properties"]["sheet_transforms"]])
    named = [k for k in tk.REGISTRY if re.search(rf"\b{k}\b", text)]
    assert not named, f"workflow/schemas/config.schema.yaml names transform kinds: {named}"
    assert set(raw["transforms"]["items"]["properties"]) == {"kind", "range"} and "default" not in raw["transforms"]


def test_schema_kind_enum_is_the_registry_in_order():
    # the order shows in error messages ("allowed: identity, shift, ...") and in tr.KINDS
    assert _transform_item_schema()["properties"]["kind"]["enum"] == list(tk.REGISTRY)
    assert tr.KINDS == tuple(tk.REGISTRY)
    assert load_schema()["properties"]["transforms"]["default"] == list(tk.DEFAULT_TRANSFORMS)


def test_schema_transform_keys_are_the_registry_parameters():
    params = {p.name for kind in tk.REGISTRY.values() for p in kind.params}
    options = {o.name for kind in tk.REGISTRY.values() for o in kind.range_options}
    properties = _transform_item_schema()["properties"]
    assert set(properties) == {"kind", "range"} | params | options
    assert properties["quality"] == {"type": "integer", "minimum": 1, "maximum": 100, **_described(properties)}
    assert properties["factor"]["exclusiveMinimum"] == 0  # scale and contrast agree
    assert properties["direction"]["enum"] == ["x", "y", "xy"]


def _described(properties: dict) -> dict:
    return {"description": properties["quality"]["description"]}


def test_every_kind_and_parameter_is_in_the_config_reference():
    section = _section("transforms")
    missing = [k for k in tk.REGISTRY if f"`{k}`" not in section]
    missing += [p.name for kind in tk.REGISTRY.values() for p in kind.params if f"`{p.name}`" not in section]
    assert not missing, f"config/README.md's transforms section does not name: {missing}"
    assert "convlens/transform_kinds.py" in section


def test_the_config_reference_holds_the_registrys_kinds_table():
    assert doc_table() in _section("transforms"), (
        "config/README.md's kinds table is not the registry's: replace it with the output of "
        "`python -m convlens.transform_docs`"
    )


def _posterize(**changes) -> tk.Kind:
    """A throw-away photometric kind with a bounded whole-number parameter and a curve."""
    fields = dict(
        core=lambda p: np.eye(3),
        centred=False,
        params=(tk.Param("levels", low=2, high=256, integer=True),),
        sweep=lambda v, spec: {"levels": v},
        axis=lambda p: ("posterize", float(p["levels"])),
        curves=(tk.Curve("posterize", None, "levels"),),
        unit="{:g} levels",
        words="posterizations",
        colour=tk.Family("Oranges"),
        photometric=True,
        equivariant=False,
        pixels="posterize",
        operation="round to {levels:g} levels",
    )
    return tk.Kind("posterize", **{**fields, **changes})


def _config(transforms: list) -> dict:
    return {
        "datasets": {"d": {"kind": "shapes"}},
        "models": {"m": {"source": "train", "architecture": "shapes_cnn", "dataset": "d"}},
        "images": [{"dataset": "d", "count": 2}],
        "transforms": transforms,
    }


def test_a_new_kind_is_one_registry_entry(monkeypatch):
    from convlens.config import ConfigError, validate

    monkeypatch.setitem(tk.REGISTRY, "posterize", _posterize())
    cfg = validate(_config([{"kind": "posterize", "levels": 4}, {"kind": "posterize", "range": [2, 8, 2]}]))
    assert [t.name for t in tr.build_transforms(cfg["transforms"])] == [
        "identity",
        "posterize_4",
        "posterize_2",
        "posterize_6",
        "posterize_8",
    ]
    for entry, message in (
        ({"kind": "posterize", "levels": 1}, r"config.transforms\[0\].levels: 1 is less than the minimum of 2$"),
        ({"kind": "posterize", "levels": 2.5}, r"config.transforms\[0\].levels: 2.5 is not of type 'integer'$"),
        (
            {"kind": "posterize", "range": [100, 300, 100]},
            r"config.transforms\[0\].range: posterize levels must be in \[2, 256\], not 300$",
        ),
        (
            {"kind": "posterize", "range": [2, 5, 1.5]},
            r"config.transforms\[0\].range: posterize levels must be a whole number, not 3.5$",
        ),
        ({"kind": "posterize", "factor": 2}, r"config.transforms\[0\]: posterize needs levels \(or a range\)$"),
        (
            {"kind": "twist"},
            r"config.transforms\[0\].kind: 'twist' is not allowed; allowed: 'identity', .*'posterize'$",
        ),
    ):
        with pytest.raises(ConfigError, match=message):
            validate(_config([entry]))
    assert (
        list(tk.REGISTRY)[-1] == "posterize"
        and "posterize" in load_schema()["properties"]["transforms"]["items"]["properties"]["kind"]["enum"]
    )
    assert "| `posterize` | pixels: round to `levels` levels | `levels` a whole number in [2, 256] | yes | no |" in (
        doc_table()
    )


def test_a_bound_that_kinds_sharing_a_parameter_disagree_on_is_checked_per_kind(monkeypatch):
    from convlens.config import ConfigError, validate

    # a kind whose factor must be >= 1 next to scale's factor > 0: the schema keeps neither bound,
    # the kinds' own checks keep both
    zoom = _posterize(params=(tk.Param("factor", low=1),), axis=lambda p: ("posterize", float(p["factor"])))
    monkeypatch.setitem(tk.REGISTRY, "posterize", zoom)
    assert "exclusiveMinimum" not in _transform_item_schema()["properties"]["factor"]
    validate(_config([{"kind": "scale", "factor": 0.5}, {"kind": "posterize", "factor": 2}]))
    with pytest.raises(ConfigError, match=r"config.transforms\[0\].factor: posterize factor must be in \[1, inf\]"):
        validate(_config([{"kind": "posterize", "factor": 0.5}]))
    with pytest.raises(ConfigError, match=r"config.transforms\[0\].factor: scale factor must be in \(0, inf\]"):
        validate(_config([{"kind": "scale", "factor": 0}]))


def test_the_schema_names_no_method_and_the_docs_table_is_the_registry():
    from convlens.attribution.registry import with_docs_table

    schema = (ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text()
    named = [m for m in METHODS if re.search(rf"\b{m}\b", schema)]
    assert not named, f"the config schema names methods {named}: validation reads them from the registry"
    assert with_docs_table(README) == README, (
        "config/README.md's methods table is stale; regenerate it: python -c 'from pathlib import Path; "
        'from convlens.attribution.registry import with_docs_table as w; p = Path("config/README.md"); '
        "p.write_text(w(p.read_text()))'"
    )


def test_every_method_is_in_the_config_reference():
    section = _section("heatmaps")
    missing = [m for m in METHODS if f"`{m}`" not in section]
    assert not missing, f"config/README.md's heatmaps section does not describe: {missing}"


def test_every_method_parameter_has_its_allowed_values_declared_and_the_defaults_pass():
    from convlens.attribution.registry import check_method_params

    for name, method in METHODS.items():
        assert list(method.params) == list(method.defaults), name
        check_method_params(name, dict(method.defaults), f"heatmaps.params.{name}")  # no error
    for name, bad in (
        ("smoothgrad", {"samples": 0}),
        ("smoothgrad", {"samples": 2.5}),
        ("smoothgrad", {"noise": -1}),
        ("integrated_gradients", {"steps": -1}),
        ("integrated_gradients", {"baseline": 2}),
        ("integrated_gradients", {"blur_sigma": float("nan")}),
        ("occlusion", {"stride": 0}),
        ("occlusion", {"fill": True}),
        ("scorecam", {"channel_batch": 0}),
        ("saliency", {"reduce": "max"}),
    ):
        with pytest.raises(ValueError, match=f"heatmaps.params.{name}.{next(iter(bad))}: .* is not allowed; allowed: "):
            check_method_params(name, bad, f"heatmaps.params.{name}")


def test_a_new_method_is_one_class_and_every_list_reads_it():
    """A throw-away Method subclass, registered: config validation accepts its name and enforces its
    parameter bounds, the registry, display name, colour and docs table list it; then it is gone."""
    from convlens import config as cfgmod
    from convlens.attribution import registry
    from convlens.attribution.base import Look, Method, Param, whole

    class Throwaway(Method):
        name = "throwaway_method"
        params = {"width": Param(3, whole(2))}
        look = Look("Throw-away", "#DDCC77")
        reference = "nobody 2024"
        cost = "nothing"

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["heatmaps"].update(methods=["gradcam", "throwaway_method"], params={"throwaway_method": {"width": 1}})
    with pytest.raises(cfgmod.ConfigError, match="throwaway_method"):  # before: not a method
        cfgmod.validate(cfg, base_dir=ROOT)
    registry.register(Throwaway)
    try:
        assert list(METHODS)[-1] == "throwaway_method"
        assert registry.display_name("throwaway_method") == "Throw-away"
        assert registry.method_colour("throwaway_method") == "#DDCC77"
        with pytest.raises(cfgmod.ConfigError) as info:
            cfgmod.validate(cfg, base_dir=ROOT)
        assert str(info.value) == (
            "config.heatmaps.params.throwaway_method.width: 1 is not allowed; allowed: an integer >= 2"
        )
        cfg["heatmaps"]["params"] = {"throwaway_method": {"width": 2}}
        assert cfgmod.validate(cfg, base_dir=ROOT)["heatmaps"]["methods"] == ["gradcam", "throwaway_method"]
        cfg["heatmaps"]["methods"] = ["nothing"]
        with pytest.raises(cfgmod.ConfigError, match="'guided_gradcam', 'throwaway_method' \\(or 'all'"):
            cfgmod.validate(cfg, base_dir=ROOT)
        row = (
            "| `throwaway_method` | Throw-away | nobody 2024 | `width` = `3` (an integer >= 2) | any model | nothing |"
        )
        assert row in registry.docs_table().splitlines()
    finally:
        registry.unregister("throwaway_method")
    assert "throwaway_method" not in METHODS and "throwaway_method" not in registry.docs_table()
    assert registry.with_docs_table(README) == README


# ---------------------------------------------------------------------------------------------
# each kind's entry is complete and consistent


KINDS = [k for k in tk.REGISTRY.values() if k.name != "identity"]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_kind_has_words_and_a_colour(kind):
    import matplotlib

    assert kind.words and kind.name in tk.FINDINGS_ORDER
    assert isinstance(kind.colour, (tk.Family, tk.Line))
    if isinstance(kind.colour, tk.Family):
        matplotlib.colormaps[kind.colour.cmap]  # a colour map matplotlib knows
    else:
        assert matplotlib.colors.is_color_like(kind.colour.colour)
    # a kind with a magnitude has a unit and is drawn darker for larger magnitudes
    assert bool(kind.curves) == bool(kind.unit) == isinstance(kind.colour, tk.Family)


@pytest.mark.parametrize("kind", [k for k in KINDS if k.sweep], ids=lambda k: k.name)
def test_a_sweep_passes_through_the_identity_at_each_curves_neutral_magnitude(kind):
    for curve in kind.curves:
        if curve.neutral is None and curve.name.endswith(" crop"):  # a crop sweep's offset 0 is the centred crop
            spec = {"kind": kind.name, "range": [-2, 2, 1], "direction": "x", "mode": "crop"}
            assert not any(t.kind == "identity" for t in tr.expand_spec(spec))
            continue
        if curve.neutral is None:  # JPEG: no quality is lossless, so no magnitude is the identity
            assert kind.photometric and not any(
                t.kind == "identity" for t in tr.expand_spec({"kind": kind.name, "range": [10, 100, 10]})
            )
            continue
        params = kind.sweep(curve.neutral, {"kind": kind.name, "range": [0, 1, 1]})
        t = tr.Transform(kind.name, params)
        assert t.axis is not None and t.axis[1] == tr.NEUTRAL[t.axis[0]] and t.axis[0] in {c.name for c in kind.curves}
        assert np.array_equal(tr.forward_matrix(kind.name, params, 9, 12), np.eye(3))


@pytest.mark.parametrize("kind", [k for k in KINDS if k.sweep], ids=lambda k: k.name)
def test_swept_transforms_sit_on_their_kinds_curves_and_have_distinct_names(kind):
    ts = tr.expand_spec({"kind": kind.name, "range": [2, 4, 1]})  # magnitudes 2, 3, 4: none neutral here
    assert [t.kind for t in ts] == [kind.name] * 3 and len({t.name for t in ts}) == 3
    assert all(t.name.startswith(kind.name + "_") and t.param for t in ts)
    assert all(t.axis and t.axis[0] in {c.name for c in kind.curves} for t in ts)


def test_the_study_reads_the_registry():
    from convlens.sensitivity import findings, plots

    # sentences go through the kinds with a magnitude first, then the flips (as before the registry)
    order = [k for k in findings.KIND_ORDER if k in ("shift", "rotate", "scale", "hflip", "vflip")]
    assert order == ["shift", "rotate", "scale", "hflip", "vflip"]
    assert set(findings.KIND_ORDER) == set(findings.KIND_WORDS) == {k.name for k in KINDS}
    assert set(plots.FAMILY_CMAP) | set(plots.FLIP_STYLE) == {k.name for k in KINDS}
    assert findings.largest("scale", [tr.Transform("scale", {"factor": f}) for f in (0.6, 1.2, 1.4)]) == "×0.6"
    assert findings.largest("shift", [tr.Transform("shift", {"dx": -6, "dy": 0})]) == "6 px"
    assert findings.largest("rotate", [tr.Transform("rotate", {"angle_deg": -90})]) == "90°"
    assert findings.largest("hflip", [tr.Transform("hflip")]) == ""

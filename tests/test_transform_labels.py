"""A transform as a reader reads it (``Kind.label``, ``transform_labels.label_of``): a known string for
every kind, the same from the id the CSV files keep as from the parameters, and the report's filter."""

import pytest

from convlens.order import model_order
from convlens.transform_kinds import REGISTRY
from convlens.transform_labels import label_of, parse_name
from convlens.transforms import build_transforms

# one config entry per kind (and the shift's modes) with the label a reader sees
KNOWN = [
    ({"kind": "identity"}, "identity"),
    ({"kind": "shift", "dx": 0, "dy": -4}, "shift (0, −4) px"),
    ({"kind": "shift", "dx": 2.5, "dy": 0}, "shift (2.5, 0) px"),
    ({"kind": "rotate", "angle_deg": 90}, "rotate 90°"),
    ({"kind": "rotate", "angle_deg": -15}, "rotate −15°"),
    ({"kind": "hflip"}, "hflip"),
    ({"kind": "vflip"}, "vflip"),
    ({"kind": "scale", "factor": 1.25}, "scale ×1.25"),
    ({"kind": "blur", "sigma_px": 1.5}, "blur σ 1.5 px"),
    ({"kind": "noise", "std": 0.1}, "noise std 0.1"),
    ({"kind": "brightness", "delta": -0.2}, "brightness −0.2"),
    ({"kind": "contrast", "factor": 0.5}, "contrast ×0.5"),
    ({"kind": "jpeg", "quality": 50}, "jpeg quality 50"),
]


@pytest.mark.parametrize("spec, label", KNOWN, ids=[s["kind"] + str(i) for i, (s, _) in enumerate(KNOWN)])
def test_each_kind_reads_as_its_known_label_from_its_parameters_and_from_its_id(spec, label):
    (t,) = build_transforms([spec])[1:] or build_transforms([spec])  # identity is added first
    assert REGISTRY[t.kind].label(t.params) == label
    assert label_of(t.name) == label  # from the id alone, as a table or figure has it


def test_every_kind_has_a_known_label():
    assert {spec["kind"] for spec, _ in KNOWN} == set(REGISTRY)


def test_sweep_modes_follow_the_shift_and_ids_parse_back():
    specs = [
        {"kind": "shift", "range": [-2, 2, 2], "direction": "x", "mode": "circular"},
        {"kind": "shift", "range": [-2, 2, 2], "direction": "x", "mode": "crop"},
        {"kind": "scale", "range": [0.75, 1.25, 0.25]},
    ]
    labels = {t.name: label_of(t.name) for t in build_transforms(specs)}
    assert labels["shift_dx-2_dy0_circular"] == "shift (−2, 0) px circular"
    assert labels["shift_dx2_dy0_x_crop"] == "shift (2, 0) px crop"
    assert labels["scale_0.75"] == "scale ×0.75"
    for t in build_transforms(specs + [spec for spec, _ in KNOWN]):
        kind, params = parse_name(t.name)
        assert kind.name == t.kind and kind.name_of({**t.params, **params}) == t.name


def test_a_name_no_kind_makes_stays_as_it_is():
    for name in ("worst case over all", "shift (odd px)", "shift_x", "rotate_", "hflip_2"):
        assert label_of(name) == name


def test_models_come_in_config_order_with_the_reference_first():
    cfg = {"models": {"zeta": {}, "alpha": {}, "mid": {}}, "comparison": {"reference": "mid"}}
    assert model_order(cfg) == ["mid", "zeta", "alpha"]  # not alphabetical
    cfg["comparison"]["reference"] = "zeta"
    assert model_order(cfg) == ["zeta", "alpha", "mid"]


def test_the_report_filter_labels_a_table_cell(tmp_path):
    from convlens.report import render_html

    template = "{{ 'shift_dx0_dy-4' | transform }}|{{ 'worst case over all' | transform }}"
    (tmp_path / "report.html.j2").write_text(template)
    assert render_html({"models": []}, tmp_path) == "shift (0, −4) px|worst case over all"


def test_text_drawn_with_pillows_font_has_a_hyphen_for_the_minus_sign():
    from convlens.transform_labels import label_ascii

    assert label_ascii("rotate_-90") == "rotate -90°" and label_ascii("shift_dx0_dy-4") == "shift (0, -4) px"
    assert label_ascii("scale_0.6") == "scale x0.6" and label_ascii("blur_0.5").startswith("blur sigma 0.5")

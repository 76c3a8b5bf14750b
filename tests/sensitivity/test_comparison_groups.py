"""The comparison's user-named transform groups and accuracy, on fabricated tidy tables with known answers."""

import numpy as np
import pandas as pd
import pytest

from convlens import stats
from convlens.sensitivity import comparison as cmp
from convlens.sensitivity.comparison_plots import plot_accuracy, plot_sweep
from convlens.stages.comparison import sweep_members
from convlens.transform_groups import parse_groups
from convlens.transforms import build_transforms

N = 40
IMAGES = [f"img{i:02d}" for i in range(N)]
STUDY = build_transforms([{"kind": "shift", "range": [-4, 4, 1], "direction": "x"}])  # identity, -4 ... 4
SHIFTS = [t for t in STUDY if t.kind == "shift"]
SMALL = parse_groups({"small_shift": {"kind": "shift", "max": 2}})


def tidy(values: dict[str, np.ndarray], metric: str, layer: str = "output") -> pd.DataFrame:
    """A model's tidy table from transform name -> one value per image."""
    params = {t.name: t.param for t in STUDY}
    rows = [
        (im, name, params[name], layer, metric, v)
        for name, vs in values.items()
        for im, v in zip(IMAGES, vs, strict=True)
    ]
    return pd.DataFrame(rows, columns=["image", "transform", "param", "layer", "metric", "value"])


def opposite_effects(seed=0):
    """MAC of two models: the other model lower by 0.1 under |dx| <= 2 and higher by 0.1 under |dx| >= 3."""
    r = np.random.default_rng(seed)
    base = {t.name: r.uniform(0.1, 0.5, N) for t in SHIFTS}
    effect = {t.name: -0.1 if abs(t.params["dx"]) <= 2 else 0.1 for t in SHIFTS}
    other = {name: v + effect[name] + r.normal(0, 0.01, N) for name, v in base.items()}
    return base, other


def test_small_and_large_shifts_with_opposite_effects_no_longer_cancel():
    base, other = opposite_effects()
    wide = cmp.widen({"base": tidy(base, "prob_change"), "other": tidy(other, "prob_change")})
    grouped = cmp.group_transforms(wide, STUDY, SMALL)
    assert list(grouped.keys["group"]) == ["shift (even px)", "shift (odd px)", "small_shift"]
    # the hand computation: per image, the mean over dx in {-2, -1, 1, 2}; then the mean over images
    small = ["shift_dx-2_dy0", "shift_dx-1_dy0", "shift_dx1_dy0", "shift_dx2_dy0"]
    by_hand = {m: np.mean([values[n] for n in small], axis=0) for m, values in (("base", base), ("other", other))}
    column = list(grouped.keys["group"]).index("small_shift")
    for model in ("base", "other"):
        assert np.allclose(grouped.values[model][:, column], by_hand[model])
    # shift_dx2_dy0 counts in its built-in group and in small_shift
    even = ["shift_dx-4_dy0", "shift_dx-2_dy0", "shift_dx2_dy0", "shift_dx4_dy0"]
    assert np.allclose(grouped.values["base"][:, 0], np.mean([base[n] for n in even], axis=0))
    summary, diffs = cmp.compare(grouped, "base", n_boot=1000, seed=1)
    row = diffs.set_index("group").loc["small_shift"]
    assert row["mean_model"] == pytest.approx(by_hand["other"].mean())
    assert row["difference"] == pytest.approx((by_hand["other"] - by_hand["base"]).mean())
    assert row["difference"] == pytest.approx(-0.1, abs=0.005) and cmp.supported(row, 0.95)
    ci = stats.mean_ci((by_hand["other"] - by_hand["base"])[:, None], n_boot=1000, seed=1)
    assert row["ci_low"] == pytest.approx(ci["ci_low"][0]) and row["ci_high"] == pytest.approx(ci["ci_high"][0])
    cancelled = diffs.set_index("group").loc["shift (even px)"]  # -0.1, -0.1, +0.1, +0.1: the effects cancel
    assert abs(cancelled["difference"]) < 0.01 and not cmp.supported(cancelled, 0.95)
    text = " ".join(cmp.findings(diffs, None, 0.95, 1000, "bh"))
    assert "other vs base, under small_shift: MAC (probability change) lower by 0.09" in text


def accuracy_tables():
    """Accuracy of two models: both right on 36 of 40 clean images; the other loses 10 images under
    |dx| >= 3 (opposite to nothing under small shifts)."""
    clean = np.ones(N)
    clean[:4] = 0
    base = {t.name: clean.copy() for t in STUDY}
    other = {name: v.copy() for name, v in base.items()}
    for t in SHIFTS:
        if abs(t.params["dx"]) >= 3:
            other[t.name][4:14] = 0
    return base, other


def test_accuracy_is_a_key_row_of_every_group_beside_clean_accuracy():
    base, other = accuracy_tables()
    wide = cmp.widen({"base": tidy(base, "correct"), "other": tidy(other, "correct")})
    grouped = cmp.group_transforms(wide, STUDY, SMALL)
    assert list(grouped.keys["group"]) == ["clean", "shift (even px)", "shift (odd px)", "small_shift"]
    summary, diffs = cmp.compare(grouped, "base", n_boot=1000, seed=0)
    clean = summary[(summary["group"] == "clean")].set_index("model")["mean"]
    assert clean["base"] == clean["other"] == pytest.approx(0.9)  # 36 of 40
    key = cmp.key_table(diffs, None, 0.95)
    assert list(key["group"]) == ["clean", "shift (even px)", "shift (odd px)", "small_shift"]
    assert set(key["metric"]) == {"correct"}
    even = key.set_index("group").loc["shift (even px)"]
    # per image: images 4-13 lose 2 of the 4 even shifts (-4, 4): -0.5 each, so -0.125 over 40 images
    assert even["difference"] == pytest.approx(-10 * 0.5 / N) and even["supported"]
    assert key.set_index("group").loc["small_shift", "difference"] == 0
    sentences = cmp.findings(diffs, None, 0.95, 1000, "bh")
    said = [s for s in sentences if "under shift (even px)" in s][0]
    assert "accuracy 0.9 → 0.775 (clean 0.9 → 0.9) lower by 0.125" in said
    assert any(
        s.startswith("other vs base, on the untransformed images: accuracy 0.9 → 0.9: no detectable") for s in sentences
    )


def test_without_labels_nothing_about_accuracy_is_drawn_or_said(tmp_path):
    base, other = opposite_effects()
    wide = cmp.widen({"base": tidy(base, "prob_change"), "other": tidy(other, "prob_change")})
    grouped = cmp.group_transforms(wide, STUDY, SMALL)
    summary, diffs = cmp.compare(grouped, "base", n_boot=200)
    assert "clean" not in set(grouped.keys["group"])
    assert not any("accuracy" in s for s in cmp.findings(diffs, None, 0.95, 200, "bh"))
    groups = list(dict.fromkeys(grouped.keys["group"]))
    assert plot_accuracy(summary, groups, ["base", "other"], 0.95, tmp_path / "accuracy.png") is False
    assert not (tmp_path / "accuracy.png").exists()


def test_the_accuracy_figure_and_the_sweeps_accuracy_panel(tmp_path):
    base, other = accuracy_tables()
    tables = {m: pd.concat([tidy(v, "correct"), tidy(v, "prob_change")]) for m, v in (("base", base), ("other", other))}
    wide = cmp.widen(tables)
    grouped = cmp.group_transforms(wide, STUDY, SMALL)
    group_summary, _ = cmp.compare(grouped, "base", n_boot=200)
    groups = list(dict.fromkeys(grouped.keys["group"]))
    assert plot_accuracy(group_summary, groups, ["base", "other"], 0.95, tmp_path / "accuracy.png") is True
    assert (tmp_path / "accuracy.png").stat().st_size > 1000
    summary, _ = cmp.compare(wide, "base", n_boot=200)
    ((curve, members),) = sweep_members(STUDY).items()
    drawn = {}
    for name, rows in (("with", summary), ("without", summary[summary["metric"] != "correct"])):
        drawn[name] = plot_sweep(rows, curve, members, None, ["base", "other"], 0.95, tmp_path / f"{name}.png")
    assert drawn["with"] == [*drawn["without"], "correct"]  # one more panel: accuracy

"""The Lie derivative's and consistency's rows in the model comparison's groups (sensitivity.lie
MEASURE_GROUPS, sensitivity.comparison), on fabricated tables with known means."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from convlens.sensitivity import comparison as cmp
from convlens.transforms import build_transforms

TRANSFORMS = build_transforms(
    [{"kind": "identity"}, {"kind": "shift", "dx": 2, "dy": 0}, {"kind": "rotate", "angle_deg": 90}]
)


def table(lie_shift: float, lie_rotate: float, consistent: float, images: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(images):
        noise = lambda: 0.01 * rng.standard_normal()  # noqa: E731
        image = f"im{i:02d}"
        for t in TRANSFORMS:
            rows.append(dict(image=image, transform=t.name, param="", layer="output", metric="top1_change", value=0.0))
        rows += [
            dict(image=image, transform="shift_x", param="", layer="output", metric="lie_derivative", value=lie_shift),
            dict(
                image=image, transform="shift_y", param="", layer="output", metric="lie_derivative", value=lie_shift + 2
            ),
            dict(
                image=image,
                transform="rotate",
                param="",
                layer="output",
                metric="lie_derivative",
                value=lie_rotate + noise(),
            ),
            dict(
                image=image,
                transform="shift_x",
                param="",
                layer="output",
                metric="consistency",
                value=consistent + noise(),
            ),
        ]
    return pd.DataFrame(rows)


def test_lie_and_consistency_rows_get_their_own_groups():
    wide = cmp.group_transforms(cmp.widen({"a": table(1.0, 5.0, 0.9)}), TRANSFORMS)
    keys = wide.keys.assign(mean=np.nanmean(wide.values["a"], axis=0))
    got = {(r.group, r.metric): r.mean for r in keys.itertuples()}
    assert got[("Lie derivative (shift)", "lie_derivative")] == pytest.approx(2.0)  # (1 + 3) / 2 per image
    assert got[("Lie derivative (rotate)", "lie_derivative")] == pytest.approx(5.0, abs=0.01)
    assert got[("consistency (shift x)", "consistency")] == pytest.approx(0.9, abs=0.01)
    # the shift_x curve's consistency is not pooled with the shift_x generator, nor a transform group
    assert ("Lie derivative (shift)", "consistency") not in got and ("shift", "lie_derivative") not in got


def test_key_table_and_findings_give_them_with_intervals():
    wide = cmp.group_transforms(cmp.widen({"a": table(1.0, 5.0, 0.9), "b": table(1.0, 8.0, 0.5, seed=1)}), TRANSFORMS)
    _, diffs = cmp.compare(wide, "a", n_boot=500)
    key = cmp.key_table(diffs, None, 0.95)
    rotate = key[key["group"] == "Lie derivative (rotate)"].iloc[0]
    assert rotate["difference"] == pytest.approx(3.0, abs=0.02) and rotate["ci_low"] > 2.9 and rotate["supported"]
    shift = key[key["group"] == "Lie derivative (shift)"].iloc[0]
    assert shift["difference"] == pytest.approx(0.0) and not shift["supported"]
    cons = key[key["group"] == "consistency (shift x)"].iloc[0]
    assert cons["metric"] == "consistency" and cons["difference"] == pytest.approx(-0.4, abs=0.02)
    text = "\n".join(cmp.findings(diffs, None, 0.95, 500, "bh"))
    assert "b vs a, under Lie derivative (rotate): Lie derivative higher by 3" in text
    assert "b vs a, under consistency (shift x): consistency lower by 0.4" in text

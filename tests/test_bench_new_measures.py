"""benchmarks.new_measures end to end on a handful of images (the real measure job, in this process):
every variant runs, "all" writes the new measures' rows and CKA minibatches, "without" writes none of
them (cka.enabled: false leaves an empty cka.npz that rule cka's and cka_comparison's stages take).
No time is asserted."""

import math

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("keras")

from benchmarks import new_measures  # noqa: E402
from convlens.stages.cka import cka_study, compare_cka  # noqa: E402

N = new_measures.FIT_IMAGES + 2  # two images outside the ladder's fit set get its rows


# a few transforms instead of the default study's 41 (what is checked is the plumbing, not the cost)
FEW_TRANSFORMS = [
    {"kind": "shift", "range": [-2, 2, 1], "direction": "x"},
    {"kind": "rotate", "range": [-30, 30, 30]},
    {"kind": "hflip"},
]


@pytest.mark.integration
def test_the_benchmark_measures_with_and_without_the_new_measures(tmp_path, monkeypatch):
    setup = new_measures.setup

    def few_transforms(folder, n_images):
        base = setup(folder, n_images)
        return {**base, "cfg": {**base["cfg"], "transforms": FEW_TRANSFORMS}}

    monkeypatch.setattr(new_measures, "setup", few_transforms)
    rows = new_measures.benchmark([N], ["without", "all"], ["none"], folder=tmp_path, in_process=True)
    assert sorted(r["variant"] for r in rows) == ["all", "without"]
    for r in rows:
        assert r["n"] == N and r["heatmaps"] == "none"
        assert math.isfinite(r["seconds"]) and r["seconds"] > 0 and r["cpu_seconds"] > 0
        assert r["model_step"] > 0 and r["max_rss_mb"] > 0
    assert len(new_measures.ratios(rows)) == 1

    def metrics(variant):
        return set(pd.read_csv(tmp_path / f"{variant}_m.csv.gz")["metric"])

    new = {"lie_derivative", "equivariance_error_perm", "equivariance_error_linear"}
    assert new <= metrics("all")
    assert not new & metrics("without")
    assert "equivariance_error" in metrics("without")
    with np.load(tmp_path / "all_c.npz") as npz:
        assert list(npz["sizes"]) == [16, 16]  # 34 images: two minibatches, the last 2 images left out
    with np.load(tmp_path / "without_c.npz") as npz:
        assert npz["hsic"].shape[0] == 0 and npz["grams"].shape[0] == 0

    # CKA off: the cka and cka_comparison stages still complete, with NaN and no rows
    study = {k: str(tmp_path / f"off_{k}.{e}") for k, e in (("table", "csv"), ("grams", "npz"), ("layers", "csv"))}
    cka_study([str(tmp_path / "without_c.npz")], 20, 0.9, 0, study)
    table = pd.read_csv(study["table"])
    assert len(table) > 0 and table["cka"].isna().all() and (table["minibatches"] == 0).all()
    out = {k: str(tmp_path / f"cmp_{k}.{e}") for k, e in (("table", "csv"), ("pairs", "csv"), ("figure", "png"))}
    out["manifest"] = str(tmp_path / "cmp.json")
    compare_cka({"m": study["grams"]}, {"m": study["layers"]}, "m", {}, out)
    assert len(pd.read_csv(out["table"])) == 0

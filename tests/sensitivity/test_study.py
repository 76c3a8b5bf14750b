"""The study's tables, findings and plots over all images (convlens.sensitivity; run_study is the stage),
against an independent recomputation."""

import numpy as np
import pandas as pd
import pytest

from convlens import transforms as tr
from convlens.sensitivity import findings as findings_mod
from convlens.sensitivity import metrics as sensitivity
from convlens.sensitivity import tables
from convlens.stages.sensitivity import run_study


def test_findings_survive_undefined_heatmaps_and_unlabelled_images():
    table = synthetic_table(2)
    table.loc[table["metric"].str.startswith("heatmap_"), "value"] = np.nan  # constant maps everywhere
    table = table[~((table["metric"] == "correct") & (table["image"] == "c"))]  # image c has no label
    transforms = tr.build_transforms([{"kind": "rotate", "range": [-30, 30, 60]}, {"kind": "hflip"}])
    pred = tables.prediction_table(table, transforms)
    assert pred.iloc[-1]["n_images"] == 2  # the worst case counts labelled images only
    sentences = findings_mod.findings(
        table, transforms, ["l1", "l2"], pd.DataFrame(columns=["layer", "mean"]), pred, tables.heatmap_by_flip(table)
    )
    text = " ".join(part["text"] for sentence in sentences for part in sentence)
    assert "undefined" not in text and "2 labelled images" in text


def synthetic_table(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    names = [("identity", ""), ("rotate_-30", "-30"), ("rotate_30", "30"), ("hflip", "")]
    for image in ("a", "b", "c"):
        top = {t: int(rng.random() < 0.5) if t != "identity" else 0 for t, _ in names}
        for t, param in names:
            for layer in ("l1", "l2"):
                rows.append((image, t, param, layer, "equivariance_error", 0.0 if t == "identity" else rng.random()))
                rows.append((image, t, param, layer, "invariance_cosine", 1.0 if t == "identity" else rng.random()))
            rows.append((image, t, param, "output", "top1_change", float(top[t])))
            rows.append((image, t, param, "output", "prob_change", rng.random() * top[t]))
            rows.append((image, t, param, "output", "kl_divergence", rng.random()))
            rows.append((image, t, param, "output", "correct", float(1 - top[t]) if image != "c" else 0.0))
            rows.append((image, t, param, "gradcam", "heatmap_pearson", np.nan if image == "b" else rng.random()))
    return pd.DataFrame(rows, columns=sensitivity.COLUMNS)


def test_summary_equals_an_independent_recomputation():
    table = synthetic_table()
    summary = tables.summarize(table).set_index(["transform", "layer", "metric"])
    for (t, layer, metric), group in table.groupby(["transform", "layer", "metric"]):
        values = [v for v in group["value"] if not np.isnan(v)]
        row = summary.loc[(t, layer, metric)]
        assert row["n"] == len(values) and row["n_undefined"] == len(group) - len(values)
        assert row["mean"] == pytest.approx(sum(values) / len(values))
        if len(values) > 1:
            mean = sum(values) / len(values)
            assert row["std"] == pytest.approx((sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5)
        assert row["worst"] == (max(values) if sensitivity.METRICS[metric][1] else min(values))


def test_prediction_table_counts_flips_and_the_worst_case():
    table = synthetic_table()
    transforms = tr.build_transforms([{"kind": "rotate", "range": [-30, 30, 60]}, {"kind": "hflip"}])
    pred = tables.prediction_table(table, transforms).set_index("transform")
    out = table[table["layer"] == "output"]
    for t in ("rotate_-30", "rotate_30", "hflip"):
        flips = out[(out["transform"] == t) & (out["metric"] == "top1_change")]["value"]
        assert pred.loc[t, "flips"] == flips.sum() and pred.loc[t, "flip_rate"] == pytest.approx(flips.mean())
    correct = out[out["metric"] == "correct"].pivot(index="image", columns="transform", values="value")
    assert pred.loc["identity", "clean_accuracy"] == pytest.approx(correct["identity"].mean())
    assert pred.loc["worst case over all", "accuracy"] == pytest.approx((correct.min(axis=1)).mean())


def test_study_writes_tables_plots_and_sentences_that_link_images(tmp_path):
    table = synthetic_table(1)
    paths = []
    for image, frame in table.groupby("image"):
        paths.append(tmp_path / f"{image}.csv")
        frame.to_csv(paths[-1], index=False, na_rep="nan")  # as csv.DictWriter writes an undefined value
    pooled = {i: {"l1": np.array([1.0, float(k)]), "l2": np.array([float(k), 1.0])} for k, i in enumerate("abc")}
    transforms = tr.build_transforms([{"kind": "rotate", "range": [-30, 30, 60]}, {"kind": "hflip"}])
    manifest = run_study(
        [str(p) for p in paths], pooled, transforms, ["l1", "l2"], tmp_path / "out", tmp_path / "out" / "figures"
    )
    written = pd.read_csv(tmp_path / "out" / "metrics.csv", keep_default_na=False, na_values=[""])
    assert list(written.columns) == sensitivity.COLUMNS and len(written) == len(table)
    assert manifest["curves"] == {"rotate": "sweep_rotate.png"}
    for name in ("by_layer.png", "predictions.png", "heat_table_1.png", "sweep_rotate.png"):
        assert (tmp_path / "out" / "figures" / name).stat().st_size > 5000
    base = pd.read_csv(tmp_path / "out" / "baseline.csv").set_index("layer")
    vecs = [np.array([1.0, k]) for k in range(3)]
    cos = [v @ w / np.linalg.norm(v) / np.linalg.norm(w) for i, v in enumerate(vecs) for w in vecs[i + 1 :]]
    assert base.loc["l1", "mean"] == pytest.approx(np.mean(cos)) and base.loc["l1", "n_pairs"] == 3
    linked = [part["image"] for sentence in manifest["findings"] for part in sentence if "image" in part]
    assert linked and set(linked) <= {"a", "b", "c"}


def test_photometric_sweeps_have_curves_and_sentences_without_equivariance(tmp_path):
    """blur and JPEG sweeps beside a rotation: the blur curve passes through the identity at σ 0, the JPEG
    curve has only its own qualities, and the sentences give their cosine, not an equivariance error."""
    rng = np.random.default_rng(3)
    transforms = tr.build_transforms(
        [
            {"kind": "rotate", "range": [-30, 30, 60]},
            {"kind": "blur", "range": [0, 2, 1]},
            {"kind": "jpeg", "range": [10, 50, 40]},
        ]
    )
    assert [t.name for t in transforms] == [
        "identity",
        "rotate_-30",
        "rotate_30",
        "blur_1",
        "blur_2",
        "jpeg_10",
        "jpeg_50",
    ]
    rows = []
    for image in "ab":
        for t in transforms:
            for layer, depth in (("l1", 1), ("l2", 2)):
                if not t.photometric:
                    rows.append(
                        (image, t.name, t.param, layer, "equivariance_error", 0.0 if t.kind == "identity" else 0.5)
                    )
                cosine = 1.0 if t.kind == "identity" else 1 - 0.1 * depth * (1 + (t.kind == "jpeg"))
                rows.append((image, t.name, t.param, layer, "invariance_cosine", cosine))
            rows += [
                (image, t.name, t.param, "output", m, v)
                for m, v in (("top1_change", float(t.name == "jpeg_10")), ("prob_change", 0.1), ("kl_divergence", 0.01))
            ]
            rows.append((image, t.name, t.param, "gradcam", "heatmap_pearson", rng.random()))
    table = pd.DataFrame(rows, columns=sensitivity.COLUMNS)
    table.to_csv(tmp_path / "m.csv", index=False)
    pooled = {i: {"l1": np.array([1.0, k]), "l2": np.array([k, 1.0])} for k, i in enumerate("ab")}
    manifest = run_study(
        [str(tmp_path / "m.csv")], pooled, transforms, ["l1", "l2"], tmp_path / "out", tmp_path / "out" / "figures"
    )
    assert manifest["curves"] == {"rotate": "sweep_rotate.png", "blur": "sweep_blur.png", "jpeg": "sweep_jpeg.png"}
    curves = tables.curves(tables.load_metrics([str(tmp_path / "m.csv")]), transforms)
    blur = curves["blur"][curves["blur"]["metric"] == "invariance_cosine"]
    assert sorted(blur["magnitude"].unique()) == [0, 1, 2]  # the identity at σ 0
    jpeg = curves["jpeg"][(curves["jpeg"]["metric"] == "invariance_cosine") & (curves["jpeg"]["layer"] == "l2")]
    assert jpeg["magnitude"].tolist() == [10, 50] and jpeg["value"].tolist() == pytest.approx([0.6, 0.6])
    assert curves["jpeg"][curves["jpeg"]["metric"] == "equivariance_error"].empty
    text = [" ".join(part["text"] for part in sentence) for sentence in manifest["findings"]]
    blur_text = [s for s in text if s.startswith("Under Gaussian blurs (pixel changes")]
    assert blur_text and "cosine of 0.900 at l1 and 0.800 at l2" in blur_text[0]
    assert any(s.startswith("Under JPEG compression the top-1 class changes in 2 of 4") for s in text)
    assert not any("equivariance error" in s and ("blur" in s or "JPEG" in s) for s in text)
    for name in ("sweep_blur.png", "sweep_jpeg.png", "by_layer.png", "heat_table_1.png"):
        assert (tmp_path / "out" / "figures" / name).stat().st_size > 5000

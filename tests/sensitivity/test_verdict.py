"""The verdict's key table and sentences on fabricated comparison tables: a sentence appears when the
numbers support it and not when they do not; accuracy appears exactly when the comparison has it."""

import numpy as np
import pandas as pd

from convlens.sensitivity import verdict

LEVEL = 0.95


def diff(model, group, layer, metric, ref_mean, model_mean, lo, hi, p_adj=0.001, n=40):
    return {
        "model": model,
        "reference": "ref",
        "group": group,
        "layer": layer,
        "metric": metric,
        "mean_model": model_mean,
        "mean_reference": ref_mean,
        "difference": model_mean - ref_mean,
        "ci_low": lo,
        "ci_high": hi,
        "n": n,
        "statistic": 1.0,
        "p_value": p_adj,
        "p_adj": p_adj,
    }


def differences(with_accuracy: bool) -> pd.DataFrame:
    rows = [
        # rotate: b flips supportedly less often (interval below 0)
        diff("b", "rotate", "output", "top1_change", 0.30, 0.10, -0.28, -0.12),
        # hflip: the interval spans 0 -> not supported
        diff("b", "hflip", "output", "top1_change", 0.20, 0.18, -0.09, 0.05, p_adj=0.6),
        diff("b", "rotate", "conv1", "equivariance_error", 0.50, 0.45, -0.08, -0.02),
        diff("b", "rotate", "conv2", "equivariance_error", 0.40, 0.20, -0.25, -0.15),  # the larger relative change
        diff("b", "hflip", "conv2", "equivariance_error", 0.30, 0.31, -0.02, 0.04, p_adj=0.7),
        diff("b", "rotate", "conv2", "invariance_cosine", 0.90, 0.95, 0.02, 0.08),
    ]
    if with_accuracy:
        rows += [
            diff("b", "rotate", "output", "accuracy", 0.50, 0.625, 0.04, 0.21),
            diff("b", "hflip", "output", "accuracy", 0.80, 0.79, -0.05, 0.03, p_adj=0.8),
        ]
    return pd.DataFrame(rows)


def test_supported_flip_rate_difference_is_said_and_the_unsupported_is_named_as_such():
    text = verdict.flip_sentence(differences(False), "b", "ref", LEVEL)
    assert "less often under rotate (0.1 against 0.3 of the images, -20.0 points, 95 % CI -28 to -12 points)" in text
    assert "under hflip the difference is not supported" in text
    assert "more often" not in text and "under hflip (" not in text


def test_overall_judgement_follows_the_intervals():
    text = verdict.overall_sentence(differences(False), "b", "ref", LEVEL)
    assert text == (
        "Judged by how often the prediction flips: b is more robust than ref to rotate (most under rotate: "
        "flip rate -20.0 points, 95 % CI -28 to -12 points); a difference under hflip is not supported."
    )
    # with accuracy too the judgement is the flip rate's: each model against its own clean prediction
    assert verdict.overall_sentence(differences(True), "b", "ref", LEVEL) == text
    # a model right more often under rotate only because it is right more often on clean images is not
    # called more robust: b is 0.99 clean and 0.80 rotated (flips 0.19), ref 0.70 and 0.69 (flips 0.02)
    skewed = pd.DataFrame(
        [
            diff("b", "rotate", "output", "accuracy", 0.69, 0.80, 0.06, 0.16),
            diff("b", "rotate", "output", "top1_change", 0.02, 0.19, 0.12, 0.22),
        ]
    )
    said = verdict.overall_sentence(skewed, "b", "ref", LEVEL)
    assert said.startswith("Judged by how often the prediction flips: ref is more robust than b to rotate")
    # a supported increase of the flip rate makes the reference the more robust one
    worse = pd.DataFrame([diff("b", "rotate", "output", "top1_change", 0.1, 0.3, 0.1, 0.3)])
    assert "ref is more robust than b to rotate" in verdict.overall_sentence(worse, "b", "ref", LEVEL)
    # interval excluding 0 but p_adj not below 1 - level: not supported
    weak = pd.DataFrame([diff("b", "rotate", "output", "top1_change", 0.3, 0.1, -0.3, -0.1, p_adj=0.2)])
    assert "more robust" not in verdict.overall_sentence(weak, "b", "ref", LEVEL)


def test_accuracy_sentence_appears_only_with_accuracy_and_sits_beside_clean_accuracy():
    clean = {"b": 0.9, "ref": 0.85}
    assert verdict.accuracy_sentence(differences(False), "b", "ref", LEVEL, clean) is None
    text = verdict.accuracy_sentence(differences(True), "b", "ref", LEVEL, clean)
    assert "under rotate 0.625 against 0.5 (+12.5 points, 95 % CI 4 to 21 points)" in text
    assert "clean accuracy 0.9 for b and 0.85 for ref" in text and "hflip" not in text
    none = differences(True)
    none = none[~((none["metric"] == "accuracy") & (none["group"] == "rotate"))]
    text = verdict.accuracy_sentence(none, "b", "ref", LEVEL, clean)
    assert text.startswith("Accuracy under the transforms: no difference between b and ref is supported")


def test_where_sentence_names_the_layer_of_the_largest_relative_supported_change():
    text = verdict.where_sentence(differences(False), "b", "ref", LEVEL)
    # conv2 under rotate: -50 % of the reference's error, against -10 % at conv1; hflip not supported
    assert "at conv2 under rotate, lower for b (0.2 against 0.4, -0.2" in text
    assert "2 of 3 layer × group differences supported" in text
    flat = differences(False)
    flat = flat[flat["metric"] != "equivariance_error"]
    assert verdict.where_sentence(flat, "b", "ref", LEVEL) is None
    unsupported = pd.DataFrame([diff("b", "rotate", "conv1", "equivariance_error", 0.5, 0.49, -0.05, 0.03, 0.9)])
    assert "no layer's equivariance error differs supportedly" in verdict.where_sentence(unsupported, "b", "ref", LEVEL)


def test_cosine_sentence_reads_against_each_models_between_images_baseline():
    scales = {"b": 0.8, "ref": 0.7}
    text = verdict.cosine_sentence(differences(False), "b", "ref", LEVEL, "conv2", scales)
    assert "keep a cosine of 0.95 against 0.9 for ref (+0.05, 95 % CI 0.02 to 0.08)" in text
    assert text.endswith("where different images already score 0.8 for b and 0.7 for ref.")
    assert verdict.cosine_sentence(differences(False), "b", "ref", LEVEL, "conv2", None) is None
    assert verdict.cosine_sentence(differences(False), "b", "ref", LEVEL, "conv2", {"b": 0.8}) is None  # no ref scale
    assert verdict.cosine_sentence(differences(False), "b", "ref", LEVEL, "conv1", scales) is None  # nothing at conv1


def test_at_most_five_sentences_in_order():
    scales = {"b": 0.8, "ref": 0.8}
    out = verdict.compared_sentences(differences(True), "ref", LEVEL, {"b": 0.9, "ref": 0.85}, "conv2", scales)
    assert len(out) == 5
    assert out[0].startswith("Judged by how often the prediction flips") and out[1].startswith("Accuracy of b")
    assert out[2].startswith("Where in the network") and "different images" in out[3] and "flips" in out[4]
    out = verdict.compared_sentences(differences(False), "ref", LEVEL, {}, "conv2", scales)
    assert len(out) == 4 and not any("ccuracy" in s for s in out)
    # three models: still at most five; each model's judgement and where in the network first
    third = differences(True).assign(model="c")
    out = verdict.compared_sentences(pd.concat([differences(True), third]), "ref", LEVEL, {}, "conv2", scales)
    assert len(out) == 5 and [s[:20] for s in out[:2]] == ["Judged by how often "] * 2
    assert "b is more robust" in out[0] and "c is more robust" in out[1]
    assert all(s.startswith("Where in the network") for s in out[2:4])


def summary_rows(with_accuracy: bool) -> pd.DataFrame:
    rows = []
    for model in ("ref", "b"):
        for group, flip in (("rotate", 0.3), ("hflip", 0.1)):
            rows.append((model, group, "output", "top1_change", flip))
            rows.append((model, group, "conv2", "equivariance_error", 0.4))
            rows.append((model, group, "conv1", "equivariance_error", 0.9))
            rows.append((model, group, "conv2", "equivariance_error_perm", 0.3))
            if with_accuracy:
                rows.append((model, group, "output", "accuracy", 1 - flip))
    frame = pd.DataFrame(rows, columns=["model", "group", "layer", "metric", "mean"])
    return frame.assign(ci_low=frame["mean"] - 0.05, ci_high=frame["mean"] + 0.05, n=40)


def test_key_rows_hold_accuracy_only_when_measured_and_the_deepest_layers_measures():
    rows = verdict.key_rows(summary_rows(True), "conv2", ["ref", "b"])
    assert list(dict.fromkeys(rows["model"])) == ["ref", "b"]  # the reference first, as given
    assert set(rows["measure"]) == {"accuracy", "flip_rate", "equivariance_error", "equivariance_error_perm"}
    assert set(rows[rows["measure"] == "equivariance_error"]["layer"]) == {"conv2"}  # not conv1
    acc = rows[(rows["measure"] == "accuracy") & (rows["model"] == "b") & (rows["group"] == "rotate")].iloc[0]
    assert np.isclose(acc["mean"], 0.7) and np.isclose(acc["ci_low"], 0.65) and np.isclose(acc["ci_high"], 0.75)
    assert "accuracy" not in set(verdict.key_rows(summary_rows(False), "conv2", ["ref", "b"])["measure"])
    # the tidy table's name for accuracy is read too
    renamed = summary_rows(True).replace({"metric": {"accuracy": "correct"}})
    assert "accuracy" in set(verdict.key_rows(renamed, "conv2", ["ref", "b"])["measure"])


def test_cka_rows_take_the_worst_transform_of_each_group_at_the_deepest_layer():
    rng = np.random.default_rng(0)
    cka = rng.uniform(0.2, 0.9, size=(2, 4))  # layers × transforms
    table = pd.DataFrame(
        {
            "layer": np.repeat(["conv1", "conv2"], 4),
            "transform": np.tile(["identity", "rotate_90", "rotate_-90", "hflip"], 2),
            "cka": cka.ravel(),
            "ci_low": cka.ravel() - 0.1,
            "ci_high": cka.ravel() + 0.1,
            "images": 16,
        }
    )
    group_of = {"identity": None, "rotate_90": "rotate", "rotate_-90": "rotate", "hflip": "hflip"}
    rows = verdict.cka_rows({"m": table}, group_of).set_index("group")
    assert set(rows.index) == {"rotate", "hflip"} and set(rows["layer"]) == {"conv2"}
    assert np.isclose(rows.loc["rotate", "mean"], min(cka[1, 1], cka[1, 2]))
    assert np.isclose(rows.loc["hflip", "mean"], cka[1, 3])
    assert np.isclose(rows.loc["rotate", "ci_low"], rows.loc["rotate", "mean"] - 0.1)


def test_one_model_sentences_name_its_worst_and_best_groups():
    out = verdict.single_sentences(summary_rows(True), "b", LEVEL, 0.95, "conv2", None)
    assert out[0].startswith("One model, b: nothing to compare with")
    assert any(s.startswith("Accuracy is worst under rotate (0.7") and "clean accuracy of 0.95" in s for s in out)
    assert any(s.startswith("The flip rate is worst under rotate (0.3") and "best under hflip (0.1" in s for s in out)
    assert not any("cosine" in s for s in out)  # no cosine rows and no baseline
    plain = verdict.single_sentences(summary_rows(False), "b", LEVEL, None, "conv2", None)
    assert not any("ccuracy" in s for s in plain)

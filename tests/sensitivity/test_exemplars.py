"""Exemplar choice from the measured tables (sensitivity.exemplars) against hand-made tables: one model
(the choice every study with one model makes) and several (where they disagree, averages over them)."""

import numpy as np
import pandas as pd
import pytest

from convlens.errors import InputError
from convlens.sensitivity.exemplars import choose_shared, disagreement, for_model, image_scores


def table(per_image: dict[str, list[tuple[float, int]]]) -> pd.DataFrame:
    """Tidy rows: per image, per transform (prob_change, top1_change), identity first (0, 0)."""
    rows = []
    for image, values in per_image.items():
        for k, (change, flip) in enumerate([(0.0, 0)] + values):
            t = "identity" if k == 0 else f"rotate_{k}"
            rows += [
                {
                    "image": image,
                    "transform": t,
                    "param": "",
                    "layer": "output",
                    "metric": "prob_change",
                    "value": change,
                },
                {
                    "image": image,
                    "transform": t,
                    "param": "",
                    "layer": "output",
                    "metric": "top1_change",
                    "value": float(flip),
                },
                {
                    "image": image,
                    "transform": t,
                    "param": "",
                    "layer": "conv",
                    "metric": "equivariance_error",
                    "value": 9.0,
                },
            ]  # other rows do not count
    return pd.DataFrame(rows)


MEASURED = table(
    {
        "a": [(0.10, 0), (0.10, 0)],  # mean change 0.10, no flip
        "b": [(0.50, 1), (0.30, 0)],  # 0.40, 1 flip
        "c": [(0.05, 1), (0.05, 1)],  # 0.05, 2 flips
        "d": [(0.20, 0), (0.00, 0)],  # 0.10, no flip (ties with a on change: a first by id)
        "e": [(0.01, 0), (0.01, 0)],
        "f": [(0.02, 1), (0.00, 0)],  # 0.01, 1 flip
    }
)


def choose(table, sensitive, flipped, random, named=None, seed=0):
    """The choice of a study with one model (its untransformed class: the same for every image)."""
    return choose_shared({"m": image_scores(table).assign(predicted="x")}, 2, sensitive, flipped, random, named, seed)


def test_scores_are_the_mean_change_and_the_flip_count_over_non_identity_transforms():
    scores = image_scores(MEASURED).set_index("image")
    assert scores.loc["b", "prob_change"] == pytest.approx(0.40)
    assert scores.loc["c", "flips"] == 2 and scores.loc["a", "flips"] == 0


def test_choice_order_reasons_and_no_image_twice():
    chosen = choose(MEASURED, sensitive=2, flipped=2, random=1, named=["e"], seed=3)
    assert [(c["image"], c["reason"]) for c in chosen][:5] == [
        ("e", "named"),
        ("b", "most sensitive"),
        ("a", "most sensitive"),  # a before d: tie broken by id
        ("c", "prediction flips"),
        ("f", "prediction flips"),
    ]  # b flips too but is already chosen
    assert chosen[-1]["reason"] == "random" and chosen[-1]["image"] == "d"  # the only one left
    assert len({c["image"] for c in chosen}) == len(chosen) == 6
    assert chosen[1]["prob_change"] == pytest.approx(0.40) and chosen[3]["flips"] == 2


def test_random_sample_is_seeded_and_asking_for_more_gives_what_there_is():
    one = choose(MEASURED, 0, 0, 3, seed=11)
    assert one == choose(MEASURED, 0, 0, 3, seed=11)
    assert {c["reason"] for c in one} == {"random"} and len(one) == 3
    rest = sorted(MEASURED["image"].unique())
    expected = np.random.default_rng(11).choice(len(rest), 3, replace=False)
    assert [c["image"] for c in one] == [rest[i] for i in sorted(expected)]
    assert len(choose(MEASURED, 10, 10, 10)) == 6


def test_only_images_that_flip_are_chosen_for_flips_and_empty_slots_are_filled_at_random():
    calm = table({"x": [(0.2, 0)], "y": [(0.1, 0)], "z": [(0.3, 0)]})
    chosen = choose(calm, 1, 2, 0, seed=5)
    assert [c["reason"] for c in chosen] == ["most sensitive", "random", "random"]  # no image flips
    assert chosen[0]["image"] == "z" and {c["image"] for c in chosen} == {"x", "y", "z"}


def test_a_named_image_that_was_not_measured_is_named_in_the_error():
    with pytest.raises(InputError, match="report.exemplars.images: zzz not among the images every model measured"):
        choose(MEASURED, 1, 1, 1, named=["zzz"])


def scores(per_image: dict[str, tuple[str, float, int]]) -> pd.DataFrame:
    """A model's scores: per image (predicted class, mean probability change, flips)."""
    return pd.DataFrame(
        [{"image": i, "predicted": p, "prob_change": c, "flips": f} for i, (p, c, f) in per_image.items()]
    )


# Two models on six images. Known answers: p is the only image with two different classes; q has the
# same class but the largest flip spread (6 - 0); s is the most sensitive on average ((0.9 + 0.7) / 2);
# t flips most on average with no spread; u is calm; v is measured by model A only.
A = scores(
    {
        "p": ("cat", 0.10, 1),
        "q": ("dog", 0.20, 6),
        "r": ("dog", 0.05, 1),
        "s": ("cat", 0.90, 2),
        "t": ("cat", 0.30, 5),
        "u": ("cat", 0.01, 0),
        "v": ("cat", 0.99, 9),
    }
)
B = scores(
    {
        "p": ("dog", 0.10, 1),
        "q": ("dog", 0.20, 0),
        "r": ("dog", 0.30, 1),
        "s": ("cat", 0.70, 2),
        "t": ("cat", 0.30, 5),
        "u": ("cat", 0.02, 0),
    }
)


def test_disagreement_counts_classes_and_spreads_against_numpy():
    table = disagreement({"A": A, "B": B})
    assert list(table.index) == ["p", "q", "r", "s", "t", "u"]  # v: not measured by B
    assert table.loc["p", "classes"] == 2 and (table.drop(index="p")["classes"] == 1).all()
    a, b = A.set_index("image").loc[table.index], B.set_index("image").loc[table.index]
    assert np.allclose(table["flip_spread"], np.abs(a["flips"].to_numpy() - b["flips"].to_numpy()))
    assert np.allclose(table["change_spread"], np.abs(a["prob_change"].to_numpy() - b["prob_change"].to_numpy()))
    assert np.allclose(table["prob_change"], (a["prob_change"].to_numpy() + b["prob_change"].to_numpy()) / 2)


def test_where_the_models_disagree_comes_first_then_the_averaged_kinds():
    chosen = choose_shared({"A": A, "B": B}, disagree=2, sensitive=1, flipped=1, random=1, seed=0)
    assert [(c["image"], c["reason"]) for c in chosen[:4]] == [
        ("p", "models disagree"),  # two classes on the untransformed image
        ("q", "models disagree"),  # one class, flip spread 6
        ("s", "most sensitive"),  # mean change 0.8
        ("t", "prediction flips"),  # 5 flips in both
    ]
    assert chosen[4]["reason"] == "random" and chosen[4]["image"] in {"r", "u"} and len(chosen) == 5
    assert "v" not in {c["image"] for c in chosen}  # only images every model measured
    assert chosen[0]["classes"] == 2 and chosen[2]["prob_change"] == pytest.approx(0.8)
    assert chosen[0]["models"] == {
        "A": {"predicted": "cat", "prob_change": 0.10, "flips": 1},
        "B": {"predicted": "dog", "prob_change": 0.10, "flips": 1},
    }


def test_every_model_gets_the_same_images_with_its_own_scores():
    chosen = choose_shared({"A": A, "B": B}, 2, 1, 1, 1, named=["u"], seed=4)
    a, b = for_model(chosen, "A"), for_model(chosen, "B")
    assert [c["image"] for c in a] == [c["image"] for c in b] == [c["image"] for c in chosen]
    assert a[0] == {"image": "u", "reason": "named", "prob_change": 0.01, "flips": 0}
    assert b[0] == {"image": "u", "reason": "named", "prob_change": 0.02, "flips": 0}


def test_only_images_the_models_answer_differently_qualify_and_empty_slots_go_to_random():
    same = scores({"x": ("cat", 0.2, 1), "y": ("cat", 0.1, 0), "z": ("dog", 0.3, 0)})
    other = same.assign(prob_change=[0.5, 0.1, 0.3])  # the same classes and flips; changes differ
    chosen = choose_shared({"A": same, "B": other}, disagree=2, sensitive=0, flipped=0, random=0, seed=1)
    assert [c["reason"] for c in chosen] == ["random", "random"]  # nobody disagrees: two random slots
    assert len({c["image"] for c in chosen}) == 2


def test_with_one_model_the_disagreement_has_no_slots():
    one = choose_shared({"A": A}, disagree=3, sensitive=1, flipped=1, random=1, seed=0)
    assert [c["reason"] for c in one] == ["most sensitive", "prediction flips", "random"]
    assert one[0]["image"] == "v" and one[1]["image"] == "q"  # A alone: v changes most; q flips 6 times


def test_a_named_image_one_model_did_not_measure_is_an_error():
    with pytest.raises(InputError, match="v not among the images every model measured"):
        choose_shared({"A": A, "B": B}, 0, 0, 0, 0, named=["v"])

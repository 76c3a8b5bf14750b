"""Exemplar choice from the measured table (sensitivity.exemplars) against hand-made tables."""

import numpy as np
import pandas as pd
import pytest

from convlens.errors import InputError
from convlens.sensitivity.exemplars import choose, image_scores


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
    with pytest.raises(InputError, match="config.report.exemplars.images: zzz not among the measured images"):
        choose(MEASURED, 1, 1, 1, named=["zzz"])

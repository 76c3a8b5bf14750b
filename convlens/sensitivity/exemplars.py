"""Which images the report draws: a few exemplars per model, chosen from the measured table.

Every image is measured; only exemplars get raw arrays, figures, sheets and PDF pages, so the
report's size does not grow with the study. The choice, in this order, each image taken once:

- ``named``: the images the user names (config ``report.exemplars.images``), in their order;
- ``most sensitive``: the largest mean probability change of the reference class over the
  transforms (the MAC of Zhang 2019), ties broken by more top-1 changes, then by id;
- ``prediction flips``: the most transforms that change the top-1 class (at least one), ties
  broken by the larger mean probability change, then by id;
- ``random``: a seeded sample of the rest (``numpy.random.default_rng(seed)``, in id order first,
  so the same images and seed always give the same sample), one more for each slot the two kinds
  above left empty (no image flips, say), so the number of exemplars, and the report's pages, do
  not depend on what the images do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from convlens.errors import InputError


def image_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Per image: mean probability change and number of top-1 changes over the non-identity
    transforms. ``table`` is the tidy metrics table; returns columns image, prob_change, flips."""
    out = table[(table["layer"] == "output") & (table["transform"] != "identity")]
    mac = out[out["metric"] == "prob_change"].groupby("image")["value"].mean()
    flips = out[out["metric"] == "top1_change"].groupby("image")["value"].sum()
    images = sorted(set(table["image"]))
    return pd.DataFrame(
        {
            "image": images,
            "prob_change": mac.reindex(images).to_numpy(dtype=float),
            "flips": flips.reindex(images).fillna(0).to_numpy(dtype=float).round().astype(int),
        }
    )


def choose(
    table: pd.DataFrame, sensitive: int, flipped: int, random: int, named: list[str] | None = None, seed: int = 0
) -> list[dict]:
    """The exemplars: a list of {"image", "reason", "prob_change", "flips"} in the order above.

    Asking for more than there are gives what there is. A named image that was not measured is
    an InputError naming it.
    """
    scores = image_scores(table).set_index("image")
    chosen: list[dict] = []

    def take(ids, reason):
        for image in ids:
            if image not in {c["image"] for c in chosen}:
                row = scores.loc[image]
                chosen.append(
                    {
                        "image": image,
                        "reason": reason,
                        "prob_change": None if np.isnan(row["prob_change"]) else float(row["prob_change"]),
                        "flips": int(row["flips"]),
                    }
                )

    missing = [i for i in (named or []) if i not in scores.index]
    if missing:
        raise InputError(
            f"config.report.exemplars.images: {', '.join(missing)} not among the measured images "
            f"(ids look like {', '.join(list(scores.index[:3]))})"
        )
    take(named or [], "named")
    rest = scores.drop(index=[c["image"] for c in chosen]).reset_index()
    by_change = rest.assign(key=rest["prob_change"].fillna(-np.inf)).sort_values(
        ["key", "flips", "image"], ascending=[False, False, True]
    )
    take(list(by_change["image"][:sensitive]), "most sensitive")
    rest = scores.drop(index=[c["image"] for c in chosen]).reset_index()
    flipping = rest[rest["flips"] > 0]
    flipping = flipping.assign(key=flipping["prob_change"].fillna(-np.inf)).sort_values(
        ["flips", "key", "image"], ascending=[False, False, True]
    )
    take(list(flipping["image"][:flipped]), "prediction flips")
    rest = sorted(set(scores.index) - {c["image"] for c in chosen})
    # slots the other kinds left empty (no image flips, say) are filled at random: the report keeps its size
    random += sensitive + flipped - sum(c["reason"] in ("most sensitive", "prediction flips") for c in chosen)
    if random and rest:
        picked = np.random.default_rng(seed).choice(len(rest), size=min(random, len(rest)), replace=False)
        take([rest[i] for i in sorted(picked)], "random")
    return chosen

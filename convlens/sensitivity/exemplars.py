"""Which images the report draws: a few exemplars per study, chosen once across the models.

Every image is measured; only exemplars get raw arrays, figures, sheets and PDF pages, so the
report's size does not grow with the study. Every model draws the same exemplars, so the report can
put the models side by side. The choice, from each model's scores (``image_scores``: the untransformed
image's top-1 class, the mean probability change and the number of top-1 changes), over the images
every model could read, in this order, each image taken once:

- ``named``: the images the user names (config ``report.exemplars.images``), in their order;
- ``models disagree``: where the models disagree most (``disagreement``): first the number of
  different top-1 classes the models give the untransformed image, then the spread (largest minus
  smallest) over the models of the number of transforms that change the top-1 class, then the
  spread of the mean probability change, then by id. Only images on which the models differ in some
  top-1 answer (more than one class, or a flip spread above 0) qualify. With one model there is
  nothing to disagree on: the kind has no slots and the choice is the one-model choice below;
- ``most sensitive``: the largest mean probability change of the reference class over the
  transforms (the MAC of Zhang 2019), averaged over the models, ties broken by more top-1 changes,
  then by id;
- ``prediction flips``: the most transforms that change the top-1 class (averaged over the
  models; at least one change), ties broken by the larger mean probability change, then by id;
- ``random``: a seeded sample of the rest (``numpy.random.default_rng(seed)``, in id order first,
  so the same images and seed always give the same sample), one more for each slot the kinds
  above left empty (no image flips, say), so the number of exemplars, and the report's pages, do
  not depend on what the images do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from convlens.errors import InputError

REASONS = ("named", "models disagree", "most sensitive", "prediction flips", "random")


def image_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Per image: mean probability change and number of top-1 changes over the non-identity
    transforms. ``table`` is tidy metric rows (any subset holding the output rows); returns columns
    image, prob_change, flips."""
    out = table[(table["layer"] == "output") & (table["transform"] != "identity")]
    mac = out[out["metric"] == "prob_change"].groupby("image", observed=True)["value"].mean()
    flips = out[out["metric"] == "top1_change"].groupby("image", observed=True)["value"].sum()
    images = sorted(set(table["image"]))
    return pd.DataFrame(
        {
            "image": images,
            "prob_change": mac.reindex(images).to_numpy(dtype=float),
            "flips": flips.reindex(images).fillna(0).to_numpy(dtype=float).round().astype(int),
        }
    )


def disagreement(scores: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per image measured by every model: ``classes`` (how many different top-1 classes the models
    give the untransformed image), ``flip_spread`` and ``change_spread`` (largest minus smallest over
    the models of the flips and of the mean probability change), ``prob_change`` and ``flips`` (their
    means over the models). ``scores``: per model, image_scores with a ``predicted`` column (the
    untransformed image's top-1 class name). Indexed by image, sorted."""
    models = list(scores)
    missing = [m for m, s in scores.items() if "predicted" not in s.columns]
    if missing:
        raise ValueError(f"scores of {', '.join(missing)} lack the predicted column")
    by_model = {m: s.set_index("image") for m, s in scores.items()}
    common = sorted(set.intersection(*(set(s.index) for s in by_model.values()))) if models else []
    predicted = pd.DataFrame({m: by_model[m].loc[common, "predicted"].astype(str) for m in models}, index=common)
    change = pd.DataFrame({m: by_model[m].loc[common, "prob_change"].astype(float) for m in models}, index=common)
    flips = pd.DataFrame({m: by_model[m].loc[common, "flips"].astype(float) for m in models}, index=common)
    return pd.DataFrame(
        {
            "classes": predicted.nunique(axis=1).astype(int),
            "flip_spread": (flips.max(axis=1) - flips.min(axis=1)).astype(float),
            "change_spread": (change.max(axis=1) - change.min(axis=1)).fillna(0.0),
            "prob_change": change.mean(axis=1),
            "flips": flips.mean(axis=1),
        },
        index=pd.Index(common, name="image"),
    )


def choose_shared(
    scores: dict[str, pd.DataFrame],
    disagree: int,
    sensitive: int,
    flipped: int,
    random: int,
    named: list[str] | None = None,
    seed: int = 0,
) -> list[dict]:
    """The study's exemplars: a list of {"image", "reason", "prob_change", "flips", "classes",
    "models": {model: {"predicted", "prob_change", "flips"}}} in the order of the module docstring
    (prob_change and flips: the means over the models).

    ``scores``: per model (in the report's order), image_scores with a ``predicted`` column, over the
    images that model could read. Asking for more than there are gives what there is. A named image
    that not every model measured is an InputError naming it.
    """
    if not scores:
        raise InputError("no model to choose exemplars for (config models is empty)")
    table = disagreement(scores)
    by_model = {m: s.set_index("image") for m, s in scores.items()}
    missing = [i for i in (named or []) if i not in table.index]
    if missing:
        raise InputError(
            f"config.report.exemplars.images: {', '.join(missing)} not among the images every model measured "
            f"(ids look like {', '.join(list(table.index[:3]))})"
        )
    chosen: list[dict] = []

    def take(ids, reason):
        for image in ids:
            if image not in {c["image"] for c in chosen}:
                chosen.append(_entry(image, reason, table.loc[image], by_model))

    def rest() -> pd.DataFrame:
        return table.drop(index=[c["image"] for c in chosen]).reset_index()

    take(named or [], "named")
    disagree = disagree if len(scores) > 1 else 0  # one model: nothing to disagree on
    left = rest()
    split = left[(left["classes"] > 1) | (left["flip_spread"] > 0)]
    split = split.sort_values(
        ["classes", "flip_spread", "change_spread", "image"], ascending=[False, False, False, True]
    )
    take(list(split["image"][:disagree]), "models disagree")
    left = rest()
    by_change = left.assign(key=left["prob_change"].fillna(-np.inf)).sort_values(
        ["key", "flips", "image"], ascending=[False, False, True]
    )
    take(list(by_change["image"][:sensitive]), "most sensitive")
    left = rest()
    flipping = left[left["flips"] > 0]
    flipping = flipping.assign(key=flipping["prob_change"].fillna(-np.inf)).sort_values(
        ["flips", "key", "image"], ascending=[False, False, True]
    )
    take(list(flipping["image"][:flipped]), "prediction flips")
    remaining = sorted(set(table.index) - {c["image"] for c in chosen})
    # slots the other kinds left empty (no image flips, say) are filled at random: the report keeps its size
    random += disagree + sensitive + flipped - sum(c["reason"] in REASONS[1:4] for c in chosen)
    if random and remaining:
        picked = np.random.default_rng(seed).choice(len(remaining), size=min(random, len(remaining)), replace=False)
        take([remaining[i] for i in sorted(picked)], "random")
    return chosen


def _entry(image: str, reason: str, row: pd.Series, by_model: dict[str, pd.DataFrame]) -> dict:
    def number(value):
        return None if value is None or np.isnan(value) else float(value)

    return {
        "image": image,
        "reason": reason,
        "prob_change": number(row["prob_change"]),
        "flips": float(row["flips"]),
        "classes": int(row["classes"]),
        "models": {
            m: {
                "predicted": str(s.loc[image, "predicted"]),
                "prob_change": number(float(s.loc[image, "prob_change"])),
                "flips": int(s.loc[image, "flips"]),
            }
            for m, s in by_model.items()
        },
    }


def for_model(chosen: list[dict], model: str) -> list[dict]:
    """The study's exemplars as one model's draw job records them: {"image", "reason", "prob_change",
    "flips"} with that model's own mean probability change and number of top-1 changes."""
    return [
        {
            "image": c["image"],
            "reason": c["reason"],
            "prob_change": c["models"][model]["prob_change"],
            "flips": c["models"][model]["flips"],
        }
        for c in chosen
    ]

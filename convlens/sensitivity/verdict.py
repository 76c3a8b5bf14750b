"""The verdict: the study's answer on one page. A key table (per model and transform group: accuracy
when the images have labels, flip rate and the equivariance measures, each with its interval) and at
most five sentences, generated from the comparison's per-group tables, that say which model is more
robust to what, by how much and where in the network, each effect beside its natural scale (clean
accuracy; for the pooled-feature cosine, the cosine between different images). Pure pandas.

A difference is called "more robust" only where the comparison supports it (``comparison.supported``:
the interval excludes 0 and the adjusted p-value is below 1 − level); otherwise the sentence says the
difference is not supported. With one model the sentences describe that model's own summary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from convlens.sensitivity.comparison import supported

ACCURACY_METRICS = ("accuracy", "correct")  # the comparison's name (labels) first, then the tidy table's
MAX_SENTENCES = 5


@dataclass(frozen=True)
class Measure:
    """One row of the key figure: ``metric`` at the output or at the deepest common layer."""

    key: str
    label: str
    metric: str
    deep: bool  # at the deepest layer every model has (else at the output)
    higher_better: bool


MEASURES = (
    Measure("accuracy", "accuracy", "accuracy", False, True),
    Measure("flip_rate", "flip rate", "top1_change", False, False),
    Measure("equivariance_error", "equivariance error", "equivariance_error", True, False),
    Measure("equivariance_error_perm", "equivariance error, channels permuted", "equivariance_error_perm", True, False),
    Measure("equivariance_error_linear", "equivariance error, linear map", "equivariance_error_linear", True, False),
    Measure("lie_derivative", "Lie derivative (logits)", "lie_derivative", False, False),
)
CKA = Measure("cka", "CKA invariance (worst transform)", "cka", True, True)
KEY_COLUMNS = ["model", "group", "measure", "label", "layer", "mean", "ci_low", "ci_high", "n"]


def accuracy_metric(table: pd.DataFrame) -> str | None:
    """The metric name accuracy has in ``table`` (``accuracy`` or the tidy table's ``correct``), or None
    (the images have no labels)."""
    present = set(table["metric"]) if len(table) else set()
    return next((m for m in ACCURACY_METRICS if m in present), None)


def key_rows(group_summary: pd.DataFrame, deepest: str | None, models: list[str]) -> pd.DataFrame:
    """The key figure's rows from the comparison's per-group summary (summary_groups.csv: model, group,
    layer, metric, mean, ci_low, ci_high, n): per model (in ``models``' order) and measure (MEASURES;
    accuracy only when measured, the equivariance measures at ``deepest``)."""
    accuracy = accuracy_metric(group_summary)
    parts = []
    for m in MEASURES:
        metric = accuracy if m.key == "accuracy" else m.metric
        layer = deepest if m.deep else "output"
        if metric is None or layer is None:
            continue
        rows = group_summary[(group_summary["metric"] == metric) & (group_summary["layer"] == layer)]
        parts.append(rows.assign(measure=m.key, label=m.label).dropna(subset=["mean"]))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=KEY_COLUMNS)
    table = table[table["model"].isin(models)]
    order = {m: i for i, m in enumerate(models)}
    return table.sort_values("model", key=lambda s: s.map(order), kind="stable")[KEY_COLUMNS].reset_index(drop=True)


def cka_rows(cka: dict[str, pd.DataFrame], group_of: dict[str, str | None]) -> pd.DataFrame:
    """Per model and group, the CKA invariance (cka.csv: layer, transform, cka, ci_low, ci_high) at the
    model's deepest layer for the group's transform with the lowest CKA, with that transform's own
    interval (bootstrap intervals of different transforms cannot be pooled)."""
    rows = []
    for model, table in cka.items():
        table = table.dropna(subset=["cka"])
        if not len(table):
            continue
        deepest = table["layer"].iloc[-1]
        at = table[table["layer"] == deepest].assign(group=lambda f: f["transform"].map(group_of))
        for group, sub in at.dropna(subset=["group"]).groupby("group", sort=False):
            worst = sub.loc[sub["cka"].idxmin()]
            rows.append(
                {
                    "model": model,
                    "group": group,
                    "measure": CKA.key,
                    "label": CKA.label,
                    "layer": deepest,
                    "mean": worst["cka"],
                    "ci_low": worst["ci_low"],
                    "ci_high": worst["ci_high"],
                    "n": worst.get("images", math.nan),
                }
            )
    return pd.DataFrame(rows, columns=KEY_COLUMNS)


# ---------------------------------------------------------------------------------------------
# the sentences


def fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}g}"


def points(value: float) -> str:
    """A share as percentage points, signed: 0.125 -> "+12.5 points"."""
    return f"{100 * value:+.1f} points"


def interval(row, level: float, scale: float = 1.0, unit: str = "") -> str:
    return f"{100 * level:g} % CI {fmt(scale * row['ci_low'])} to {fmt(scale * row['ci_high'])}{unit}"


def robust_side(row, higher_better: bool, level: float) -> int:
    """+1: the model is more robust than the reference on this row; -1: less; 0: not supported."""
    if not supported(row, level):
        return 0
    better = row["difference"] > 0 if higher_better else row["difference"] < 0
    return 1 if better else -1


def rows_of(diffs: pd.DataFrame, model: str, metric: str, layer: str) -> pd.DataFrame:
    return diffs[(diffs["model"] == model) & (diffs["metric"] == metric) & (diffs["layer"] == layer)]


def word_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def overall_sentence(diffs: pd.DataFrame, model: str, reference: str, level: float) -> str | None:
    """Which model is more robust to which group, judged on how often the prediction flips: each model
    against its own prediction on the untransformed image, so a model is not called more robust for a
    higher clean accuracy alone (accuracy under the transforms is said beside clean accuracy in
    ``accuracy_sentence``)."""
    rows = rows_of(diffs, model, "top1_change", "output")
    if not len(rows):
        return None
    sides = {r["group"]: robust_side(r, False, level) for _, r in rows.iterrows()}
    more = [g for g, s in sides.items() if s > 0]
    less = [g for g, s in sides.items() if s < 0]
    none = [g for g, s in sides.items() if s == 0]
    basis = "how often the prediction flips"

    def most(groups: list[str]) -> str:  # by how much: the largest of the supported differences
        r = rows.set_index("group").loc[groups].assign(size=lambda f: f["difference"].abs()).sort_values("size")
        top = r.iloc[-1]
        effect = f"flip rate {points(top['difference'])}, {interval(top, level, 100, ' points')}"
        return f" (most under {r.index[-1]}: {effect})"

    parts = []
    if more:
        parts.append(f"{model} is more robust than {reference} to {word_list(more)}{most(more)}")
    if less:
        parts.append(f"{reference} is more robust than {model} to {word_list(less)}{most(less)}")
    if none:
        parts.append(f"a difference under {word_list(none)} is not supported")
    return f"Judged by {basis}: " + "; ".join(parts) + "."


def accuracy_sentence(diffs: pd.DataFrame, model: str, reference: str, level: float, clean: dict) -> str | None:
    """Accuracy under each group with a supported difference, in points, beside the clean accuracies."""
    metric = accuracy_metric(diffs)
    if metric is None:
        return None
    rows = rows_of(diffs, model, metric, "output")
    if not len(rows):
        return None
    scale = f"clean accuracy {fmt(clean.get(model))} for {model} and {fmt(clean.get(reference))} for {reference}"
    claims = [
        f"under {r['group']} {fmt(r['mean_model'])} against {fmt(r['mean_reference'])} "
        f"({points(r['difference'])}, {interval(r, level, 100, ' points')})"
        for _, r in rows.iterrows()
        if supported(r, level)
    ]
    if not claims:
        return f"Accuracy under the transforms: no difference between {model} and {reference} is supported ({scale})."
    return f"Accuracy of {model} against {reference}: " + "; ".join(claims) + f" ({scale})."


def flip_sentence(diffs: pd.DataFrame, model: str, reference: str, level: float) -> str | None:
    """The flip rate per group: supported differences with their intervals, the rest named unsupported."""
    rows = rows_of(diffs, model, "top1_change", "output")
    if not len(rows):
        return None
    claims, unsupported = [], []
    for _, r in rows.iterrows():
        if not supported(r, level):
            unsupported.append(r["group"])
            continue
        how = "less" if r["difference"] < 0 else "more"
        claims.append(
            f"{how} often under {r['group']} ({fmt(r['mean_model'])} against {fmt(r['mean_reference'])} of the images, "
            f"{points(r['difference'])}, {interval(r, level, 100, ' points')})"
        )
    text = f"{model}'s prediction flips, against {reference}'s, " + "; ".join(claims) if claims else ""
    if unsupported:
        text += "; under " if claims else f"The flip rate of {model} against {reference}: under "
        text += word_list(unsupported) + " the difference is not supported"
    return text + "."


def where_sentence(diffs: pd.DataFrame, model: str, reference: str, level: float) -> str | None:
    """Where in the network: the layer and group whose equivariance error differs most (relative to
    the reference's error there) among the supported differences."""
    rows = diffs[(diffs["model"] == model) & (diffs["metric"] == "equivariance_error") & (diffs["layer"] != "output")]
    if not len(rows):
        return None
    claimed = rows[[supported(r, level) for _, r in rows.iterrows()]]
    if not len(claimed):
        return f"Inside the network, no layer's equivariance error differs supportedly between {model} and {reference}."
    share = (claimed["difference"] / claimed["mean_reference"].where(claimed["mean_reference"] != 0)).abs()
    top = claimed.loc[share.fillna(0).idxmax()]
    how = "lower" if top["difference"] < 0 else "higher"
    return (
        f"Where in the network: the largest supported difference in equivariance error is at {top['layer']} under "
        f"{top['group']}, {how} for {model} ({fmt(top['mean_model'])} against {fmt(top['mean_reference'])}, "
        f"{top['difference']:+.3g}, {interval(top, level)}; {len(claimed)} of {len(rows)} layer × group differences "
        f"supported)."
    )


def cosine_sentence(
    diffs: pd.DataFrame, model: str, reference: str, level: float, deepest: str | None, baselines: dict | None
) -> str | None:
    """The pooled-feature cosine at the deepest common layer, its largest supported difference set
    against each model's cosine between different images (the level at which its features say nothing;
    ``baselines``: model -> that cosine at ``deepest``)."""
    baselines = baselines or {}
    known = {m: b for m, b in baselines.items() if b is not None and b == b}
    if deepest is None or model not in known or reference not in known:
        return None
    rows = rows_of(diffs, model, "invariance_cosine", deepest)
    claimed = rows[[supported(r, level) for _, r in rows.iterrows()]] if len(rows) else rows
    if not len(claimed):
        return None
    top = claimed.loc[claimed["difference"].abs().idxmax()]
    return (
        f"At {deepest} under {top['group']} the pooled features of {model} keep a cosine of "
        f"{fmt(top['mean_model'])} against {fmt(top['mean_reference'])} for {reference} ({top['difference']:+.3g}, "
        f"{interval(top, level)}), where different images already score {fmt(known[model])} for {model} and "
        f"{fmt(known[reference])} for {reference}."
    )


def compared_sentences(
    diffs: pd.DataFrame,
    reference: str,
    level: float,
    clean: dict,
    deepest: str | None = None,
    baselines: dict | None = None,
) -> list[str]:
    """At most MAX_SENTENCES sentences over every compared model (``diffs``: differences_groups.csv),
    in order: the overall judgement (on the flip rate, with its largest effect), accuracy beside clean
    accuracy, where in the network, the cosine, the flip rate per group. With several compared models,
    each model's judgement and where in the network come first (which model, to what, by how much,
    where), then the rest while room is left."""
    out = []
    models = list(dict.fromkeys(diffs["model"])) if len(diffs) else []
    kinds = {
        "overall": lambda m: overall_sentence(diffs, m, reference, level),
        "accuracy": lambda m: accuracy_sentence(diffs, m, reference, level, clean),
        "flips": lambda m: flip_sentence(diffs, m, reference, level),
        "where": lambda m: where_sentence(diffs, m, reference, level),
        "cosine": lambda m: cosine_sentence(diffs, m, reference, level, deepest, baselines),
    }
    # the judgement is the flip rate's: its own sentence comes last, where room is left
    order = ["overall", "where", "accuracy", "cosine", "flips"]
    if len(models) == 1:
        order = ["overall", "accuracy", "where", "cosine", "flips"]
    for kind in order:
        out += [s for s in (kinds[kind](m) for m in models) if s]
    return out[:MAX_SENTENCES]


def single_sentences(
    summary: pd.DataFrame, model: str, level: float, clean: float | None, deepest: str | None, baseline: float | None
) -> list[str]:
    """One model (nothing to compare with): from its per-group summary, the groups it is least and
    most robust to, with intervals and the scales they read against."""
    rows = summary[summary["model"] == model]
    out = [f"One model, {model}: nothing to compare with, so these are its own means with {100 * level:g} % intervals."]

    def extremes(metric: str, layer: str, higher_better: bool, what: str, scale: str = "") -> None:
        sub = rows[(rows["metric"] == metric) & (rows["layer"] == layer)].dropna(subset=["mean"])
        if not len(sub):
            return
        worst = sub.loc[sub["mean"].idxmin() if higher_better else sub["mean"].idxmax()]
        best = sub.loc[sub["mean"].idxmax() if higher_better else sub["mean"].idxmin()]
        text = f"{what} is worst under {worst['group']} ({fmt(worst['mean'])}, {interval(worst, level)})"
        if best["group"] != worst["group"]:
            text += f" and best under {best['group']} ({fmt(best['mean'])}, {interval(best, level)})"
        out.append(text + scale + ".")

    accuracy = accuracy_metric(rows)
    if accuracy:
        extremes(accuracy, "output", True, "Accuracy", f", against a clean accuracy of {fmt(clean)}")
    extremes("top1_change", "output", False, "The flip rate")
    if deepest:
        extremes("equivariance_error", deepest, False, f"The equivariance error at {deepest}")
        if baseline is not None and baseline == baseline:
            extremes(
                "invariance_cosine",
                deepest,
                True,
                f"The pooled-feature cosine at {deepest}",
                f", where different images score {fmt(baseline)}",
            )
    return out[:MAX_SENTENCES]

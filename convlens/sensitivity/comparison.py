"""Models compared on the same images: every model's means with bootstrap intervals, and each model's
paired differences from a reference model, with intervals, a paired test and adjusted p-values.
Pure pandas/numpy (the statistics are ``convlens.stats``).

The unit of resampling is the image: each model's tidy table (``image, transform, param, layer,
metric, value``) becomes a matrix of images × groups (a group is one transform × param × layer ×
metric, or one transform group × layer × metric), images matched by id across the models. The
bootstrap resamples the images once per replicate and the same resamples serve every group and every
model (the same seed regenerates them), so a model's difference from the reference is the difference
of their replicates wherever both measured the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from convlens import stats
from convlens.sensitivity.lie import MEASURE_GROUPS, measure_group
from convlens.transform_groups import CLEAN, Group, user_groups_of
from convlens.transform_kinds import REGISTRY
from convlens.transforms import Transform

KEYS = ["transform", "param", "layer", "metric"]
GROUP_KEYS = ["group", "layer", "metric"]
SUMMARY_STATS = ["mean", "ci_low", "ci_high", "n"]
DIFF_STATS = ["mean_model", "mean_reference", "difference", "ci_low", "ci_high", "n", "statistic", "p_value", "p_adj"]


@dataclass
class Wide:
    """Every model's values as one matrix per model: rows are ``images`` (the union over the
    models, sorted), columns the rows of ``keys``; NaN where a model has no value."""

    images: list[str]
    keys: pd.DataFrame
    values: dict[str, np.ndarray]  # model -> (n_images, n_groups)


def _key_table(table: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The distinct combinations of ``columns`` (in order of first appearance) and each row's index
    into them, from the columns' category codes (fast on millions of rows)."""
    codes = np.zeros(len(table), dtype=np.int64)
    for column in columns:
        cat = table[column].astype("category")
        codes = codes * (len(cat.cat.categories) + 1) + cat.cat.codes.to_numpy().astype(np.int64) + 1
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # first appearance, not code order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    keys = table.iloc[first[order]][columns].astype(str).reset_index(drop=True)
    return keys, rank[inverse.ravel()]


def widen_one(table: pd.DataFrame, columns: list[str] = KEYS) -> Wide:
    """One model's tidy table as an images × groups matrix (images sorted, groups in order of first
    appearance); the model is named ``""`` until ``combine``."""
    keys, codes = _key_table(table, columns)
    image = table["image"].astype("category")
    names = image.cat.categories.astype(str)
    images = sorted(names)
    row = pd.Index(images).get_indexer(names)[image.cat.codes.to_numpy()]
    matrix = np.full((len(images), len(keys)), np.nan)
    matrix[row, codes] = table["value"].to_numpy(dtype=np.float64)
    return Wide(images, keys, {"": matrix})


def combine(parts: dict[str, Wide]) -> Wide:
    """The models' matrices (``widen_one``) on the union of their images (sorted) and groups (the
    first model's first): images matched by id, NaN where a model lacks an image or a group."""
    images = sorted(set().union(*(p.images for p in parts.values())))
    keys = (
        pd.concat([p.keys for p in parts.values()], ignore_index=True).drop_duplicates(ignore_index=True)
        if parts
        else pd.DataFrame(columns=KEYS)
    )
    key_index, image_index = pd.MultiIndex.from_frame(keys), pd.Index(images)
    values = {}
    for model, part in parts.items():
        matrix = np.full((len(images), len(keys)), np.nan)
        rows = image_index.get_indexer(part.images)
        matrix[np.ix_(rows, key_index.get_indexer(pd.MultiIndex.from_frame(part.keys)))] = part.values[""]
        values[model] = matrix
    return Wide(images, keys, values)


def widen(tables: dict[str, pd.DataFrame], columns: list[str] = KEYS) -> Wide:
    """Images × groups matrices of the models' tidy tables (``widen_one`` each, then ``combine``)."""
    return combine({model: widen_one(table, columns) for model, table in tables.items()})


def transform_group(t: Transform) -> str | None:
    """The group a transform is pooled into for the per-kind comparison, as its kind says
    (``Kind.group_of``): its kind, with shifts split into whole even, whole odd and sub-pixel offsets (a
    stride-2 layer is exactly equivariant only to shifts by a multiple of 2; Zhang 2019). None for the
    identity. The Lie derivative's and consistency's rows, whose ``transform`` is a generator or a
    curve, take their groups from ``sensitivity.lie.MEASURE_GROUPS`` instead (``group_transforms``)."""
    return REGISTRY[t.kind].group_of(t.params)


def transform_groups(t: Transform, groups: list[Group] = ()) -> list[str]:
    """Every group a transform counts in: its built-in group (``transform_group``) and the user's groups
    that hold it (config ``comparison.groups``, ``convlens.transform_groups``)."""
    built = transform_group(t)
    return ([built] if built else []) + user_groups_of(t, groups)


def key_groups(transform: str, metric: str, group_of: dict[str, list[str]]) -> list[str]:
    """The groups of one (transform, metric) column: the Lie derivative's and consistency's rows by their
    own groups (``sensitivity.lie``), the identity's accuracy in ``clean``, others by their transform."""
    if metric in MEASURE_GROUPS:
        group = measure_group(transform, metric)
        return [group] if group else []
    if transform == "identity":
        return [CLEAN] if metric == "correct" else []
    return group_of.get(transform, [])


def group_transforms(wide: Wide, transforms: list[Transform], groups: list[Group] = ()) -> Wide:
    """Per image, the mean over the transforms of each group (``transform_groups``: a transform in two
    groups counts in both) of every layer × metric: the same matrices with columns (group, layer,
    metric). The identity's accuracy (metric ``correct``) is the group ``clean``, first: clean accuracy,
    the scale accuracy under a transform is read against. NaN values are left out of a mean (so where one
    model's value is undefined for an image and transform, say a constant heatmap, its mean for that
    image covers fewer transforms than the other model's)."""
    group_of = {t.name: transform_groups(t, groups) for t in transforms}
    member_of = [key_groups(t, m, group_of) for t, m in zip(wide.keys["transform"], wide.keys["metric"], strict=True)]
    pairs = [(k, g) for k, names in enumerate(member_of) for g in names]
    rows = np.array([k for k, _ in pairs], dtype=np.int64)
    keys = wide.keys.iloc[rows][["layer", "metric"]].assign(group=[g for _, g in pairs]).reset_index(drop=True)
    grouped = keys[GROUP_KEYS].drop_duplicates(ignore_index=True)
    grouped = grouped.iloc[np.argsort(grouped["group"].to_numpy() != CLEAN, kind="stable")].reset_index(drop=True)
    target = pd.MultiIndex.from_frame(grouped).get_indexer(pd.MultiIndex.from_frame(keys[GROUP_KEYS]))
    member = np.zeros((len(wide.keys), len(grouped)))
    member[rows, target] = 1.0
    values = {}
    for model, matrix in wide.values.items():
        finite = np.isfinite(matrix)
        with np.errstate(invalid="ignore", divide="ignore"):
            counts = finite.astype(np.float64) @ member
            values[model] = np.where(counts > 0, np.where(finite, matrix, 0.0) @ member / np.maximum(counts, 1), np.nan)
    return Wide(wide.images, grouped, values)


def compare(
    wide: Wide,
    reference: str | None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    adjust: str = "bh",
    test: str = "t",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The summary (per model and group: mean, percentile bootstrap interval, n images) and the
    differences from ``reference`` (per other model and group, over the images both measured: the
    two means, their difference, its bootstrap interval, the paired ``test``'s statistic and
    p-value, ``t`` or ``wilcoxon``, and the p-value adjusted over every row of the table by
    ``adjust``, ``holm`` or ``bh``). No reference, or a single model:
    the differences are empty."""
    columns = list(wide.keys.columns)
    summaries, boots = [], {}
    for model, matrix in wide.values.items():
        mean, count = stats.column_means(matrix)
        boots[model] = stats.bootstrap_means(matrix, n_boot, seed)
        lo, hi = stats.percentile_interval(boots[model], level)
        frame = wide.keys.assign(mean=mean, ci_low=lo, ci_high=hi, n=count)
        summaries.append(frame[count > 0].assign(model=model))
    summary = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame()
    summary = summary.reindex(columns=["model"] + columns + SUMMARY_STATS)
    differences = []
    for model, matrix in wide.values.items():
        if reference is None or model == reference:
            continue
        base = wide.values[reference]
        diff = matrix - base
        paired = np.isfinite(diff)
        # wherever each model's values are exactly the paired ones, the difference's replicates are the
        # difference of the two models' replicates (the same resamples); elsewhere they are redrawn
        same = (np.isfinite(matrix) == paired).all(axis=0) & (np.isfinite(base) == paired).all(axis=0)
        boot = boots[model] - boots[reference]
        if (~same).any():
            boot[:, ~same] = stats.bootstrap_means(diff[:, ~same], n_boot, seed)
        lo, hi = stats.percentile_interval(boot, level)
        mean_diff, count = stats.column_means(diff)
        tested = stats.paired_test(diff, test)
        frame = wide.keys.assign(
            mean_model=stats.column_means(np.where(paired, matrix, np.nan))[0],
            mean_reference=stats.column_means(np.where(paired, base, np.nan))[0],
            difference=mean_diff,
            ci_low=lo,
            ci_high=hi,
            n=count,
            statistic=tested["statistic"],
            p_value=tested["p"],
        )
        differences.append(frame[count > 0].assign(model=model, reference=reference))
    diffs = pd.concat(differences, ignore_index=True) if differences else pd.DataFrame()
    diffs = diffs.reindex(columns=["model", "reference"] + columns + DIFF_STATS)
    diffs["p_adj"] = stats.ADJUSTMENTS[adjust](diffs["p_value"].to_numpy(dtype=np.float64))
    return summary, diffs


def supported(row, level: float) -> bool:
    """A difference the numbers support: its interval excludes 0 and its adjusted p-value is below
    1 − level."""
    return bool(row["n"] >= 2 and (row["ci_low"] > 0 or row["ci_high"] < 0) and row["p_adj"] < 1 - level)


def layer_order(orders: list[list[str]]) -> list[str]:
    """One order of every model's layers: the first model's, each other layer placed after the layer
    that precedes it in its own model (models that differ by a few layers line up)."""
    merged: list[str] = []
    for order in orders:
        previous = None
        for layer in order:
            if layer not in merged:
                merged.insert(merged.index(previous) + 1 if previous in merged else len(merged), layer)
            previous = layer
    return merged


def common_layers(orders: list[list[str]]) -> list[str]:
    """The layers every model has, in the first model's order."""
    return [la for la in orders[0] if all(la in o for o in orders[1:])] if orders else []


def first_common(orders: list[list[str]]) -> str | None:
    """The shallowest layer that every model has."""
    return next(iter(common_layers(orders)), None)


def deepest_common(orders: list[list[str]]) -> str | None:
    """The deepest layer that every model has."""
    return next(reversed(common_layers(orders)), None)


# ---------------------------------------------------------------------------------------------
# the sentences and the key table that read the per-group differences

METRIC_WORDS = {
    "top1_change": "flip rate",
    "prob_change": "MAC (probability change)",
    "kl_divergence": "KL divergence",
    "correct": "accuracy",
    "equivariance_error": "equivariance error",
    "invariance_cosine": "pooled-feature cosine",
    "heatmap_pearson": "heatmap agreement (Pearson)",
    "lie_derivative": "Lie derivative",
    "consistency": "consistency",
}
SMALL_N = 30  # fewer images than this: the findings say the intervals are wide


def key_metrics(deepest: str | None) -> list[tuple[str, str]]:
    """(layer, metric) of the key table: the prediction's accuracy (where images have labels; clean
    accuracy in the group ``clean``), flip rate and MAC (and, in their own groups, the consistency and
    the logits' Lie derivative), and the equivariance error, pooled-feature cosine and relative Lie
    derivative of the deepest layer all models share."""
    out = [("output", m) for m in ("correct", "top1_change", "prob_change", "consistency", "lie_derivative")]
    deep = [(deepest, "equivariance_error"), (deepest, "invariance_cosine"), (deepest, "lie_derivative")]
    return out + (deep if deepest else [])


def key_table(group_diffs: pd.DataFrame, deepest: str | None, level: float) -> pd.DataFrame:
    """The rows of the per-group differences the report tabulates, with ``supported`` (True where
    the interval excludes 0 and the adjusted p-value is below 1 − level)."""
    wanted = pd.DataFrame(key_metrics(deepest), columns=["layer", "metric"]).assign(rank=lambda f: range(len(f)))
    rows = group_diffs.reset_index().merge(wanted, on=["layer", "metric"])
    first = rows.groupby(["model", "group"], sort=False)["index"].transform("min")  # the table's order of groups
    rows = rows.assign(first=first).sort_values(["first", "rank"]).drop(columns=["index", "first", "rank"])
    rows["supported"] = [supported(r, level) for _, r in rows.iterrows()]
    return rows.reset_index(drop=True)


def fmt_p(p: float) -> str:
    return "p_adj < 0.001" if p < 0.001 else f"p_adj = {p:.3f}" if p < 0.1 else f"p_adj = {p:.2f}"


def describe(row, level: float, what: str) -> str:
    """One clause: a supported difference with its interval and adjusted p-value, or why none is
    claimed."""
    pct = f"{100 * level:g} % CI"
    d, lo, hi = row["difference"], row["ci_low"], row["ci_high"]
    if supported(row, level):
        if d < 0:
            return f"{what} lower by {-d:.3g} ({pct} {-hi:.3g} to {-lo:.3g}, {fmt_p(row['p_adj'])})"
        return f"{what} higher by {d:.3g} ({pct} {lo:.3g} to {hi:.3g}, {fmt_p(row['p_adj'])})"
    if lo <= 0 <= hi:
        return f"{what}: no detectable difference ({d:+.3g}, {pct} {lo:.3g} to {hi:.3g} spans 0)"
    return (
        f"{what}: no detectable difference after adjustment ({d:+.3g}, {pct} {lo:.3g} to {hi:.3g}, "
        f"{fmt_p(row['p_adj'])})"
    )


def relative(row) -> float:
    """The difference as a share of the reference's mean (NaN when the reference is 0)."""
    return row["difference"] / row["mean_reference"] if row["mean_reference"] else float("nan")


def prediction_before_layers(rows: pd.DataFrame, first: str | None, level: float) -> str | None:
    """Which moved more, in relative terms: the prediction's invariance (MAC) or the first layer's
    equivariance error; claimed only when the MAC difference is supported and its relative change is
    the larger (the order Zhang 2019 and Azulay & Weiss 2019 describe for augmentation)."""
    mac = rows[(rows["layer"] == "output") & (rows["metric"] == "prob_change")]
    early = rows[(rows["layer"] == first) & (rows["metric"] == "equivariance_error")]
    if not len(mac) or not len(early) or not supported(mac.iloc[0], level) or mac.iloc[0]["difference"] >= 0:
        return None
    m, e = mac.iloc[0], early.iloc[0]
    if not abs(relative(m)) > abs(relative(e)):
        return None
    return (
        f"the prediction became more invariant before the first layer became more equivariant: MAC "
        f"{m['mean_reference']:.3g} → {m['mean_model']:.3g} ({100 * relative(m):+.0f} %), equivariance error at "
        f"{first} {e['mean_reference']:.3g} → {e['mean_model']:.3g} ({100 * relative(e):+.0f} %)"
    )


def findings(
    group_diffs: pd.DataFrame,
    deepest: str | None,
    level: float,
    n_boot: int,
    adjust: str,
    test: str = "t",
    first: str | None = None,
) -> list[str]:
    """Sentences that claim only what the intervals and adjusted p-values support: per compared model
    and transform group, the key metrics, and the layer whose equivariance error changes most where
    that is a supported difference at another layer than the deepest."""
    if not len(group_diffs):
        return []
    n = int(group_diffs["n"].max())
    method = {"bh": "Benjamini–Hochberg", "holm": "Holm"}[adjust]
    out = [
        f"Differences are model minus reference over the images both measured (paired by image, up to n = {n}), "
        f"with {100 * level:g} % percentile bootstrap intervals ({n_boot} resamples of the images) and "
        f"{stats.TEST_NAMES[test]} p-values adjusted by {method} over the "
        f"{int(group_diffs['p_value'].notna().sum())} comparisons of the per-group table; a difference is "
        f"claimed only where its interval excludes 0 and p_adj < "
        f"{1 - level:.2g}."
    ]
    if n < SMALL_N:
        out.append(
            f"Only {n} images: the intervals are wide and only large differences can be detected; "
            f"'no detectable difference' is not evidence of no difference."
        )
    for (model, reference), per_model in group_diffs.groupby(["model", "reference"], sort=False):
        clean = accuracy_row(per_model, CLEAN)
        for group, rows in per_model.groupby("group", sort=False):
            clauses = []
            for layer, metric in key_metrics(deepest):
                hit = rows[(rows["layer"] == layer) & (rows["metric"] == metric)]
                if len(hit):
                    where = "" if layer == "output" else f" at {layer}"
                    what = accuracy_words(hit.iloc[0], clean) if metric == "correct" else METRIC_WORDS[metric] + where
                    clauses.append(describe(hit.iloc[0], level, what))
            errors = rows[(rows["metric"] == "equivariance_error") & (rows["layer"] != deepest)]
            claimed = errors[[supported(r, level) for _, r in errors.iterrows()]]
            if len(claimed):
                top = claimed.loc[claimed["difference"].abs().idxmax()]
                clauses.append(
                    "largest supported change of the equivariance error: " + describe(top, level, f"at {top['layer']}")
                )
            order = prediction_before_layers(rows, first, level)
            if order:
                clauses.append(order)
            if clauses:
                under = "on the untransformed images" if group == CLEAN else f"under {group}"
                out.append(f"{model} vs {reference}, {under}: " + "; ".join(clauses) + ".")
    return out


def accuracy_row(rows: pd.DataFrame, group: str):
    """The accuracy row (metric ``correct``) of a group among one model's per-group differences, or None."""
    hit = rows[(rows["group"] == group) & (rows["metric"] == "correct") & (rows["layer"] == "output")]
    return hit.iloc[0] if len(hit) else None


def accuracy_words(row, clean) -> str:
    """Accuracy with both models' means beside their clean accuracy (the scale an accuracy under a
    transform is read against): ``accuracy 0.71 → 0.62 (clean 0.96 → 0.95)``."""
    text = f"accuracy {row['mean_reference']:.3g} → {row['mean_model']:.3g}"
    if clean is not None and row["group"] != CLEAN:
        text += f" (clean {clean['mean_reference']:.3g} → {clean['mean_model']:.3g})"
    return text

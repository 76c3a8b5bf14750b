"""Stage of rule comparison: every model of the run with intervals, and each against the reference."""

from __future__ import annotations

import json
from pathlib import Path

from convlens.sensitivity import comparison as cmp
from convlens.sensitivity.comparison_plots import plot_accuracy, plot_by_layer, plot_sweep
from convlens.sensitivity.layer_match import renamed as rename
from convlens.sensitivity.tables import load_metrics, records
from convlens.stages.cka import pair_models
from convlens.stages.files import replacing, write_json
from convlens.stages.measure import FLOAT_FORMAT
from convlens.stages.run import log
from convlens.stats import TEST_NAMES
from convlens.transform_groups import parse_groups
from convlens.transforms import NEUTRAL, Transform, build_transforms


def compare_models(
    metrics: dict[str, str],
    studies: dict[str, str],
    transform_specs: list[dict],
    options: dict,
    seed: int,
    out: dict,
    structures: dict[str, str] | None = None,
) -> None:
    """Read each model's tidy table (``metrics``: model -> metrics.csv) and study manifest (for its
    layer order), write the summary and differences tables per transform and per transform group,
    the plots and the manifest the report reads (``out``: summary, differences, group_summary,
    group_differences, manifest, figures).

    options: the validated ``comparison`` config (reference, n_boot, level, adjust, test, layers, groups). The
    reference comes first; with a single model the differences are empty and the manifest says why.
    structures: model -> layers.csv (rule cka); given, each model's layers take the names of their
    reference partners (``stages.cka.pair_models``: by structure, not by name alone) and the
    manifest lists the pairing warnings.
    """
    reference = options["reference"]
    models = [reference] + [m for m in metrics if m != reference]
    n_boot, level, adjust, test = options["n_boot"], options["level"], options["adjust"], options["test"]
    transforms = build_transforms(transform_specs)
    orders = [json.loads(Path(studies[m]).read_text())["layers"] for m in models]
    names, pairing = paired_names(models, orders, structures, options)
    orders = [[names[m].get(la, la) for la in order] for m, order in zip(models, orders, strict=True)]
    tables = {m: load_metrics([metrics[m]]) for m in models}
    wide = cmp.combine({m: cmp.widen_one(renamed(tables.pop(m), names[m])) for m in models})  # one table at once
    log.info(
        "comparison: %d models, %d images, %d groups; %d bootstrap resamples",
        len(models),
        len(wide.images),
        len(wide.keys),
        n_boot,
    )
    ref = reference if len(models) > 1 else None
    summary, differences = cmp.compare(wide, ref, n_boot, level, seed, adjust, test)
    user_groups = parse_groups(options.get("groups"))
    grouped = cmp.group_transforms(wide, transforms, user_groups)
    empty = [g.name for g in user_groups if not any(g.holds(t) for t in transforms)]
    if empty:
        log.warning("comparison.groups: no transform of the study in %s", ", ".join(empty))
    group_summary, group_differences = cmp.compare(grouped, ref, n_boot, level, seed, adjust, test)
    for frame, key in (
        (summary, "summary"),
        (differences, "differences"),
        (group_summary, "group_summary"),
        (group_differences, "group_differences"),
    ):
        with replacing(out[key]) as tmp:
            frame.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
    figures = Path(out["figures"])
    figures.mkdir(parents=True, exist_ok=True)
    layers = cmp.layer_order(orders)
    deepest = cmp.deepest_common(orders)
    groups = list(dict.fromkeys(grouped.keys["group"]))
    plot_by_layer(group_summary, groups, layers, models, level, figures / "by_layer.png")
    accuracy = plot_accuracy(group_summary, groups, models, level, figures / "accuracy.png")
    sweeps = {}
    for curve, members in sweep_members(transforms).items():
        name = "sweep_" + curve.replace(" ", "_") + ".png"
        plot_sweep(summary, curve, members, deepest, models, level, figures / name)
        sweeps[curve] = name
    key = cmp.key_table(group_differences, deepest, level)
    write_json(
        out["manifest"],
        {
            "models": models,
            "reference": reference,
            "images": len(wide.images),
            "n_boot": n_boot,
            "level": level,
            "adjust": adjust,
            "test": TEST_NAMES[test],
            "layers": layers,
            "deepest_common_layer": deepest,
            "layer_pairing": pairing,
            "groups": groups,
            "user_groups": {g.name: g.describe() for g in user_groups if g.name not in empty},
            "accuracy": "accuracy.png" if accuracy else None,
            "by_layer": "by_layer.png",
            "sweeps": sweeps,
            "summary_rows": len(summary),
            "difference_rows": len(differences),
            "note": "" if ref else f"one model ({reference}): intervals only, nothing to compare with",
            "key_table": records(key),
            "findings": cmp.findings(group_differences, deepest, level, n_boot, adjust, test, cmp.first_common(orders)),
        },
    )
    log.info(
        "comparison: %d summary rows, %d differences (%d supported in the per-group table)",
        len(summary),
        len(differences),
        int(sum(cmp.supported(r, level) for _, r in group_differences.iterrows())),
    )


def paired_names(models: list[str], orders: list[list[str]], structures: dict | None, options: dict):
    """Per model, its layers' names in the comparison (reference partners' names; ``layer_match``),
    and the pairing warnings. Without structures: every name as it is (pairing by name)."""
    if not structures or len(models) < 2:
        return {m: {} for m in models}, []
    pairs, warnings = pair_models({m: structures[m] for m in models}, models[0], options.get("layers") or {})
    names = {models[0]: {}}
    for m, order in zip(models[1:], orders[1:], strict=True):
        mine = pairs[pairs["model"] == m]
        partner = {r.layer: r.reference_layer for r in mine.itertuples() if r.reference_layer}
        names[m] = rename(order, partner, orders[0], m)
    return names, warnings


def renamed(table, names: dict[str, str]):
    """A tidy table with its layers under their comparison names (``output`` and unknown kept)."""
    if names:
        table["layer"] = table["layer"].map(lambda la: names.get(la, la))
    return table


def sweep_members(transforms: list[Transform]) -> dict[str, dict[str, float]]:
    """Each sweep with two or more magnitudes: transform name -> magnitude, identity included at the
    curve's neutral magnitude."""
    by_curve: dict[str, dict[str, float]] = {}
    for t in transforms:
        if t.axis:
            by_curve.setdefault(t.axis[0], {})[t.name] = t.axis[1]
    return {c: {**m, "identity": NEUTRAL[c]} for c, m in by_curve.items() if len(m) >= 2}

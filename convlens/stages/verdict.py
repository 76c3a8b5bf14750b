"""Stage of rule verdict: the report's first page (key figure and sentences) from the comparison's
tables, each model's between-images baseline and its CKA invariance."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from convlens.sensitivity import verdict
from convlens.sensitivity.comparison import transform_group
from convlens.sensitivity.tables import records
from convlens.sensitivity.verdict_plots import plot_key
from convlens.stages.files import write_json
from convlens.stages.run import log
from convlens.transform_groups import CLEAN
from convlens.transforms import build_transforms


def _csv(path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def clean_accuracy(summary: pd.DataFrame) -> dict[str, float]:
    """Per model, its accuracy on the untransformed images (the comparison's per-transform summary,
    identity row), when the images have labels."""
    metric = verdict.accuracy_metric(summary)
    rows = summary[(summary["transform"] == "identity") & (summary["layer"] == "output")]
    return {r["model"]: float(r["mean"]) for _, r in rows[rows["metric"] == metric].iterrows()} if metric else {}


def baseline_at(path: str | None, layer: str | None) -> float | None:
    """The cosine between different images' pooled features at ``layer`` (baseline.csv), or None."""
    if not path or layer is None:
        return None
    table = _csv(path)
    hit = table[table["layer"] == layer]
    return float(hit["mean"].iloc[0]) if len(hit) else None


def build_verdict(
    comparison: dict[str, str],
    baselines: dict[str, str],
    ckas: dict[str, str],
    transform_specs: list[dict],
    out_json: str,
    out_figure: str,
) -> None:
    """Write the verdict (``out_json``: models, reference, level, sentences, key rows, figure) and its
    key figure. ``comparison``: the comparison's manifest, summary, group_summary, group_differences
    paths; ``baselines`` and ``ckas``: per model, its baseline.csv and cka.csv."""
    manifest = json.loads(Path(comparison["manifest"]).read_text())
    models, reference, level = manifest["models"], manifest["reference"], manifest["level"]
    deepest = manifest["deepest_common_layer"]
    group_summary, diffs = _csv(comparison["group_summary"]), _csv(comparison["group_differences"])
    clean = clean_accuracy(_csv(comparison["summary"]))
    per_model = {m: baseline_at(baselines.get(m), deepest) for m in models}  # each model's own scale
    baseline = per_model.get(reference)
    group_of = {t.name: transform_group(t) for t in build_transforms(transform_specs)}
    rows = pd.concat(
        [
            verdict.key_rows(group_summary, deepest, models),
            verdict.cka_rows({m: _csv(ckas[m]) for m in models if m in ckas}, group_of),
        ],
        ignore_index=True,
    )
    # the clean group (the untransformed images' accuracy) is the scale the sentences quote, not a group to judge
    diffs, judged = diffs[diffs["group"] != CLEAN], group_summary[group_summary["group"] != CLEAN]
    if len(models) > 1 and len(diffs):
        sentences = verdict.compared_sentences(diffs, reference, level, clean, deepest, per_model)
    else:
        sentences = verdict.single_sentences(judged, reference, level, clean.get(reference), deepest, baseline)
    drawn = plot_key(rows, models, level, Path(out_figure))
    write_json(
        out_json,
        {
            "models": models,
            "reference": reference,
            "level": level,
            "images": manifest["images"],
            "deepest_common_layer": deepest,
            "clean_accuracy": clean,
            "baseline_cosine": baseline,
            "sentences": sentences,
            "key_rows": records(rows),
            "figure": Path(out_figure).name if drawn else None,  # the file exists either way
        },
    )
    log.info("verdict: %d sentences, %d key rows", len(sentences), len(rows))

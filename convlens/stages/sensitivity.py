"""Stage of rule sensitivity: the model's study from its images' metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convlens.errors import InputError
from convlens.sensitivity.findings import findings
from convlens.sensitivity.plots import PLOTS, plot_by_layer, plot_curve, plot_heat_table, plot_predictions
from convlens.sensitivity.tables import (between_images_cosine, curves, heatmap_by_flip, load_metrics,
                                         prediction_table, records, summarize)
from convlens.stages.files import replacing, write_json
from convlens.stages.run import log
from convlens.transforms import Transform, build_transforms


def sensitivity_study(images: list[dict], transform_specs: list[dict], out: dict) -> None:
    """The model's study from its images' metrics: tables, plots and findings (``convlens.sensitivity``).

    images: dicts with ``id``, ``metrics`` and ``raw`` paths. Images whose analysis failed (their
    raw.npz holds an ``error``) are left out with a log line.
    """
    pooled, paths, layers = {}, [], None
    for entry in images:
        with np.load(entry["raw"], allow_pickle=False) as raw:
            if "error" in raw:
                log.warning("%s left out of the study: %s", entry["id"], raw["error"])
                continue
            layers = [str(n) for n in raw["layers"]]
            pooled[entry["id"]] = {layer: raw[f"pooled_{j}"] for j, layer in enumerate(layers)}
        paths.append(entry["metrics"])
    if not paths:
        raise InputError("no image of this model could be analysed; see the analysis logs")
    folder = Path(out["manifest"]).parent
    manifest = run_study(paths, pooled, build_transforms(transform_specs), layers, folder, out["figures"])
    write_json(out["manifest"], manifest)


def run_study(metrics_paths: list[str], pooled: dict[str, dict[str, np.ndarray]], transforms: list[Transform],
              layers: list[str], out_dir: str | Path, figures_dir: str | Path) -> dict:
    """Write metrics.csv, summary.csv, predictions.csv, heatmap_agreement.csv and baseline.csv into
    ``out_dir`` and the plots into ``figures_dir``; return the manifest the report reads."""
    import matplotlib

    matplotlib.use("Agg")
    out, figures = Path(out_dir), Path(figures_dir)
    figures.mkdir(parents=True, exist_ok=True)
    table = load_metrics(metrics_paths)
    summary = summarize(table)
    baseline = between_images_cosine(pooled, layers)
    predictions = prediction_table(table, transforms)
    heat = heatmap_by_flip(table)
    for frame, name in ((table, "metrics.csv"), (summary, "summary.csv"), (predictions, "predictions.csv"),
                        (heat, "heatmap_agreement.csv"), (baseline, "baseline.csv")):
        with replacing(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    plot_by_layer(table, transforms, layers, baseline, figures / "by_layer.png")
    plot_predictions(predictions, figures / "predictions.png")
    plot_heat_table(table, transforms, layers, figures / "heat_table.png")
    curve_files = {}
    for curve, data in curves(table, transforms).items():
        name = "sweep_" + curve.replace(" ", "_") + ".png"
        plot_curve(curve, data, layers, figures / name)
        curve_files[curve] = name
    log.info("study: %d rows (%d images × %d transforms), %d sweeps", len(table), table["image"].nunique(),
             table["transform"].nunique(), len(curve_files))
    return {"rows": len(table), "images": int(table["image"].nunique()), "transforms": len(transforms),
            "layers": layers, "curves": curve_files, "plots": list(PLOTS),
            "predictions": records(predictions), "heatmap_agreement": records(heat),
            "findings": findings(table, transforms, layers, baseline, predictions, heat)}

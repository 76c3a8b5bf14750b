"""Stage of rule sensitivity: the model's study from its shards' tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from convlens.errors import InputError
from convlens.models import ModelInfo
from convlens.plots import DEFAULT_PLOT_LAYERS, pick_layers
from convlens.sensitivity import ladder_report
from convlens.sensitivity.findings import findings
from convlens.sensitivity.ladder_plots import plot_ladder, plot_lie
from convlens.sensitivity.plots import PLOTS, plot_by_layer, plot_curve, plot_heat_table, plot_predictions
from convlens.sensitivity.tables import (
    between_images_cosine,
    curves,
    heatmap_by_flip,
    kind_of,
    load_metrics,
    prediction_table,
    records,
    summarize,
)
from convlens.stages.files import replacing, write_json
from convlens.stages.measure import FLOAT_FORMAT, IMAGE_COLUMNS
from convlens.stages.run import LOG_FILE_ONLY, log
from convlens.suspicious import dead_layers, near_uniform, stretched_images
from convlens.transforms import Transform, build_transforms


def sensitivity_study(
    shards: list[dict],
    transform_specs: list[dict],
    seed: int,
    out: dict,
    info_json: str | None = None,
    plot_layers="auto",
    plot_max_layers: int = DEFAULT_PLOT_LAYERS,
) -> None:
    """The model's study from its shards' tables: the gathered tidy table (out["metrics"]), one row
    per image (out["images"]), summaries, plots and findings (``convlens.sensitivity``).

    shards: dicts with the ``metrics``, ``images`` and ``pooled`` paths a measure job wrote. Images
    that could not be read are listed with their error and left out of the study. The manifest's
    ``warnings`` flag suspicious setups seen over all images (``convlens.suspicious``): stretched
    photos, near-uniform outputs (given the model's ``info_json``), dead layers. plot_layers,
    plot_max_layers: config report.plot_layers (or models.*.plot_layers) and report.plot_max_layers.
    """
    images = (
        pd.concat([pd.read_csv(s["images"], dtype=str, keep_default_na=False) for s in shards], ignore_index=True)
        .reindex(columns=IMAGE_COLUMNS)
        .sort_values("image")
    )
    failed = images[images["error"] != ""]
    for _, row in failed.iterrows():
        log.warning("%s left out of the study: %s", row["image"], row["error"])
    pooled, layers = {}, None
    for s in shards:
        with np.load(s["pooled"], allow_pickle=False) as npz:
            layers = [str(n) for n in npz["layers"]]
            arrays = [npz[f"pooled_{j}"] for j in range(len(layers))]  # each read once
            for i, image in enumerate(npz["ids"]):
                pooled[str(image)] = {layer: arrays[j][i] for j, layer in enumerate(layers)}
    if not pooled:
        raise InputError("no image of this model could be analysed; see the measure logs")
    with replacing(out["images"]) as tmp:
        images.to_csv(tmp, index=False)
    readable = images[images["error"] == ""]
    # on the console only when an image was resized; always in the rule's log
    log.info("%s", resize_line(readable, out["images"]), extra={} if len(resized_of(readable)) else LOG_FILE_ONLY)
    folder = Path(out["manifest"]).parent
    manifest = run_study(
        [s["metrics"] for s in shards],
        pooled,
        build_transforms(transform_specs),
        layers,
        folder,
        out["figures"],
        seed,
        plot_layers,
        plot_max_layers,
    )
    manifest["unreadable"] = records(failed[["image", "source", "error"]])
    n_classes = len(ModelInfo.load(info_json).class_names) if info_json else None
    manifest["warnings"] = study_warnings(images[images["error"] == ""], pooled, layers, n_classes)
    write_json(out["manifest"], manifest)


def resized_of(images: pd.DataFrame) -> pd.DataFrame:
    """The rows of the images that were resized to the model's input (their ``notes`` say ``resized from ...``)."""
    return images[images["notes"].fillna("").str.contains("resized from", regex=False)]


def resize_line(images: pd.DataFrame, images_csv: str) -> str:
    """One summary line for the log: how many of the measured images were resized to the model's
    input (``resized_of``), by which modes, and where the details are."""
    resized = resized_of(images)
    modes = ", ".join(sorted(set(resized["resize"].fillna("").astype(str)) - {""}))
    return (
        f"resize: {len(resized)} of {len(images)} images resized"
        + (f" ({modes})" if modes else "")
        + (f"; see {images_csv}" if len(resized) else "")
    )


def study_warnings(
    images: pd.DataFrame, pooled: dict[str, dict[str, np.ndarray]], layers: list[str], n_classes: int | None
) -> list[dict]:
    """The suspicious-setup warnings over the measured images (their images.csv rows), logged."""
    modes = images["resize"].fillna("").astype(str).tolist()
    changes = pd.to_numeric(images["aspect_change"], errors="coerce").fillna(1.0).tolist()
    confidences = pd.to_numeric(images["confidence"], errors="coerce").dropna().tolist()
    found = [
        stretched_images(modes, changes),
        dead_layers(pooled, layers),
        near_uniform(confidences, n_classes) if n_classes else None,
    ]
    for w in found:
        if w:
            log.warning("%s", w["message"])
    return [w for w in found if w]


def run_study(
    metrics_paths: list[str],
    pooled: dict[str, dict[str, np.ndarray]],
    transforms: list[Transform],
    layers: list[str],
    out_dir: str | Path,
    figures_dir: str | Path,
    seed: int = 0,
    plot_layers="auto",
    plot_max_layers: int = DEFAULT_PLOT_LAYERS,
) -> dict:
    """Write metrics.csv, summary.csv, predictions.csv, heatmap_agreement.csv and baseline.csv into
    ``out_dir`` and the plots (PNG and SVG) into ``figures_dir``; return the manifest the report reads.

    The plots name ``pick_layers(layers, named, plot_max_layers)`` (``plot_layers``: "auto" or layer
    names, which must be among ``layers``)."""
    import matplotlib

    matplotlib.use("Agg")
    named = [] if plot_layers in (None, "auto") else list(plot_layers)
    unknown = [name for name in named if name not in layers]
    if unknown:
        raise InputError(
            f"config.report.plot_layers (or models.*.plot_layers): {', '.join(unknown)} not among the "
            f"model's conv and pooling layers ({', '.join(layers)})"
        )
    shown = pick_layers(layers, named, plot_max_layers)
    out, figures = Path(out_dir), Path(figures_dir)
    figures.mkdir(parents=True, exist_ok=True)
    table = load_metrics(metrics_paths)
    summary = summarize(table)
    baseline = between_images_cosine(pooled, layers, seed)
    predictions = prediction_table(table, transforms)
    heat = heatmap_by_flip(table)
    for frame, name in (
        (table, "metrics.csv"),
        (summary, "summary.csv"),
        (predictions, "predictions.csv"),
        (heat, "heatmap_agreement.csv"),
        (baseline, "baseline.csv"),
    ):
        with replacing(out / name) as tmp:
            frame.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
    plot_by_layer(table, transforms, layers, baseline, figures / "by_layer.png", shown)
    plot_predictions(predictions, figures / "predictions.png")
    rungs = ladder_report.rung_table(table, kind_of(transforms), seed)
    lie = ladder_report.lie_table(table, seed)
    ladder_plot = "ladder.png" if plot_ladder(rungs, layers, figures / "ladder.png", shown) else None
    lie_plot = "lie.png" if plot_lie(lie, layers, figures / "lie.png", shown) else None
    heat_tables = plot_heat_table(table, transforms, layers, figures / "heat_table.png")
    curve_files = {}
    for curve, data in curves(table, transforms).items():
        name = "sweep_" + curve.replace(" ", "_") + ".png"
        plot_curve(curve, data, layers, figures / name, shown)
        curve_files[curve] = name
    log.info(
        "study: %d rows (%d images × %d transforms), %d sweeps",
        len(table),
        table["image"].nunique(),
        table["transform"].nunique(),
        len(curve_files),
    )
    return {
        "rows": len(table),
        "images": int(table["image"].nunique()),
        "transforms": len(transforms),
        "layers": layers,
        "curves": curve_files,
        "plots": list(PLOTS),
        "heat_tables": heat_tables,
        "ladder_plot": ladder_plot,
        "lie_plot": lie_plot,
        "lie_output": records(lie[lie["layer"] == "output"]),
        "plot_layers": shown,
        "predictions": records(predictions),
        "heatmap_agreement": records(heat),
        "findings": findings(table, transforms, layers, baseline, predictions, heat)
        + ladder_report.ladder_sentences(rungs, layers)
        + ladder_report.lie_sentences(lie, layers),
    }

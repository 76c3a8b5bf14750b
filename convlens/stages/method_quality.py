"""The method check, part of rule model_extras: sanity and faithfulness of every heatmap method."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from convlens.attribution.quality import CONSTANT_TOLERANCE, against_random, cascading_randomization, deletion_insertion
from convlens.core.head import TARGET_PREDICTED
from convlens.core.layers import iter_layers, last_conv_layer
from convlens.core.setup import open_model
from convlens.data import load_input_image
from convlens.errors import InputError
from convlens.models import ModelInfo
from convlens.sensitivity.method_findings import (
    LEVEL,
    N_BOOT,
    QUALITY_COLUMNS,
    RANDOM_ORDERS,
    method_findings,
    per_step,
    quality_row,
)
from convlens.sensitivity.method_plots import plot_quality
from convlens.stages.common import heatmap_explainer, subset_line
from convlens.stages.files import write_csv, write_json
from convlens.stages.run import LOG_FILE_ONLY, Progress, log


def method_quality(
    model_path: str,
    info_json: str,
    images: list[dict],
    cfg: dict,
    seed: int,
    threads: int,
    out: dict,
    study_images: int | str | None = None,
) -> None:
    """Sanity (cascading weight randomization, Adebayo et al. 2018) and faithfulness (deletion and
    insertion curves, Petsiuk et al. 2018) of every heatmap method on untransformed images.

    Writes quality.json (per method and randomization step: mean Spearman and SSIM to the original
    maps, constant maps counted as 0 and counted in n_constant, and whether the step stayed above
    ``heatmaps.quality_spearman``; deletion and insertion areas beside a random order's with a
    bootstrap interval on the paired difference; the findings in sentences), quality.csv (one row
    per method) and two plots. ``images`` are the first ``heatmaps.quality_images`` of the
    ``study_images`` the study measures ("more": more than those; None: just those): the log and
    quality.json's ``subset`` say how many were used.
    """
    info = ModelInfo.load(info_json)
    hcfg = cfg["heatmaps"]
    figures = Path(out["figures"])
    figures.mkdir(parents=True, exist_ok=True)
    pictures, used, unreadable, cache = [], [], [], {}
    for entry in images:
        try:
            pictures.append(load_input_image(entry, info, cache)[0])
            used.append(entry["id"])
        except InputError as exc:
            unreadable.append(entry["id"])
            log.warning("%s left out of the method check: %s", entry["id"], exc)
    available = len(images) if study_images is None else None if study_images == "more" else study_images
    subset = subset_line(
        "method check",
        len(used),
        available,
        "heatmaps.quality_images",
        hcfg.get("quality_images", len(images)),
        unreadable,
    )
    log.info("%s", subset)
    if not pictures:
        write_json(
            out["json"],
            {
                "images": [],
                "methods": [],
                "rows": [],
                "findings": [],
                "skipped": "no images (heatmaps.quality_images: 0, or none readable)",
                "subset": subset,
            },
        )
        write_csv(out["csv"], [], QUALITY_COLUMNS)
        return  # without TensorFlow: no image, no model
    model, _ = open_model(model_path, threads)
    cam_layer = hcfg["layer"] or last_conv_layer(model)
    explainer, methods, notes = heatmap_explainer(model, cfg, info.preprocess, cam_layer)
    x = np.stack(pictures).astype(np.float32) / 255.0
    targets = np.full(len(x), TARGET_PREDICTED)
    common = {
        "preprocess_mode": info.preprocess,
        "cam_layer": cam_layer,
        "score": hcfg["score"],
        "params": hcfg["params"],
        "max_batch": cfg["batch_size"],
    }
    t0 = time.time()
    log.info("method check: %d methods on %d images, then cascading randomization", len(methods), len(x))
    maps = {name: r.maps for name, r in explainer.explain(x, targets).items()}
    log.info("method check: maps of %d methods in %.1f s", len(maps), time.time() - t0, extra=LOG_FILE_ONLY)
    progress, faithful = Progress("method check, deletion/insertion: methods", len(maps)), {}
    for name, m in maps.items():
        faithful[name] = deletion_insertion(
            model,
            x,
            targets,
            m,
            hcfg["quality_steps"],
            seed=seed,
            preprocess_mode=info.preprocess,
            max_batch=cfg["batch_size"],
            explainer=explainer,
            random_orders=RANDOM_ORDERS,
            random=next(iter(faithful.values()))["random"] if faithful else None,  # the same for every method
        )
        progress.advance()
    # the console has the progress lines' last one instead of these two
    log.info(
        "deletion/insertion for %d methods on %d images in %.1f s",
        len(methods),
        len(x),
        time.time() - t0,
        extra=LOG_FILE_ONLY,
    )
    t0 = time.time()
    threshold = hcfg["quality_spearman"]
    n_layers = sum(1 for _, layer in iter_layers(model) if layer.trainable_weights)
    progress = Progress("method check, cascading randomization: layers", n_layers)
    sanity = cascading_randomization(
        model,
        x,
        targets,
        methods,
        seed=seed,
        threshold=threshold,
        on_step=progress.advance,
        original={name: np.abs(m) for name, m in maps.items()},
        **common,
    )
    log.info(
        "cascading randomization over %d layers in %.1f s", len(sanity["layers"]), time.time() - t0, extra=LOG_FILE_ONLY
    )
    random = next(iter(faithful.values()))["random"]  # the same seeded orders for every method
    versus = {name: against_random(faithful[name], random, n_boot=N_BOOT, seed=seed, level=LEVEL) for name in methods}
    rows = [quality_row(name, sanity, faithful[name], random, versus[name]) for name in methods]
    write_csv(out["csv"], rows, QUALITY_COLUMNS)
    plot_quality({**sanity, "threshold": threshold}, faithful, methods, figures)
    steps = per_step(sanity, methods)
    write_json(
        out["json"],
        {
            "images": used,
            "subset": subset,
            "methods": methods,
            "notes": notes,
            "layers": [p.rsplit("/", 1)[-1] for p in sanity["layers"]],
            "rows": rows,
            "per_step": steps,
            "threshold": threshold,
            "level": LEVEL,
            "n_boot": N_BOOT,
            "random_orders": RANDOM_ORDERS,
            "constant_tolerance": CONSTANT_TOLERANCE,
            "findings": method_findings(rows, steps, len(used), threshold, LEVEL),
            "steps": hcfg["quality_steps"],
            "figures": ["randomization.png", "deletion_insertion.png"],
        },
    )

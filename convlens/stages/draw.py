"""Stage of rule draw: the study's exemplars (rule choose_exemplars, the same for every model) analysed
again by one model with their raw arrays kept and drawn (inputs, feature-map grids, heatmap overlays,
sheets).

Only these images get files of their own: ``<out_dir>/<image>/`` holds raw.npz, summary.json,
sheet.json and figures/. The manifest says how many images the model measured and why each exemplar
was chosen (with this model's own scores).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from convlens import activations as acts_mod
from convlens.attribution.base import normalize_map
from convlens.errors import InputError
from convlens.sensitivity import exemplars
from convlens.stages.analysis import Analysis, image_outputs, predictions
from convlens.stages.figures import render_image
from convlens.stages.files import savez, write_json
from convlens.stages.measure import source_of
from convlens.stages.run import LOG_FILE_ONLY, Progress, log


def draw_exemplars(
    model_path: str,
    info_json: str,
    exemplars_json: str,
    model: str,
    images: list[dict],
    cfg: dict,
    threads: int,
    sheet_layers: list[str],
    out_dir: str,
    manifest: str,
) -> None:
    """Analyse and draw the study's exemplars (``exemplars_json`` of rule choose_exemplars) with ``model``.

    images: every image's entry (``id``, ``path`` or ``dataset_npz`` + ``index``).
    """
    shared = json.loads(Path(exemplars_json).read_text())
    if model not in shared["models"]:
        raise InputError(f"{exemplars_json} was chosen for {', '.join(shared['models'])}, not {model}; redo it")
    chosen = exemplars.for_model(shared["exemplars"], model)
    by_id = {e["id"]: e for e in images}
    out = Path(out_dir)
    entries = [dict(by_id[c["image"]], folder=out / c["image"]) for c in chosen]
    analysis = Analysis(model_path, info_json, cfg, threads, shown_only=True)
    analysis.describe(len(entries))
    progress = Progress("exemplars drawn", len(entries))
    for loaded, failed, result in analysis.chunks(entries):
        for _entry, error in failed:  # measured before, unreadable now: the file changed under the run
            raise InputError(error)
        for i, item in enumerate(loaded):
            folder = item.entry["folder"]
            save_image_result(analysis, item, image_outputs(result, i, analysis.n_t), folder)
            render_image(
                str(folder / "raw.npz"),
                str(folder / "summary.json"),
                str(folder / "figures"),
                str(folder / "sheet.json"),
                sheet_layers,
            )
        progress.advance(len(loaded))
    measured = shared["measured"][model]
    write_json(
        manifest, {"measured": measured, "exemplars": chosen, "choice": shared["choice"], "seed": shared["seed"]}
    )
    log.info(  # the console heard the choice once, from rule choose_exemplars
        "%d exemplars of %d measured images: %s",
        len(chosen),
        measured,
        ", ".join(f"{c['image']} ({c['reason']})" for c in chosen),
        extra=LOG_FILE_ONLY,
    )
    analysis.done()


def save_image_result(analysis: Analysis, item, out: dict, folder: Path) -> None:
    """raw.npz and summary.json of one exemplar; ``out`` holds only this image's rows.

    raw.npz keeps the rows drawn in the sheets: their inputs, maps (the drawn channels, or all of them
    with ``activations.raw_channels: all``), the drawn channels' display scaling, and the pooled
    reference features.
    """
    study = analysis.study  # the draw job's Analysis holds only the shown transforms: every row is kept
    arrays = {
        "inputs": out["inputs"].astype(np.float16),
        "matrices": study.matrices,
        "valid": study.valid,
        "probs": out["probs"],
        "target": out["target"],
        "cam": out["cam"],
        "cam_up": out["cam_up"],
        "transforms": np.array([t.name for t in analysis.transforms]),
        "layers": np.array(analysis.layers),
        "methods": np.array(analysis.methods, dtype=str),
    }
    for j, method in enumerate(analysis.methods):
        arrays[f"heat_{j}"] = out["heatmaps"][method].astype(np.float32)
    cfg = analysis.cfg["activations"]
    for j, (layer, act) in enumerate(zip(analysis.layers, out["activations"], strict=False)):
        # the drawn channels and their display scaling are chosen on the untransformed image
        everything = np.arange(act.shape[-1])
        drawn = everything if layer == analysis.conv_layers[0] else acts_mod.top_channels(act[0], cfg["top_k"])
        saved = everything if cfg["raw_channels"] == "all" else drawn
        kept = np.take(act, saved, axis=-1) if len(saved) < act.shape[-1] else act  # channels first: a small copy
        arrays[f"act_{j}"] = kept.astype(cfg["raw_dtype"])
        arrays[f"act_channels_{j}"], arrays[f"channels_{j}"] = saved, drawn
        arrays[f"display_{j}"] = np.stack(acts_mod.display_stats(act[0][..., drawn]))
        arrays[f"pooled_{j}"] = out["pooled"][j][0].astype(np.float64)
    savez(folder / "raw.npz", **arrays)
    rows = predictions(analysis, out)
    for k, row in enumerate(rows):
        row["cam_all_zero"] = normalize_map(out["cam_up"][k])[1]
    write_json(
        folder / "summary.json",
        {
            "image": item.entry["id"],
            "source": source_of(item.entry),
            "label_name": item.label,
            "class_names": analysis.info.class_names,
            "cam_layer": analysis.cam_layer,
            "layers": analysis.layers,
            "conv_layers": analysis.conv_layers,
            "notes": item.notes + analysis.method_notes,
            "devices": analysis.devices,
            "methods": analysis.methods,
            "transforms": rows,
            "error": None,
        },
    )

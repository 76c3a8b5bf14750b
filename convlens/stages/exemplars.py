"""Stages of rules choose_exemplars and side_by_side: the study's exemplars, chosen once across the
models from their measure shards (``sensitivity.exemplars``), and each exemplar drawn with every model
side by side from the draw jobs' saved arrays (``exemplar_grid``). No TensorFlow in either.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from convlens.attribution.base import normalize_map
from convlens.errors import InputError
from convlens.exemplar_grid import Cell, side_by_side
from convlens.sensitivity import exemplars
from convlens.stages.files import write_json, write_png
from convlens.stages.run import log
from convlens.transform_labels import label_ascii

CHUNK_ROWS = 500_000  # metric rows read at a time: memory stays flat in the shard's size
OUTPUT_METRICS = ("prob_change", "top1_change")


def shard_scores(metrics_csv: str, images_csv: str) -> pd.DataFrame:
    """One measure shard's image_scores (of ``sensitivity.exemplars``) with the untransformed image's
    ``predicted`` class and ``confidence`` (from its images.csv), for the images it could read. The
    metric rows are read in chunks and only the output layer's kept."""
    kept = []
    for chunk in pd.read_csv(
        metrics_csv,
        usecols=["image", "transform", "layer", "metric", "value"],
        dtype={"image": str, "transform": str, "layer": str, "metric": str, "value": float},
        keep_default_na=False,
        na_values={"value": ["", "nan"]},
        chunksize=CHUNK_ROWS,
    ):
        kept.append(chunk[(chunk["layer"] == "output") & chunk["metric"].isin(OUTPUT_METRICS)])
    rows = (
        pd.concat(kept, ignore_index=True)
        if kept
        else pd.DataFrame(columns=["image", "transform", "layer", "metric", "value"])
    )
    images = pd.read_csv(images_csv, dtype=str, keep_default_na=False)
    readable = images[images["error"] == ""].set_index("image")
    scores = exemplars.image_scores(rows[rows["image"].isin(readable.index)])
    scores["predicted"] = readable.loc[scores["image"], "predicted"].to_numpy()
    scores["confidence"] = pd.to_numeric(readable.loc[scores["image"], "confidence"]).to_numpy()
    return scores


def choose_exemplars(shards: dict[str, list[dict]], choice: dict, seed: int, out_json: str) -> None:
    """The study's exemplars (config ``report.exemplars``) from every model's measure shards, written to
    ``out_json``: {"models", "measured" (per model), "choice", "seed", "exemplars"}.

    shards: per model, in the report's order, its shards' {"metrics", "images"} paths.
    """
    scores = {m: pd.concat([shard_scores(s["metrics"], s["images"]) for s in paths]) for m, paths in shards.items()}
    empty = [m for m, s in scores.items() if s.empty]
    if empty:
        raise InputError(f"{', '.join(empty)}: no image was measured; see the measure logs")
    chosen = exemplars.choose_shared(
        scores,
        choice["disagree"],
        choice["sensitive"],
        choice["flipped"],
        choice["random"],
        choice["images"],
        seed,
    )
    measured = {m: len(s) for m, s in scores.items()}
    write_json(
        out_json, {"models": list(shards), "measured": measured, "choice": choice, "seed": seed, "exemplars": chosen}
    )
    log.info(
        "%d exemplars shared by %d models: %s",
        len(chosen),
        len(shards),
        ", ".join(f"{c['image']} ({c['reason']})" for c in chosen),
    )


def model_shards(metrics: list[str], images: list[str], models: list[str], counts: list[int]) -> dict[str, list[dict]]:
    """The rule's flat shard lists (model-major: ``counts[k]`` shards of ``models[k]``, each model its
    own number, ``images_per_job``) grouped per model."""
    if len(metrics) != len(images) or len(metrics) != sum(counts) or len(counts) != len(models):
        raise ValueError(f"{len(metrics)} metrics and {len(images)} images files for {counts} shards of {models}")
    ends = np.cumsum([0, *counts])
    return {
        m: [{"metrics": metrics[i], "images": images[i]} for i in range(ends[k], ends[k + 1])]
        for k, m in enumerate(models)
    }


def read_cells(folder: Path) -> tuple[list[str], list[str], list[Cell]]:
    """One model's drawing of one exemplar from its draw folder (raw.npz, summary.json): the shown
    transforms' names and labels, and a Cell per transform (input, Grad-CAM scaled by its maximum, top-1)."""
    summary = json.loads((folder / "summary.json").read_text())
    rows = [r for r in summary["transforms"] if r["shown"]]
    with np.load(folder / "raw.npz", allow_pickle=False) as raw:
        names = [str(n) for n in raw["transforms"]]
        if names != [r["transform"] for r in rows]:
            raise InputError(f"{folder}: raw.npz and summary.json name different transforms; redo rule draw")
        inputs, cams = raw["inputs"].astype(np.float32), raw["cam_up"]
    cells = [
        Cell(inputs[k], normalize_map(cams[k])[0], f"{r['predicted_name']} {100 * r['confidence']:.1f} %", r["flipped"])
        for k, r in enumerate(rows)
    ]
    labels = [label_ascii(n) for n in names]  # "shift (0, -4) px": Pillow's font has no minus sign
    return names, labels, cells


def draw_side_by_side(exemplars_json: str, models: list[str], folders: list[str], out_dir: str, manifest: str) -> None:
    """Per exemplar of ``exemplars_json`` (rule choose_exemplars) one figure ``<out_dir>/<image>.png``
    with every model side by side (``exemplar_grid.side_by_side``), from each model's draw folder
    (``folders``, in the order of ``models``); the manifest lists them with why each was chosen."""
    shared = json.loads(Path(exemplars_json).read_text())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    for chosen in shared["exemplars"]:
        image = chosen["image"]
        columns = [read_cells(Path(f) / image) for f in folders]
        names, labels = columns[0][0], columns[0][1]
        differ = [m for m, col in zip(models, columns, strict=True) if col[0] != names]
        if differ:
            raise InputError(f"{image}: {', '.join(differ)} drew other transforms than {models[0]}; redo rule draw")
        cells = [[col[2][r] for col in columns] for r in range(len(names))]
        picture = side_by_side(labels, models, cells)
        write_png(picture, out / f"{image}.png")
        size = {"height_px": picture.shape[0], "width_px": picture.shape[1]}
        figures.append({**chosen, "file": f"{image}.png", "transforms": names, **size})
    write_json(manifest, {"models": models, "exemplars": figures})
    log.info("%d exemplars drawn side by side for %d models in %s", len(figures), len(models), out)

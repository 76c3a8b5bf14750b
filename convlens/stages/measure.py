"""Stage of rule measure: every image of a shard measured, written as one compact table per shard.

No file per image: the shard's tidy metric rows (gzip CSV), one row per image (its prediction, or
why it could not be read) and the images' pooled reference features (for the between-images
baseline of the cosine).
"""

from __future__ import annotations

import gzip
import time
from contextlib import ExitStack

import numpy as np
import pandas as pd

from convlens.config import ImageEntry
from convlens.image_folders import check_labels
from convlens.sensitivity.lie import consistency_rows
from convlens.sensitivity.metrics import COLUMNS
from convlens.stages.analysis import Analysis, image_metrics, image_outputs
from convlens.stages.cka import ShardCKA, structure_of
from convlens.stages.files import replacing, savez, write_csv
from convlens.stages.run import Progress, log

IMAGE_COLUMNS = [
    "image",
    "source",
    "label",
    "predicted",
    "confidence",
    "flips",
    "notes",
    "resize",
    "aspect_change",
    "error",
]
FLOAT_FORMAT = "%.7g"  # float32 precision: the values are computed in float32


class RowsWriter:
    """The shard's tidy metric rows written to gzip CSV chunk by chunk, so memory does not grow with
    the shard's images: the same text as one ``to_csv`` of the whole table; gzip with mtime 0, so the
    same rows and chunks give the same bytes."""

    def __init__(self, path: str, stack: ExitStack):
        tmp = stack.enter_context(replacing(path, ".csv.gz"))
        self.fh = stack.enter_context(gzip.GzipFile(filename=str(tmp), mode="wb", mtime=0))
        self.first = True

    def write(self, frames: list[pd.DataFrame]) -> None:
        if frames:
            self._put(pd.concat(frames, ignore_index=True))
            frames.clear()

    def close(self) -> None:
        if self.first:  # no rows: the header alone
            self._put(pd.DataFrame(columns=COLUMNS))

    def _put(self, table: pd.DataFrame) -> None:
        self.fh.write(table.to_csv(index=False, header=self.first, float_format=FLOAT_FORMAT).encode("utf-8"))
        self.first = False


class PooledFeatures:
    """Each image's pooled features of its reference row (the untransformed image), per layer, for the
    between-images baseline. Each row is copied out of its chunk: a row kept as a view would keep the
    chunk's whole (images × transforms, channels) array alive, so memory would grow with the shard's
    images by the transforms' factor (41 in the default study)."""

    def __init__(self, layers: list[str]):
        self.layers = layers
        self.ids: list[str] = []
        self.rows: list[list[np.ndarray]] = [[] for _ in layers]

    def add(self, image_id: str, pooled: list[np.ndarray]) -> None:
        """``pooled``: the image's rows of the chunk's pooled features, one (T, c) array per layer."""
        self.ids.append(image_id)
        for j, p in enumerate(pooled):
            self.rows[j].append(np.array(p[0], dtype=np.float32))  # a copy, not a view of the chunk

    def arrays(self) -> dict[str, np.ndarray]:
        """The npz's arrays: ids, layers and pooled_<j> (n, c) per layer."""
        out = {"ids": np.array(self.ids, dtype=str), "layers": np.array(self.layers, dtype=str)}
        for j, values in enumerate(self.rows):
            out[f"pooled_{j}"] = np.stack(values) if values else np.zeros((0, 0), np.float32)
        return out


def source_of(entry: dict) -> str:
    """Where an image comes from, as the report shows it (config.ImageEntry.source of the entry)."""
    return ImageEntry(entry["id"], entry.get("dataset"), entry.get("index"), entry.get("path")).source


def measure_shard(
    model_path: str,
    info_json: str,
    images: list[dict],
    cfg: dict,
    threads: int,
    out: dict,
    channel_maps: str | None = None,
) -> None:
    """Measure every image of a shard; write out["metrics"] (tidy rows, gzip CSV), out["images"] (one
    row per image), out["pooled"] (npz: ids, layers, pooled_<j> (n, c) per layer) and, when given,
    out["cka"] (per-minibatch HSIC values and reference Grams, ``stages.cka``; none with config
    ``cka.enabled: false``).

    images: dicts with ``id`` and ``path`` (and a folder image's ``label``, which must be one of the
    model's classes: a one-line InputError otherwise) or ``dataset_npz`` + ``index``. An unreadable image gets
    a row with its ``error`` and no metrics; the rest of the shard completes. ``channel_maps``: the
    equivariance ladder's maps (rule fit_channel_maps), or None when no rung is measured.
    """
    analysis = Analysis(model_path, info_json, cfg, threads, channel_maps=channel_maps)
    check_labels(images, analysis.info.class_names, analysis.info.name)  # before any image is measured
    analysis.describe(len(images))
    frames, image_rows, pooled = [], [], PooledFeatures(analysis.layers)
    progress = Progress("images measured", len(images))
    # CKA off (config cka.enabled: false): the shard still writes cka.npz, with no minibatch
    block = analysis.cka_images or cfg.get("cka", {}).get("batch_images") or 16
    minibatches = ShardCKA(block) if "cka" in out else None
    stack = ExitStack()
    with stack:
        rows_out = RowsWriter(out["metrics"], stack)
        _measure_chunks(analysis, images, frames, image_rows, pooled, minibatches, rows_out, progress)
        rows_out.close()
    order = {entry["id"]: k for k, entry in enumerate(images)}
    write_csv(out["images"], sorted(image_rows, key=lambda row: order[row["image"]]), IMAGE_COLUMNS)
    savez(out["pooled"], **pooled.arrays())
    if minibatches is not None:
        minibatches.save(out["cka"], analysis.layers, [t.name for t in analysis.transforms], structure_of(analysis))
    analysis.done()


def _measure_chunks(analysis, images, frames, image_rows, pooled, minibatches, rows_out, progress):
    """measure_shard's loop over the chunks: rows written per chunk, the rest collected."""
    names = analysis.info.class_names
    t_metrics = 0.0
    for loaded, failed, result in analysis.chunks(images):
        grams = result.pop("grams", None) if result is not None else None
        if minibatches is not None and grams is not None:
            minibatches.add(grams, [item.entry["id"] for item in loaded])
        for entry, error in failed:
            log.error("%s", error)
            image_rows.append({"image": entry["id"], "source": source_of(entry), "error": error})
        t0 = time.time()
        lie = result.pop("lie", None) if result is not None else None  # per image (sensitivity.lie)
        for i, item in enumerate(loaded):
            rows = image_outputs(result, i, analysis.n_t)
            metrics = image_metrics(analysis, item.entry["id"], rows, item.label)
            metrics += consistency_rows(analysis.transforms, item.entry["id"], rows["probs"])
            if lie is not None:
                metrics += analysis.lie.rows(item.entry["id"], lie, i)
            frames.append(pd.DataFrame(metrics, columns=COLUMNS))
            top = rows["probs"].argmax(axis=1)
            image_rows.append(
                {
                    "image": item.entry["id"],
                    "source": source_of(item.entry),
                    "label": item.label,
                    "predicted": names[int(top[0])],
                    "confidence": float(rows["probs"][0, top[0]]),
                    "flips": int((top != top[0]).sum()),
                    "notes": "; ".join(item.notes),
                    "resize": item.entry["resize"],
                    "aspect_change": round(item.aspect, 4),
                    "error": "",
                }
            )
            pooled.add(item.entry["id"], rows["pooled"])
        t_metrics += time.time() - t0
        rows_out.write(frames)
        progress.advance(len(loaded) + len(failed))
    analysis.seconds["metrics"] = t_metrics

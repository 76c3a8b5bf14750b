"""The safe file writers every stage uses: write to a temporary name beside the target, then
rename, so an interrupted write never leaves a file that looks finished."""

from __future__ import annotations

import csv
import json

import numpy as np
from PIL import Image

from convlens.models import describe
from convlens.replacing import replacing

PNG_COMPRESS_LEVEL = 1  # zlib level of figure files: 2-4x faster to write than Pillow's 6, 5-20 % larger


def write_text(path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=json_default))


def json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj)}")


def write_csv(path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Rows as CSV; ``columns`` default to the first row's keys."""
    with replacing(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns or (list(rows[0]) if rows else []))
        writer.writeheader()
        writer.writerows(rows)


def savez(path, **arrays) -> None:
    with replacing(path, ".npz") as tmp:
        np.savez(tmp, **arrays)


def write_png(array: np.ndarray, path) -> None:
    """Write (H, W), (H, W, 1) or (H, W, 3) uint8 as PNG."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    with replacing(path, ".png") as tmp:
        Image.fromarray(array).save(tmp, compress_level=PNG_COMPRESS_LEVEL)


def save_model(model, info, out: dict) -> None:
    """model.keras, info.json and architecture.csv of a trained or loaded model."""
    with replacing(out["model"], ".keras") as tmp:
        model.save(tmp)
    with replacing(out["info"]) as tmp:
        info.save(tmp)
    write_csv(out["architecture"], describe(model))

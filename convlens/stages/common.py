"""What several stages share: reading an image as the model sees it, choosing the heatmap methods
that apply, and file names for layers."""

from __future__ import annotations

import numpy as np

from convlens.attribution.cams import cam_dense
from convlens.attribution.registry import METHODS
from convlens.config import sanitize_id
from convlens.data import Dataset, fit, read_image
from convlens.errors import InputError

TILE_PX = 28  # a feature map's display size in grids: small maps enlarged, large ones shrunk (to 28-56 px)


def layer_file(layer: str) -> str:
    """A layer path as a file-name part: nested paths joined by '__', other unsafe characters '_'."""
    return sanitize_id(layer.replace("/", "__"))


def load_input_image(entry: dict, info, datasets_cache: dict) -> tuple[np.ndarray, str | None, list[str], float]:
    """An image as the model sees it: (H, W, C) uint8 at the model's input size, its true class name
    (from its dataset; None for image files), notes on conversions, and how much the resize changed
    its aspect ratio (``data.fit``; the entry's ``resize`` mode, default ``stretch``)."""
    h, w, c = info.input_shape
    notes = []
    label = None
    if entry.get("dataset_npz"):
        npz = entry["dataset_npz"]
        if npz not in datasets_cache:
            datasets_cache[npz] = Dataset.load(npz)
        ds = datasets_cache[npz]
        if entry["index"] >= len(ds.x_test):
            raise InputError(
                f"{entry['dataset']} test[{entry['index']}]: the test split has only {len(ds.x_test)} images"
            )
        image = ds.x_test[entry["index"]]
        label = ds.class_names[int(ds.y_test[entry["index"]])]
        if image.shape[2] != c:
            image = np.repeat(image, 3, axis=2) if c == 3 else image.mean(axis=2, keepdims=True).astype(np.uint8)
            notes.append(f"converted from {ds.x_test.shape[3]} to {c} channels")
    else:
        image, note = read_image(entry["path"], channels=c)
        if note:
            notes.append(note)
    aspect = 1.0
    if image.shape[:2] != (h, w):
        mode = entry.get("resize") or "stretch"
        notes.append(f"resized from {image.shape[1]}x{image.shape[0]} to {w}x{h} ({mode})")
        image, aspect = fit(image, (h, w), mode)
    return image, label, notes, aspect


def heatmap_methods(model, wanted, cam_layer: str) -> tuple[list[str], list[str]]:
    """The attribution methods to run: config ``heatmaps.methods`` (a list, or ``all``: every method
    that applies to the model). Returns (names, notes on methods left out)."""
    names = list(METHODS) if wanted == "all" else list(wanted)
    if "cam" not in names:
        return names, []
    try:
        cam_dense(model, cam_layer)
    except InputError as exc:
        if wanted != "all":
            raise InputError(f"config.heatmaps.methods: {exc}") from None
        names.remove("cam")
        return names, [f"heatmaps.methods all: cam left out ({exc})"]
    return names, []

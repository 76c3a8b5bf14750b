"""What several stages share: reading an image as the model sees it, the Explainer of the heatmap
methods that apply, and file names for layers."""

from __future__ import annotations

import numpy as np

from convlens.attribution.explainer import Explainer
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


def heatmap_explainer(
    model, cfg: dict, preprocess: str, cam_layer: str, cam_layer_key: str = "cam_layer", always: tuple = ()
) -> tuple[Explainer, list[str], list[str]]:
    """The Explainer of config ``heatmaps`` for the model: the methods of ``heatmaps.methods`` (a list,
    or ``all``: every method that applies to the model), with ``always`` run too (first).

    Returns (explainer, the listed methods it runs, notes on methods ``all`` left out). A listed
    method that does not apply stops the job naming ``config.heatmaps.methods``."""
    hcfg = cfg["heatmaps"]
    wanted = hcfg["methods"]
    names = list(METHODS) if wanted == "all" else list(wanted)
    explainer = Explainer(
        model,
        list(dict.fromkeys([*always, *names])),
        preprocess,
        cam_layer,
        hcfg["score"],
        hcfg["params"],
        cfg["batch_size"],
        optional=[n for n in names if n not in always] if wanted == "all" else (),
        cam_layer_key=cam_layer_key,
        methods_key="config.heatmaps.methods",
    )
    kept = [n for n in names if n not in explainer.left_out]
    return explainer, kept, [f"heatmaps.methods all: {n} left out ({why})" for n, why in explainer.left_out.items()]

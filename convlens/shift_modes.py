"""The shift kind's sweeps, curves and groups, with its ``mode`` (``convlens.transform_kinds`` reads them).

``mode`` (a range option, carried in the transform's parameters and appended to its name):

- ``fill`` (default): the image moved on the canvas, what comes in filled as the study's ``fill_mode``;
- ``circular``: the image rolled (warps read with ``wrap``; every pixel valid; ``Transform.wraps``);
- ``crop`` (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again"): the image enlarged
  about its centre by (S − 1 + 2m) / (S − 1) per axis, m the sweep's largest offset, and a window of the
  original size cut at each offset (``crop_frame``, then the translation). The reference row stays the
  untransformed image; the sweep's offset 0 is its own transform (the centred crop), so a crop curve
  has no neutral point, and the sweep's consistency counts its crops only.

Pure numpy: no TensorFlow/Keras, no other convlens module.
"""

from __future__ import annotations

import numpy as np

SHIFT_MODES = ("fill", "circular", "crop")  # fill: the study's fill_mode; circular: rolled; crop: Zhang 2019


def shift_axis(p: dict) -> tuple[str, float] | None:
    dx, dy = float(p["dx"]), float(p["dy"])
    suffix = "" if p.get("mode", "fill") == "fill" else f" {p['mode']}"  # a circular sweep is a curve of its own
    direction = "x" if dy == 0 else "y" if dx == 0 else "diagonal" if dx == dy else None
    direction = {"xy": "diagonal"}.get(p.get("direction"), p.get("direction", direction))  # a crop's offset 0 too
    return None if direction is None else (f"shift {direction}{suffix}", dy if direction == "y" else dx)


def shift_sweep(v: float, spec: dict) -> dict:
    direction = spec.get("direction", "xy")  # the Option's default
    mode = {"mode": spec["mode"]} if spec.get("mode", "fill") != "fill" else {}
    if mode.get("mode") == "crop":  # the margin m (the sweep's largest offset) and the direction travel along
        mode.update(direction=direction, margin=max(abs(float(spec["range"][0])), abs(float(spec["range"][1]))))
    return {"dx": v if "x" in direction else 0, "dy": v if "y" in direction else 0, **mode}


def crop_frame(p: dict, height: int, width: int) -> np.ndarray | None:
    """A crop-mode shift (Zhang 2019) first enlarges the image about its centre so that a window of the
    original size fits at every offset of the sweep: by (S − 1 + 2m) / (S − 1) per axis (pixel centres)."""
    if p.get("mode") != "crop":
        return None
    m = float(p["margin"])
    return np.diag([(width - 1 + 2 * m) / (width - 1), (height - 1 + 2 * m) / (height - 1), 1.0])


def shift_group(p: dict) -> str:
    """Shifts by whole even, whole odd and sub-pixel offsets apart: a stride-2 layer is exactly
    equivariant only to shifts by a multiple of 2 (Zhang 2019)."""
    offsets = [float(p["dx"]), float(p["dy"])]
    mode = "" if p.get("mode", "fill") == "fill" else f"{p['mode']} "
    if any(o != round(o) for o in offsets):
        return f"{mode}shift (sub-pixel)"
    return f"{mode}shift (odd px)" if any(round(o) % 2 for o in offsets) else f"{mode}shift (even px)"

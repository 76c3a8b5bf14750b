"""What every attribution method is: a ``Method`` that turns a batch into a ``MethodResult``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convlens.errors import InputError


def normalize_map(heatmap: np.ndarray) -> tuple[np.ndarray, bool]:
    """Scale a (H, W) map to [0, 1] by its maximum; an all-zero map stays zero and is flagged.

    Returns (map, is_all_zero). Never divides by zero, never produces NaN.
    """
    heatmap = np.nan_to_num(np.asarray(heatmap, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(heatmap.max()) if heatmap.size else 0.0
    if peak <= 0.0:
        return np.zeros_like(heatmap), True
    return np.clip(heatmap / peak, 0.0, 1.0), False


@dataclass
class MethodResult:
    """One method's answer for a batch: maps (B, H, W) float32 at input resolution, raw form."""

    maps: np.ndarray
    raw: np.ndarray
    signed: bool = False
    info: dict = field(default_factory=dict)  # method-specific diagnostics (IG: completeness delta)


CHANNEL_REDUCTIONS = {
    "abs_max": lambda a: np.abs(a).max(axis=-1),
    "abs_sum": lambda a: np.abs(a).sum(axis=-1),
    "sum": lambda a: a.sum(axis=-1),
}


def pixel_result(raw: np.ndarray, reduce: str, info: dict | None = None) -> MethodResult:
    if reduce not in CHANNEL_REDUCTIONS:
        raise InputError(f"reduce: {reduce!r} is not one of {', '.join(CHANNEL_REDUCTIONS)}")
    maps = CHANNEL_REDUCTIONS[reduce](raw).astype(np.float32)
    return MethodResult(maps, raw.astype(np.float32), signed=reduce == "sum", info=info or {})


class Method:
    """An attribution method: ``run(context)`` returns a MethodResult for ``context``'s batch.

    Subclass it for a method of your own (``name``, ``defaults``, ``run``); an Explainer takes
    instances as well as registry names. ``requires`` names the methods whose results it reuses;
    ``uses_cam_layer`` says it needs the CAM layer.
    """

    name = ""
    defaults: dict = {}
    requires: tuple[str, ...] = ()
    uses_cam_layer = False

    def run(self, context) -> MethodResult:
        raise NotImplementedError

"""What several stages share: choosing the heatmap methods that apply, and file names for layers."""

from __future__ import annotations

from convlens.attribution.cams import cam_dense
from convlens.attribution.registry import METHODS
from convlens.config import sanitize_id
from convlens.errors import InputError

TILE_PX = 28  # a feature map's display size in grids: small maps enlarged, large ones shrunk (to 28-56 px)


def layer_file(layer: str) -> str:
    """A layer path as a file-name part: nested paths joined by '__', other unsafe characters '_'."""
    return sanitize_id(layer.replace("/", "__"))


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

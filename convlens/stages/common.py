"""What several stages share: the Explainer of the heatmap methods that apply, and file names for layers."""

from __future__ import annotations

from convlens.attribution.explainer import Explainer
from convlens.attribution.registry import METHODS
from convlens.config import sanitize_id

TILE_PX = 28  # a feature map's display size in grids: small maps enlarged, large ones shrunk (to 28-56 px)


def layer_file(layer: str) -> str:
    """A layer path as a file-name part: nested paths joined by '__', other unsafe characters '_'."""
    return sanitize_id(layer.replace("/", "__"))


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


def subset_line(stage: str, used: int, available: int | None, key: str, wanted: int, unreadable=()) -> str:
    """``<stage>: N of M images (why fewer: ...)``: how many of the ``available`` images a stage that
    takes the first ``wanted`` (config ``key``) used, and why fewer: the key, too few images, or
    unreadable ones (named). Logged by the stage and shown in the report's text. ``available`` None:
    more than ``wanted`` (``N of the study's images``; the job need not rerun when the study grows)."""
    reasons = []
    if available is None or wanted < available:
        reasons.append(f"{key} is {wanted}")
    elif wanted > available:
        reasons.append(f"{key} is {wanted} but there are only {available}")
    if unreadable:
        shown = ", ".join(list(unreadable)[:5]) + (", ..." if len(unreadable) > 5 else "")
        reasons.append(f"{len(unreadable)} unreadable: {shown}")
    if available is None:
        return f"{stage}: {used} of the study's images (why fewer: {'; '.join(reasons)})"
    why = f" (why fewer: {'; '.join(reasons)})" if used < available or unreadable else ""
    return f"{stage}: {used} of {available} images{why}"

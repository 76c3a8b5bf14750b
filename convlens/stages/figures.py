"""An exemplar's figures (numpy/Pillow) from its raw.npz: inputs, feature-map grids, heatmap overlays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from convlens import activations as acts_mod
from convlens import render
from convlens.attribution.base import normalize_map
from convlens.attribution.cams import SHEET_METHOD
from convlens.errors import InputError
from convlens.stages.common import TILE_PX, layer_file
from convlens.stages.files import write_json, write_png

# Where the report prints an exemplar's pictures (reports/templates/report.css and the image sheet's
# columns, sections/image_sheet.html.j2): their colour-bar labels are drawn to print at render.BAR_FONT_PT.
PAGE_MM = 182  # the portrait page's printable width (A4 less 14 mm margins): the sheet table's width
CELL_MAX_MM = {"cell-input": 22, "cell-act": 26, "cell-first": 48}  # the images' CSS max-width
CELL_PAD_MM = 1.4  # a sheet cell's padding (2pt each side)
SHEET_SHARE = 0.77  # the share of the table the picture columns split (the rest: transform, prediction)
HEATMAP_SHEET_HEIGHT_MM = 14  # div.heatmap-sheet img.cell-input: the printed height of a heatmap


def sheet_widths_mm(sheet_layers: list[str], first: str) -> dict[str, float]:
    """The printed width (mm) of each picture column of an image's sheet: the template's fixed columns
    (a unit each, the full first conv layer two) capped at the images' CSS max-width."""
    units = 2 + len(sheet_layers) + (1 if first in sheet_layers else 0)
    unit = SHEET_SHARE * PAGE_MM / units - CELL_PAD_MM
    return {
        "cell-input": min(CELL_MAX_MM["cell-input"], unit),
        "cell-act": min(CELL_MAX_MM["cell-act"], unit),
        "cell-first": min(CELL_MAX_MM["cell-first"], 2 * unit + CELL_PAD_MM),
    }


def render_image(raw_npz: str, summary_json: str, figures_dir: str, sheet_json: str, sheet_layers: list[str]) -> None:
    """Numpy/Pillow figures for one image: inputs, activation grids, Grad-CAM overlays; sheet.json.

    Every transform row uses the channels chosen (and the display scaling computed) on the
    untransformed image by the analysis step (``channels_<j>``, ``display_<j>`` in raw.npz): the
    first conv layer in full, deeper layers by their top_k.
    """
    summary = json.loads(Path(summary_json).read_text())
    if summary.get("error"):
        raise InputError(summary["error"])
    first = summary["conv_layers"][0]
    unknown = [name for name in sheet_layers if name not in summary["layers"]]
    if unknown:
        raise InputError(
            f"config.report.sheet_layers (or models.*.sheet_layers): {', '.join(unknown)} "
            "not among the model's conv and "
            f"pooling layers ({', '.join(summary['layers'])})"
        )
    sheet_layers = sheet_layers or acts_mod.default_sheet_layers(summary["conv_layers"])
    out_dir = Path(figures_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with np.load(raw_npz, allow_pickle=False) as raw:
        inputs = raw["inputs"].astype(np.float32)
        names = [str(n) for n in raw["transforms"]]
        layers = [str(n) for n in raw["layers"]]
        cam_up = raw["cam_up"]
        display_px = max(96, inputs.shape[1])
        printed = sheet_widths_mm(sheet_layers, first)
        for k, t in enumerate(names):
            rgb = render.to_rgb_uint8(inputs[k])
            write_png(render.upscale(rgb, display_px), out_dir / f"input_{t}.png")
            heat, _ = normalize_map(cam_up[k])
            picture = render.upscale(render.overlay(rgb, heat), display_px)
            write_png(
                heat_bar(picture, float(np.max(cam_up[k])), False, printed["cell-input"]),
                out_dir / f"{SHEET_METHOD}_{t}.png",
            )
        methods = [str(m) for m in raw["methods"]] if "methods" in raw else []
        heat_files = {
            m: draw_heatmaps(raw[f"heat_{j}"], inputs, names, m, display_px, out_dir) for j, m in enumerate(methods)
        }
        layer_files: dict[str, dict[str, str]] = {}
        shown_channels: dict[str, list[int]] = {}
        for j, layer in enumerate(layers):
            channels = raw[f"channels_{j}"]
            where = {int(ch): i for i, ch in enumerate(raw[f"act_channels_{j}"])}
            maps = raw[f"act_{j}"][..., [where[int(ch)] for ch in channels]].astype(np.float32)  # (T, h, w, drawn)
            mean, std = raw[f"display_{j}"]
            layer_files[layer] = {}
            for k, t in enumerate(names):
                shown = acts_mod.to_display(maps[k], mean, std)  # (h, w, n)
                tiles = np.stack([render.fit_tile(shown[..., i], TILE_PX) for i in range(len(channels))])
                cols = 16 if len(channels) > 32 else 8 if len(channels) > 8 else min(4, len(channels))
                fname = f"act_{layer_file(layer)}_{t}.png"
                shown_mm = printed["cell-first" if layer == first else "cell-act"]
                write_png(
                    render.with_colour_bar(
                        render.grid(tiles, cols=cols), render.GREY_SCALE, render.ACTIVATION_LABELS, shown_mm
                    ),
                    out_dir / fname,
                )
                layer_files[layer][t] = fname
            shown_channels[layer] = [int(ch) for ch in channels]
    sheet = {
        "image": summary["image"],
        "transforms": names,
        "sheet_layers": sheet_layers,
        "layers": layers,
        "first_conv": first,
        "inputs": {t: f"input_{t}.png" for t in names},
        SHEET_METHOD: {t: f"{SHEET_METHOD}_{t}.png" for t in names},
        "activations": layer_files,
        "channels": shown_channels,
        "methods": methods,
        "heatmaps": heat_files,
    }
    write_json(sheet_json, sheet)


def draw_heatmaps(
    maps: np.ndarray, inputs: np.ndarray, names: list[str], method: str, display_px: int, out_dir: Path
) -> dict[str, str]:
    """One method's map over each transformed input: jet for maps >= 0, blue-red for signed maps
    (when any row has a negative part); each row scaled by its own largest magnitude, which its colour
    bar names."""
    signed = bool((maps < -1e-12 * max(1e-30, float(np.abs(maps).max()))).any())
    files = {}
    for k, t in enumerate(names):
        if signed:
            peak = float(np.abs(maps[k]).max())
            picture = render.signed_overlay(inputs[k], maps[k] / peak if peak > 0 else maps[k])
        else:
            peak = max(0.0, float(maps[k].max()))
            picture = render.overlay(inputs[k], normalize_map(maps[k])[0])
        files[t] = f"heat_{method}_{t}.png"
        picture = render.upscale(picture, display_px)
        printed = render.printed_width_at_height(picture.shape[1], picture.shape[0], HEATMAP_SHEET_HEIGHT_MM)
        write_png(heat_bar(picture, peak, signed, printed), out_dir / files[t])
    return files


def heat_bar(picture: np.ndarray, peak: float, signed: bool, printed_mm: float | None = None) -> np.ndarray:
    """A heatmap picture with its colour bar: 0 to the map's peak (jet), or -peak, 0, +peak (blue-red);
    ``printed_mm``: the width the report prints it at (the labels print at render.BAR_FONT_PT)."""
    if signed:
        labels = (render.value_label(-peak), "0", render.value_label(peak))
        return render.with_colour_bar(picture, render.DIVERGING_SCALE, labels, printed_mm)
    return render.with_colour_bar(picture, render.JET_SCALE, ("0", render.value_label(peak)), printed_mm)

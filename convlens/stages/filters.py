"""Filters, part of rule model_extras: first-layer kernels and filter patterns for chosen layers."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from convlens import activations as acts_mod
from convlens import featviz, render
from convlens.core.layers import check_spatial, conv_layers, find_layer
from convlens.core.setup import open_model
from convlens.errors import InputError
from convlens.models import ModelInfo
from convlens.stages.common import layer_file
from convlens.stages.files import write_json, write_png
from convlens.stages.run import LOG_FILE_ONLY, Progress, log

FILTER_IMAGE_PX = 128  # default side of filter-pattern images: larger inputs cost time, add little


def filters(model_path: str, info_json: str, cfg: dict, seed: int, threads: int, out_dir: str, out_json: str) -> None:
    """First-layer kernel grid and gradient-ascent patterns for chosen layers."""
    model, _ = open_model(model_path, threads)
    info = ModelInfo.load(info_json)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    convs = conv_layers(model)
    if not convs:  # load_model refuses such a model; a model file replaced since then ends here
        raise InputError(f"model {info.name}: no convolution layer, so no kernels or filter patterns to draw")
    first = find_layer(model, convs[0])
    kernels = first.get_weights()[0]
    write_png(render.kernel_grid(kernels), out / "kernels.png")
    fcfg = cfg["filters"]
    layers = fcfg["layers"] or acts_mod.default_sheet_layers(convs)
    for layer in layers:
        check_spatial(model, layer, f"config.filters.layers (or config.models.{info.name}.filter_layers)")
    h, w, c = info.input_shape
    side = fcfg["image_size"] or min(h, FILTER_IMAGE_PX)
    shape = (side, side if h == w else max(1, round(w * side / h)), c)
    result = {
        "kernels": "kernels.png",
        "kernel_layer": convs[0],
        "kernel_shape": list(kernels.shape),
        "image_shape": list(shape),
        "layers": [],
    }
    progress = Progress(
        "filter patterns: layer passes (plain, regularized)", len(layers) * (2 if fcfg["regularized"]["steps"] else 1)
    )
    for i, layer in enumerate(layers):
        n_channels = int(find_layer(model, layer).output.shape[-1])
        chosen = list(range(min(fcfg["n_filters"], n_channels)))
        t0 = time.time()
        try:
            res = featviz.visualize(
                model,
                layer,
                chosen,
                shape,
                info.preprocess,
                steps=fcfg["steps"],
                lr=fcfg["step_size"],
                seed=seed + i,
                **featviz.PRESETS["plain"],
            )
        except InputError as exc:
            raise InputError(f"config.filters.image_size: {exc}") from None
        gain = res["objective"] - res["objective_start"]
        log.info(
            "%s: %d filters in %.1f s; mean pre-activation %.3f -> %.3f",
            layer,
            len(chosen),
            time.time() - t0,
            float(res["objective_start"].mean()),
            float(res["objective"].mean()),
            extra=LOG_FILE_ONLY,  # the console gets the layer passes' progress line
        )
        pats = np.stack([render.upscale(render.pattern_to_uint8(p), 64) for p in res["images"]])
        fname = f"patterns_{layer_file(layer)}.png"
        write_png(render.grid(pats, cols=min(8, len(pats)), pad=2), out / fname)
        progress.advance()
        entry = {
            "layer": layer,
            "file": fname,
            "filters": chosen,
            "objective_start": res["objective_start"],
            "objective_end": res["objective"],
            "improved": int((gain > 0).sum()),
        }
        if fcfg["regularized"]["steps"]:
            entry["regularized"] = regularized_patterns(
                model, layer, chosen, shape, info.preprocess, fcfg["regularized"], seed + i, res["images"], out
            )
            progress.advance()
        result["layers"].append(entry)
    write_json(out_json, result)


def regularized_patterns(
    model,
    layer: str,
    channels: list[int],
    shape,
    preprocess_mode: str,
    reg: dict,
    seed: int,
    plain: np.ndarray,
    out: Path,
) -> dict:
    """Regularized feature visualization of the same filters (featviz.visualize) and the filters'
    mean pre-activation on four kinds of image: uniform noise, the plain pattern clipped to the
    valid pixel range, the plain pattern as drawn (min-max scaled), the regularized pattern."""
    t0 = time.time()
    res = featviz.visualize(
        model,
        layer,
        channels,
        shape,
        preprocess_mode,
        objective="channel",
        param=reg["param"],
        steps=reg["steps"],
        lr=reg["lr"],
        jitter=min(reg["jitter"], min(shape[:2]) - 1),
        scales=tuple(reg["scales"]),
        rotate_deg=reg["rotate_deg"],
        tv_weight=reg["tv_weight"],
        blur_every=reg["blur_every"],
        seed=seed,
    )
    noise = np.random.default_rng(seed).random((len(channels),) + tuple(shape)).astype(np.float32)
    drawn = np.stack([render.pattern_to_uint8(p)[..., : shape[2]] for p in plain]).astype(np.float32) / 255.0

    def measured(images):
        return featviz.objective_values(model, layer, channels, images, preprocess_mode)

    values = {
        "noise": measured(noise),
        "plain_clipped": measured(np.clip(plain, 0.0, 1.0)),
        "plain_drawn": measured(drawn),
        "regularized": res["objective"],
    }
    fname = f"regularized_{layer_file(layer)}.png"
    pats = np.stack([render.upscale(render.to_rgb_uint8(p), 64) for p in res["images"]])
    write_png(render.grid(pats, cols=min(8, len(pats)), pad=2), out / fname)
    means = {k: float(np.mean(v)) for k, v in values.items()}
    log.info(
        "%s: regularized patterns in %.1f s; mean pre-activation noise %.3f, plain clipped %.3f, "
        "plain drawn %.3f, regularized %.3f",
        layer,
        time.time() - t0,
        *means.values(),
        extra=LOG_FILE_ONLY,
    )
    return {
        "file": fname,
        "mean": means,
        "beats": {k: int((values["regularized"] > v).sum()) for k, v in values.items() if k != "regularized"},
    }

"""Stage of rule fit_channel_maps: the equivariance ladder's channel maps of one model, fit on the
held-apart fit set (sensitivity.ladder).

The fit images go through the model in chunks with every transform; each chunk's maps are reduced
to the C×C sums of every layer × geometric transform and dropped, so memory holds one chunk of maps
and the sums. Writes the maps (npz), the first conv layer's permutation per transform (CSV) and the
figure of which filter becomes which under each flip and 90° rotation.
"""

from __future__ import annotations

import numpy as np

from convlens.core.layers import find_layer
from convlens.errors import InputError
from convlens.render import grid, upscale
from convlens.sensitivity import ladder, photometric
from convlens.sensitivity.analyzer import Analyzer
from convlens.stages.analysis import Analysis
from convlens.stages.files import savez, write_csv, write_png
from convlens.stages.run import Progress, log
from convlens.transform_labels import label_ascii


def accumulate(study, activations: list[np.ndarray], n_images: int, sums: list[list]) -> None:
    """Add a chunk's pairs to ``sums[j][t]`` (None for a transform that is not fitted).

    activations: per layer (n_images * T, h, w, C), image-major as the Analyzer returns them.
    """
    n_t = len(study.transforms)
    for j, act in enumerate(activations):
        for t, s in enumerate(sums[j]):
            if s is None:
                continue
            for i in range(n_images):
                s.add(*ladder.expected_and_got(act[i * n_t], act[i * n_t + t], study.samplers[j][t]))


def fit_channel_maps(model_path: str, info_json: str, images: list[dict], cfg: dict, threads: int, out: dict) -> None:
    """Fit the maps on ``images`` (the fit set) and write out["maps"] (npz), out["table"] (CSV), out["figure"] (PNG)."""
    analysis = Analysis(model_path, info_json, cfg, threads)
    study = analysis.study
    section = cfg["equivariance"]
    analyzer = Analyzer(analysis.model, analysis.layers, analysis.info.preprocess, warps=study, maps=True)
    channels = [int(find_layer(analysis.model, p).output.shape[-1]) for p in analysis.layers]
    sums = [[ladder.PairSums(c) if g else None for g in study.geometric] for c in channels]
    fitted, cache = [], {}
    progress = Progress("fit images read", len(images))
    per_call = max(1, cfg["batch_size"] // analysis.n_t)  # batch_size rows a call: the fit needs no CKA minibatch
    for start in range(0, len(images), per_call):
        loaded, pixels, failed = analysis._read(images[start : start + per_call], cache)
        for _entry, error in failed:
            log.error("fit set: %s", error)
        if loaded:
            ids = [item.entry["id"] for item in loaded]
            seeds = photometric.image_seeds(analysis.seed, ids)
            result = analyzer.run(pixels, analysis.n_t, seeds=seeds)
            accumulate(study, result["activations"], len(loaded), sums)
            fitted += ids
        progress.advance(len(loaded) + len(failed))
    if not fitted:
        raise InputError("equivariance.fit_images: no readable image in the fit set")
    maps = ladder.fit_maps(analysis.layers, sums, float(section["ridge_lambda"]), fitted)
    savez(out["maps"], transforms=np.array([t.name for t in study.transforms], dtype=str), **maps.arrays())
    first = analysis.layers.index(analysis.conv_layers[0]) if analysis.conv_layers else None
    write_csv(out["table"], permutation_rows(study, maps, first), ["transform", "layer", "channel", "source", "scale"])
    write_png(filter_pairs(analysis.model, study, maps, first), out["figure"])
    log.info(
        "channel maps fit on %d images (%d pixels per layer × transform at the first layer)",
        len(fitted),
        next((s.count for s in sums[0] if s is not None), 0) if sums else 0,
    )


def grid_turns(study) -> list[int]:
    """The transforms that map the pixel grid onto itself up to a translation (flips, 90° turns)."""
    out = []
    for t, m in enumerate(study.matrices):
        part = m[:2, :2]
        if study.geometric[t] and not np.allclose(part, np.eye(2)) and np.allclose(part, np.round(part), atol=1e-9):
            if np.allclose(np.abs(np.round(part)).sum(axis=0), 1):
                out.append(t)
    return out


def permutation_rows(study, maps: ladder.ChannelMaps, first: int | None) -> list[dict]:
    """The first conv layer's fitted permutation: per geometric transform and channel j, its source."""
    if first is None:
        return []
    rows = []
    for t, tr in enumerate(study.transforms):
        if maps.fitted[t]:
            for j, (i, s) in enumerate(zip(maps.source[first][t], maps.scale[first][t], strict=True)):
                rows.append(
                    {
                        "transform": tr.name,
                        "layer": maps.layers[first],
                        "channel": j,
                        "source": int(i),
                        "scale": round(float(s), 5),
                    }
                )
    return rows


def filter_tiles(kernel: np.ndarray, size: int = 24) -> np.ndarray:
    """(C, size', size', 3) uint8: each filter (k, k, cin, C) as an image, scaled to its own range."""
    k = np.moveaxis(kernel, -1, 0).astype(np.float64)
    k = k if k.shape[-1] == 3 else np.repeat(k.mean(axis=-1, keepdims=True), 3, axis=-1)
    low = k.min(axis=(1, 2, 3), keepdims=True)
    span = np.maximum(k.max(axis=(1, 2, 3), keepdims=True) - low, 1e-12)
    tiles = ((k - low) / span * 255).round().astype(np.uint8)
    return np.stack([upscale(t, size) for t in tiles])


def labelled(block: np.ndarray, text: str, height: int = 14) -> np.ndarray:
    """``block`` (h, w, 3) uint8 under a white strip with ``text`` (Pillow's default font)."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (block.shape[1], height), "white")
    ImageDraw.Draw(strip).text((2, 1), text, fill="black")
    return np.concatenate([np.asarray(strip, np.uint8), block], axis=0)


def filter_pairs(model, study, maps: ladder.ChannelMaps, first: int | None, per_row: int = 8) -> np.ndarray:
    """One block per flip / 90° rotation: for each channel j, filter source_j beside filter j (φ(Tx)_j
    ≈ s_j T φ(x)_source_j), ``per_row`` pairs a row. A blank tile when there is no conv layer."""
    turns = grid_turns(study)
    if first is None or not turns:
        return np.full((8, 8, 3), 255, np.uint8)
    tiles = filter_tiles(find_layer(model, maps.layers[first]).get_weights()[0])
    narrow = np.full((tiles.shape[1], 2, 3), 255, np.uint8)
    blocks = []
    for t in turns:
        pairs = [np.concatenate([tiles[i], narrow, tiles[j]], axis=1) for j, i in enumerate(maps.source[first][t])]
        block = grid(np.stack(pairs), cols=min(per_row, len(pairs)), pad=tiles.shape[2] // 2)
        blocks.append(labelled(block, f"{label_ascii(study.transforms[t].name)}: filter source -> filter j"))
    return grid(np.stack(blocks), cols=1, pad=8)

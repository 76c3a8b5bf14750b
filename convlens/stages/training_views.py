"""Training views, part of rule model_extras: evolution strips from the saved checkpoints, the embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convlens import activations as acts_mod
from convlens import embedding, render
from convlens.core.layers import check_spatial, conv_layers
from convlens.core.setup import open_model
from convlens.data import Dataset
from convlens.errors import InputError
from convlens.evolution import checkpoint_epoch, checkpoint_strip
from convlens.models import ModelInfo
from convlens.stages.common import TILE_PX, layer_file, subset_line
from convlens.stages.files import write_json, write_png
from convlens.stages.run import Progress, log

EVOLUTION_MAP_MM = 26  # img.cell-act's CSS max-width: the evolution table prints each feature-map grid this wide


def training_views(
    model_path: str,
    info_json: str,
    checkpoints_dir: str,
    dataset_npz: str,
    evolution: dict,
    top_k: int,
    seed: int,
    threads: int,
    out: dict,
) -> None:
    """Per saved checkpoint: the first-layer kernels and chosen layers' feature maps of one test image
    (Zeiler & Fergus 2014, Fig. 4); the penultimate layer's features of the test set in 2-D."""
    model, _ = open_model(model_path, threads)
    info = ModelInfo.load(info_json)
    ds = Dataset.load(dataset_npz)
    figures = Path(out["figures"])
    figures.mkdir(parents=True, exist_ok=True)
    files = sorted(
        (p for p in Path(checkpoints_dir).glob("epoch_*.weights.h5") if checkpoint_epoch(p)), key=checkpoint_epoch
    )
    if not files:
        raise InputError(f"{checkpoints_dir}: no checkpoints (epoch_NNN.weights.h5); retrain the model")
    convs = conv_layers(model)
    layers = evolution["layers"] or list(dict.fromkeys([convs[0], convs[-1]]))
    for layer in layers:
        check_spatial(model, layer, "config.evolution.layers")
    image = ds.x_test[evolution["image"]].astype("float32") / 255.0
    epochs = [checkpoint_epoch(f) for f in files]
    kernels, maps = {}, {}
    progress = Progress("training views: layers through every checkpoint", len(layers))
    for layer in layers:
        strip = checkpoint_strip(model, files, image, layer, info.preprocess)
        final = strip[-1]["activations"]
        channels = acts_mod.top_channels(final, top_k)
        maps[layer] = {}
        for entry in strip:
            tag = f"e{entry['epoch']:03d}"
            if tag not in kernels:
                kernels[tag] = f"kernels_{tag}.png"
                write_png(render.kernel_grid(entry["kernels"]), figures / kernels[tag])
            act = entry["activations"]
            mean, std = acts_mod.display_stats(act)
            shown = acts_mod.to_display(act[..., channels], mean[channels], std[channels])
            tiles = np.stack([render.fit_tile(shown[..., i], TILE_PX) for i in range(len(channels))])
            maps[layer][tag] = f"act_{layer_file(layer)}_{tag}.png"
            write_png(
                render.with_colour_bar(
                    render.grid(tiles, cols=min(8, len(tiles))),
                    render.GREY_SCALE,
                    render.ACTIVATION_LABELS,
                    EVOLUTION_MAP_MM,
                ),
                figures / maps[layer][tag],
            )
        progress.advance()
    n = min(evolution["embedding_points"], len(ds.x_test))
    subset = subset_line("embedding", n, len(ds.x_test), "evolution.embedding_points", evolution["embedding_points"])
    log.info("%s (of the test split)", subset)
    features, predicted = embedding.penultimate_features(
        model, ds.x_test[:n].astype("float32") / 255.0, info.preprocess
    )
    coords, method = embedding.project_2d(features, seed=seed)
    labels = ds.y_test[:n]
    embedding.write_embedding_png(
        coords,
        labels,
        predicted,
        str(figures / "embedding.png"),
        ds.class_names,
        f"{embedding.last_dense_layer(model)} input, {method.upper()}",
    )
    log.info(
        "evolution strips for %d checkpoints (epochs %s), layers %s; embedding of %d images by %s",
        len(files),
        epochs,
        ", ".join(layers),
        n,
        method,
    )
    write_json(
        out["manifest"],
        {
            "epochs": epochs,
            "checkpoints": [f.name for f in files],
            "layers": layers,
            "image": evolution["image"],
            "image_label": ds.class_names[int(ds.y_test[evolution["image"]])],
            "kernels": kernels,
            "maps": maps,
            "embedding": {
                "file": "embedding.png",
                "method": method,
                "points": n,
                "subset": subset,
                "feature_layer": embedding.last_dense_layer(model),
                "features": int(features.shape[1]),
                "misclassified": int((predicted != labels).sum()),
            },
        },
    )

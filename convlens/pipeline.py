"""Stage functions: one per workflow rule, with file I/O at the edges.

The ``scripts/`` entry points only unpack ``snakemake.input/output/params`` and call these, so every
stage can also be run and tested without Snakemake.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convlens.config import sanitize_id
from convlens.errors import InputError

log = logging.getLogger("convlens")


def setup_logging(log_path: str | None) -> None:
    """Log to the rule's log file (and stderr), with timestamps."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(message)s")


def run_stage(log_path: str | None, stage, *args, **kwargs) -> None:
    """Run a stage for a Snakemake script: log to the rule's log; a user error ends in one line.

    InputError (bad input: unreadable file, impossible value) is reported as its message alone and
    the job fails; any other exception keeps its traceback, since that is a bug to report.
    """
    setup_logging(log_path)
    try:
        stage(*args, **kwargs)
    except InputError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
    except BaseException as exc:
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            log.exception("unexpected failure (a bug: please report it with this log)")
        raise


def _write_json(path, obj) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".part")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default))
    os.replace(tmp, path)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj)}")


def _write_csv(path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Rows as CSV through a temporary file; ``columns`` default to the first row's keys."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".part")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns or (list(rows[0]) if rows else []))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _savez(path, **arrays) -> None:
    """np.savez through a temporary file, so an interrupted write never looks finished."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path) + ".part.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# data and models


def make_dataset(spec: dict, seed: int, out_npz: str) -> None:
    from convlens.data import build_dataset

    ds = build_dataset(spec, seed)
    log.info("dataset %s: %d train, %d test images of %s, classes %s", spec["kind"], len(ds.x_train),
             len(ds.x_test), "x".join(map(str, ds.x_train.shape[1:])), ", ".join(ds.class_names))
    ds.save(out_npz + ".part.npz")
    os.replace(out_npz + ".part.npz", out_npz)


def checkpoint_epochs(wanted: list[int], epochs: int) -> list[int]:
    """The configured checkpoint epochs that training reaches, and always the last one."""
    return sorted({e for e in wanted if e <= epochs} | {epochs})


def train_model(name: str, spec: dict, dataset_npz: str, seed: int, threads: int, evolution: dict,
                out: dict) -> None:
    """Writes model.keras, info.json, architecture.csv, history.csv, metrics.json; checkpoints at
    the chosen epochs and TensorBoard event files (scalars, first-layer kernels and feature maps)."""
    from convlens import backend, models
    from convlens.data import Dataset
    from convlens.evolution import EpochCheckpoints
    from convlens.tblog import TensorBoardLogger

    backend.configure(threads)
    ds = Dataset.load(dataset_npz)
    epochs = checkpoint_epochs(evolution["epochs"], spec["epochs"])
    if evolution["image"] >= len(ds.x_test):
        raise InputError(f"config.evolution.image: {evolution['image']} is past the end of the test split "
                         f"({len(ds.x_test)} images)")
    image = ds.x_test[evolution["image"]].astype("float32") / 255.0
    for folder in (out["checkpoints"], out["tensorboard"]):
        Path(folder).mkdir(parents=True, exist_ok=True)
    callbacks = [EpochCheckpoints(out["checkpoints"], epochs),
                 TensorBoardLogger(out["tensorboard"], image, models.resolve_preprocess(spec), image_epochs=epochs)]
    t0 = time.time()
    model, history, metrics = models.train(spec, ds, seed, callbacks)
    log.info("trained %s in %.1f s; best epoch %d (val acc %.3f); test accuracy %.3f", name, time.time() - t0,
             metrics["best_epoch"], metrics["best_val_accuracy"], metrics["test_accuracy"])
    _save_model(model, models.ModelInfo(name, "train", list(ds.x_train.shape[1:]), ds.class_names,
                                        models.resolve_preprocess(spec)), out)
    _write_csv(out["history"], history)
    _write_json(out["metrics"], metrics)


def load_model(name: str, spec: dict, threads: int, out: dict) -> None:
    """Loads (safe mode) or builds the model and saves it as model.keras with info.json."""
    from convlens import backend, models

    backend.configure(threads)
    model = models.load(spec)
    shape = [int(d) for d in model.inputs[0].shape[1:]]
    if None in shape or len(shape) != 3:
        raise InputError(f"config.models.{name}: input shape {shape} must be fixed (H, W, C)")
    n_classes = int(model.outputs[0].shape[-1])
    names = spec.get("class_names") or [f"class_{i}" for i in range(n_classes)]
    if len(names) != n_classes:
        raise InputError(f"config.models.{name}.class_names: {len(names)} names for a model with {n_classes} outputs")
    _save_model(model, models.ModelInfo(name, "load", shape, names, models.resolve_preprocess(spec)), out)


def _save_model(model, info, out: dict) -> None:
    from convlens import models

    tmp = out["model"] + ".part.keras"
    model.save(tmp)
    os.replace(tmp, out["model"])
    info.save(out["info"])
    _write_csv(out["architecture"], models.describe(model))


def open_model(model_path: str, threads: int | None = None):
    """Configure TensorFlow and load a saved model in safe mode."""
    import keras

    from convlens import backend

    devices = backend.configure(threads)
    return keras.saving.load_model(model_path, compile=False, safe_mode=True), devices


# ---------------------------------------------------------------------------------------------
# transforms


def transform_table(transform_specs: list[dict], info_json: str, out_csv: str) -> None:
    """The study's transforms with their forward matrices at the model's input size."""
    from convlens.models import ModelInfo
    from convlens.transforms import build_transforms

    h, w = ModelInfo.load(info_json).input_shape[:2]
    rows = []
    for t in build_transforms(transform_specs):
        m = t.matrix(h, w)
        rows.append({"transform": t.name, "kind": t.kind, "param": t.param,
                     "matrix": ";".join(" ".join(f"{v:.6g}" for v in row) for row in m)})
    _write_csv(out_csv, rows)


# ---------------------------------------------------------------------------------------------
# per-shard analysis


def load_input_image(entry: dict, info, datasets_cache: dict) -> tuple[np.ndarray, str | None, list[str]]:
    """An image as the model sees it: (H, W, C) uint8 at the model's input size, its true class name
    (from its dataset; None for image files), notes on conversions."""
    from convlens.data import Dataset, read_image, resize

    h, w, c = info.input_shape
    notes = []
    label = None
    if entry.get("dataset_npz"):
        npz = entry["dataset_npz"]
        if npz not in datasets_cache:
            datasets_cache[npz] = Dataset.load(npz)
        ds = datasets_cache[npz]
        if entry["index"] >= len(ds.x_test):
            raise InputError(f"{entry['dataset']} test[{entry['index']}]: the test split has only {len(ds.x_test)} images")
        image = ds.x_test[entry["index"]]
        label = ds.class_names[int(ds.y_test[entry["index"]])]
        if image.shape[2] != c:
            image = np.repeat(image, 3, axis=2) if c == 3 else image.mean(axis=2, keepdims=True).astype(np.uint8)
            notes.append(f"converted from {ds.x_test.shape[3]} to {c} channels")
    else:
        image, note = read_image(entry["path"], channels=c)
        if note:
            notes.append(note)
    if image.shape[:2] != (h, w):
        notes.append(f"resized from {image.shape[1]}x{image.shape[0]} to {w}x{h}")
        image = resize(image, (h, w))
    return image, label, notes


def analyze_shard(model_path: str, info_json: str, images: list[dict], cfg: dict, threads: int) -> None:
    """Transforms, activations, predictions, Grad-CAM and sensitivity metrics for a shard of images.

    images: dicts with ``id``, ``path`` or ``dataset_npz`` + ``index``, and output paths ``raw``,
    ``summary`` and ``metrics``. An unreadable image gets a summary with its ``error`` (the render
    step for it then fails, naming the file) while the rest of the shard completes.
    """
    from convlens import attribution, backend, sensitivity, transforms as tr
    from convlens.models import ModelInfo

    t_start = time.time()
    model, devices = open_model(model_path, threads)
    if cfg.get("mixed_precision"):
        changed = backend.use_mixed_precision(model)
        log.info("mixed precision: %d layers compute in float16%s", changed,
                 "" if any(":GPU" in d for d in devices) else " (no GPU: on CPU this is slower, not faster)")
    info = ModelInfo.load(info_json)
    h, w, c = info.input_shape
    layers = backend.feature_layers(model)
    cam_layer = cfg["heatmaps"]["layer"] or backend.last_conv_layer(model)
    backend.check_spatial(model, cam_layer, "config.heatmaps.layer (or models.*.heatmap_layer)")
    target_cfg = cfg["heatmaps"]["target"]
    if isinstance(target_cfg, int) and target_cfg >= len(info.class_names):
        raise InputError(f"config.heatmaps.target: class {target_cfg} does not exist ({len(info.class_names)} classes)")
    target_code = {"reference": backend.TARGET_REFERENCE, "predicted": backend.TARGET_PREDICTED}.get(target_cfg, target_cfg)
    # the study's heatmap agreement is for the reference class, whatever class the sheets show
    transforms = tr.build_transforms(cfg["transforms"])
    study = sensitivity.Study.build(transforms, h, w, layers, backend.layer_grids(model, layers), cfg["fill_mode"],
                                    cfg["fill_value"])
    analyzer = backend.Analyzer(model, layers, cam_layer, info.preprocess, cfg["heatmaps"]["score"],
                                reference_cam=target_code != backend.TARGET_REFERENCE, samplers=study.samplers)
    methods, method_notes = heatmap_methods(model, cfg["heatmaps"]["methods"], cam_layer)
    for note in method_notes:
        log.info("%s", note)
    # Grad-CAM comes from the analysis step itself; the Explainer runs the other methods
    explainer = attribution.Explainer(model, [m for m in methods if m != "gradcam"], info.preprocess, cam_layer,
                                      cfg["heatmaps"]["score"], cfg["heatmaps"]["params"], cfg["batch_size"])
    shown = tr.sheet_selection(cfg["transforms"], cfg["sheet_transforms"])
    n_t = len(transforms)
    log.info("model %s: %d layers probed, Grad-CAM at %s, %d transforms (%d drawn), %d images, devices %s",
             info.name, len(layers), cam_layer, n_t, len(shown), len(images), ", ".join(devices))

    cache: dict = {}
    loaded = []
    for entry in images:
        try:
            image, label, notes = load_input_image(entry, info, cache)
        except InputError as exc:
            log.error("%s", exc)
            _write_json(entry["summary"], {"image": entry["id"], "source": entry.get("path"), "error": str(exc)})
            _savez(entry["raw"], error=np.array(str(exc)))
            _write_csv(entry["metrics"], [], sensitivity.COLUMNS)
            continue
        for note in notes:
            log.info("%s: %s", entry["id"], note)
        loaded.append((entry, image, label, notes))

    shard = ShardContext(info, transforms, [t.name in shown for t in transforms], study, layers,
                         backend.conv_layers(model), cam_layer, devices, cfg["activations"], methods, method_notes)
    per_call = max(1, cfg["batch_size"] // n_t)
    t_compute = t_methods = t_metrics = 0.0
    for start in range(0, len(loaded), per_call):
        chunk = loaded[start:start + per_call]
        pixels = np.stack([img for _, img, _, _ in chunk]).astype("float32") / 255.0
        batch = np.repeat(pixels, n_t, axis=0)
        warped = np.asarray(tr.warp(batch, np.tile(study.matrices, (len(chunk), 1, 1)), cfg["fill_mode"],
                                    cfg["fill_value"]))
        t0 = time.time()
        out = analyzer.run(warped, np.full(len(batch), target_code), n_t)
        t_compute += time.time() - t0
        t0 = time.time()
        out["heatmaps"], out["heatmaps_reference"] = _explain(explainer, warped, out, target_code, n_t)
        t_methods += time.time() - t0
        for i, (entry, _, label, notes) in enumerate(chunk):
            rows = slice(i * n_t, (i + 1) * n_t)
            t0 = time.time()
            _save_image_result(shard, entry, warped[rows], {k: _rows(v, rows) for k, v in out.items()}, label, notes)
            t_metrics += time.time() - t0
        log.info("images %d-%d of %d done", start + 1, start + len(chunk), len(loaded))
    log.info("shard done in %.1f s (model step %.1f s, heatmap methods %.1f s, metrics and files %.1f s)",
             time.time() - t_start, t_compute, t_methods, t_metrics)


def heatmap_methods(model, wanted, cam_layer: str) -> tuple[list[str], list[str]]:
    """The attribution methods to run: config ``heatmaps.methods`` (a list, or ``all``: every method
    that applies to the model). Returns (names, notes on methods left out)."""
    from convlens import attribution

    names = list(attribution.METHODS) if wanted == "all" else list(wanted)
    if "cam" not in names:
        return names, []
    try:
        attribution._cam_dense(model, cam_layer)
    except InputError as exc:
        if wanted != "all":
            raise InputError(f"config.heatmaps.methods: {exc}") from None
        names.remove("cam")
        return names, [f"heatmaps.methods all: cam left out ({exc})"]
    return names, []


def _explain(explainer, x: np.ndarray, out: dict, target_code: int, group: int) -> tuple[dict, dict]:
    """Every method's maps (B, H, W) for the sheets' target, and for the reference class (the study's
    heatmap agreement); the same dict when the sheets explain the reference class."""
    from convlens import backend

    def run(code, cam_key):
        maps = {"gradcam": out[cam_key]} if cam_key in out else {}
        if explainer.methods:
            maps.update({name: r.maps for name, r in explainer.explain(x, np.full(len(x), code), group).items()})
        return maps

    sheets = run(target_code, "cam_up")
    if target_code == backend.TARGET_REFERENCE:
        return sheets, sheets
    return sheets, run(backend.TARGET_REFERENCE, "cam_reference_up")


@dataclass
class ShardContext:
    """What every image of a shard shares: the model's facts, the transforms, the layers probed."""

    info: object
    transforms: list
    shown: list[bool]  # per transform: drawn in the sheets (its maps are kept in raw.npz)
    study: object  # sensitivity.Study
    layers: list[str]
    conv_layers: list[str]
    cam_layer: str
    devices: list[str]
    activations: dict  # config activations: top_k, raw_dtype, raw_channels
    methods: list[str]  # heatmap methods, in sheet-column order
    method_notes: list[str]


def _rows(value, rows: slice):
    if isinstance(value, dict):
        return {k: v[rows] for k, v in value.items()}
    return [v[rows] for v in value] if isinstance(value, list) else value[rows]


def _save_image_result(shard: ShardContext, entry: dict, inputs: np.ndarray, out: dict, label: str | None,
                       notes: list[str]) -> None:
    """metrics.csv, raw.npz and summary.json of one image; ``out`` holds only this image's rows.

    raw.npz keeps the rows drawn in the sheets: their inputs, maps (the drawn channels, or all of them
    with ``activations.raw_channels: all``), the drawn channels' display scaling, and the pooled
    reference features; every row enters the metrics.
    """
    from convlens import activations as acts_mod, sensitivity
    from convlens.attribution import normalize_map

    info, probs, targets = shard.info, out["probs"], out["target"]
    label_index = info.class_names.index(label) if label in info.class_names else None
    reference_maps = {m: out["heatmaps_reference"][m] for m in shard.methods}
    stats = sensitivity.LayerStats(out["num"], out["den"], out["pooled"])
    metrics = sensitivity.image_metrics(shard.study, entry["id"], inputs, stats, probs, label_index, reference_maps)
    _write_csv(entry["metrics"], metrics, sensitivity.COLUMNS)
    keep = np.flatnonzero(shard.shown)
    arrays = {"inputs": inputs[keep].astype(np.float16), "matrices": shard.study.matrices[keep],
              "valid": shard.study.valid[keep], "probs": probs[keep], "target": targets[keep],
              "cam": out["cam"][keep], "cam_up": out["cam_up"][keep],
              "transforms": np.array([shard.transforms[k].name for k in keep]), "layers": np.array(shard.layers),
              "methods": np.array(shard.methods, dtype=str)}
    for j, method in enumerate(shard.methods):
        arrays[f"heat_{j}"] = out["heatmaps"][method][keep].astype(np.float32)
    cfg = shard.activations
    for j, (layer, act) in enumerate(zip(shard.layers, out["activations"])):
        # the drawn channels and their display scaling are chosen on the untransformed image
        everything = np.arange(act.shape[-1])
        drawn = everything if layer == shard.conv_layers[0] else acts_mod.top_channels(act[0], cfg["top_k"])
        saved = everything if cfg["raw_channels"] == "all" else drawn
        kept = np.take(act, saved, axis=-1) if len(saved) < act.shape[-1] else act  # channels first: a small copy
        arrays[f"act_{j}"] = (kept if len(keep) == len(kept) else kept[keep]).astype(cfg["raw_dtype"])
        arrays[f"act_channels_{j}"], arrays[f"channels_{j}"] = saved, drawn
        arrays[f"display_{j}"] = np.stack(acts_mod.display_stats(act[0][..., drawn]))
        arrays[f"pooled_{j}"] = stats.pooled[j][0].astype(np.float64)
    _savez(entry["raw"], **arrays)
    ref_class = int(probs[0].argmax())
    rows_out = []
    for k, t in enumerate(shard.transforms):
        pred, target = int(probs[k].argmax()), int(targets[k])
        rows_out.append({"transform": t.name, "kind": t.kind, "param": t.param, "shown": bool(shard.shown[k]),
                         "predicted": pred, "predicted_name": info.class_names[pred], "confidence": float(probs[k, pred]),
                         "target": target, "target_name": info.class_names[target],
                         "target_probability": float(probs[k, target]),
                         "flipped": pred != ref_class, "cam_all_zero": normalize_map(out["cam_up"][k])[1]})
    _write_json(entry["summary"], {
        "image": entry["id"], "source": entry.get("path") or f"{entry.get('dataset')} test[{entry.get('index')}]",
        "label_name": label, "class_names": info.class_names, "cam_layer": shard.cam_layer,
        "layers": shard.layers, "conv_layers": shard.conv_layers, "notes": notes + shard.method_notes,
        "devices": shard.devices, "methods": shard.methods, "transforms": rows_out, "error": None})


def sensitivity_study(images: list[dict], transform_specs: list[dict], out: dict) -> None:
    """The model's study from its images' metrics: tables, plots and findings (see convlens.study).

    images: dicts with ``id``, ``metrics`` and ``raw`` paths. Images whose analysis failed (their
    raw.npz holds an ``error``) are left out with a log line.
    """
    from convlens import study
    from convlens.transforms import build_transforms

    pooled, paths, layers = {}, [], None
    for entry in images:
        with np.load(entry["raw"], allow_pickle=False) as raw:
            if "error" in raw:
                log.warning("%s left out of the study: %s", entry["id"], raw["error"])
                continue
            layers = [str(n) for n in raw["layers"]]
            pooled[entry["id"]] = {layer: raw[f"pooled_{j}"] for j, layer in enumerate(layers)}
        paths.append(entry["metrics"])
    if not paths:
        raise InputError("no image of this model could be analysed; see the analysis logs")
    folder = Path(out["manifest"]).parent
    manifest = study.run_study(paths, pooled, build_transforms(transform_specs), layers, folder, out["figures"])
    _write_json(out["manifest"], manifest)


# ---------------------------------------------------------------------------------------------
# training views: evolution strips from the saved checkpoints, the embedding


def training_views(model_path: str, info_json: str, checkpoints_dir: str, dataset_npz: str, evolution: dict,
                   top_k: int, seed: int, threads: int, out: dict) -> None:
    """Per saved checkpoint: the first-layer kernels and chosen layers' feature maps of one test image
    (Zeiler & Fergus 2014, Fig. 4); the penultimate layer's features of the test set in 2-D."""
    from convlens import activations as acts_mod, backend, embedding, render
    from convlens.data import Dataset, write_png
    from convlens.evolution import checkpoint_epoch, checkpoint_strip
    from convlens.models import ModelInfo

    model, _ = open_model(model_path, threads)
    info = ModelInfo.load(info_json)
    ds = Dataset.load(dataset_npz)
    figures = Path(out["figures"])
    figures.mkdir(parents=True, exist_ok=True)
    files = sorted((p for p in Path(checkpoints_dir).glob("epoch_*.weights.h5") if checkpoint_epoch(p)),
                   key=checkpoint_epoch)
    if not files:
        raise InputError(f"{checkpoints_dir}: no checkpoints (epoch_NNN.weights.h5); retrain the model")
    convs = backend.conv_layers(model)
    layers = evolution["layers"] or list(dict.fromkeys([convs[0], convs[-1]]))
    for layer in layers:
        backend.check_spatial(model, layer, "config.evolution.layers")
    image = ds.x_test[evolution["image"]].astype("float32") / 255.0
    epochs = [checkpoint_epoch(f) for f in files]
    kernels, maps = {}, {}
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
            maps[layer][tag] = f"act_{_layer_file(layer)}_{tag}.png"
            write_png(render.grid(tiles, cols=min(8, len(tiles))), figures / maps[layer][tag])
    n = min(evolution["embedding_points"], len(ds.x_test))
    features, predicted = embedding.penultimate_features(model, ds.x_test[:n].astype("float32") / 255.0,
                                                         info.preprocess)
    coords, method = embedding.project_2d(features, seed=seed)
    labels = ds.y_test[:n]
    embedding.write_embedding_png(coords, labels, predicted, str(figures / "embedding.png"), ds.class_names,
                                  f"{embedding.last_dense_layer(model)} input, {method.upper()}")
    log.info("evolution strips for %d checkpoints (epochs %s), layers %s; embedding of %d images by %s",
             len(files), epochs, ", ".join(layers), n, method)
    _write_json(out["manifest"], {
        "epochs": epochs, "checkpoints": [f.name for f in files], "layers": layers, "image": evolution["image"],
        "image_label": ds.class_names[int(ds.y_test[evolution["image"]])], "kernels": kernels, "maps": maps,
        "embedding": {"file": "embedding.png", "method": method, "points": n,
                      "feature_layer": embedding.last_dense_layer(model), "features": int(features.shape[1]),
                      "misclassified": int((predicted != labels).sum())}})


# ---------------------------------------------------------------------------------------------
# heatmap-method quality


def method_quality(model_path: str, info_json: str, images: list[dict], cfg: dict, seed: int, threads: int,
                   out: dict) -> None:
    """Sanity (cascading weight randomization, Adebayo et al. 2018) and faithfulness (deletion and
    insertion curves, Petsiuk et al. 2018) of every heatmap method on untransformed images.

    Writes quality.json (per method: Spearman and SSIM to the original maps after each randomization
    step, a flag when the maps do not change, deletion and insertion areas beside a random order's),
    quality.csv (one row per method) and two plots.
    """
    from convlens import attribution, backend
    from convlens.models import ModelInfo

    model, _ = open_model(model_path, threads)
    info = ModelInfo.load(info_json)
    hcfg = cfg["heatmaps"]
    figures = Path(out["figures"])
    figures.mkdir(parents=True, exist_ok=True)
    pictures, used, cache = [], [], {}
    for entry in images:
        try:
            pictures.append(load_input_image(entry, info, cache)[0])
            used.append(entry["id"])
        except InputError as exc:
            log.warning("%s left out of the method check: %s", entry["id"], exc)
    if not pictures:
        _write_json(out["json"], {"images": [], "methods": [], "rows": [],
                                  "skipped": "no images (heatmaps.quality_images: 0, or none readable)"})
        _write_csv(out["csv"], [], QUALITY_COLUMNS)
        return
    cam_layer = hcfg["layer"] or backend.last_conv_layer(model)
    methods, notes = heatmap_methods(model, hcfg["methods"], cam_layer)
    x = np.stack(pictures).astype(np.float32) / 255.0
    targets = np.full(len(x), backend.TARGET_PREDICTED)
    common = {"preprocess_mode": info.preprocess, "cam_layer": cam_layer, "score": hcfg["score"],
              "params": hcfg["params"], "max_batch": cfg["batch_size"]}
    t0 = time.time()
    explainer = attribution.Explainer(model, methods, info.preprocess, cam_layer, hcfg["score"], hcfg["params"],
                                      cfg["batch_size"])
    maps = {name: r.maps for name, r in explainer.explain(x, targets).items()}
    faithful = {name: attribution.deletion_insertion(model, x, targets, m, hcfg["quality_steps"], seed=seed,
                                                     preprocess_mode=info.preprocess, max_batch=cfg["batch_size"],
                                                     explainer=explainer)
                for name, m in maps.items()}
    log.info("deletion/insertion for %d methods on %d images in %.1f s", len(methods), len(x), time.time() - t0)
    t0 = time.time()
    # a fresh Explainer per randomized layer (its compiled functions hold weight copies): TensorFlow's
    # retracing warnings about that are expected here
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    sanity = attribution.cascading_randomization(model, x, targets, methods, seed=seed,
                                                 original={name: np.abs(m) for name, m in maps.items()}, **common)
    log.info("cascading randomization over %d layers in %.1f s", len(sanity["layers"]), time.time() - t0)
    random = next(iter(faithful.values()))["random"]
    with warnings.catch_warnings():  # a step whose maps all became constant has no Spearman: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        spearman = {m: np.nanmean(sanity["spearman"][m], axis=1) for m in methods}
        ssim = {m: np.nanmean(sanity["ssim"][m], axis=1) for m in methods}
    rows = []
    for name in methods:
        f = faithful[name]
        rows.append({"method": name, "spearman_randomized": float(spearman[name][-1]),
                     "ssim_randomized": float(ssim[name][-1]),
                     "insensitive": sanity["insensitive"][name],
                     "deletion_auc": float(f["deletion_auc"].mean()), "insertion_auc": float(f["insertion_auc"].mean()),
                     "random_deletion_auc": float(random["deletion_auc"].mean()),
                     "random_insertion_auc": float(random["insertion_auc"].mean())})
    _write_csv(out["csv"], rows, QUALITY_COLUMNS)
    _plot_quality(sanity, spearman, faithful, methods, figures)
    _write_json(out["json"], {"images": used, "methods": methods, "notes": notes, "layers": sanity["layers"],
                              "rows": rows, "spearman": spearman,
                              "steps": hcfg["quality_steps"], "figures": ["randomization.png", "deletion_insertion.png"]})


QUALITY_COLUMNS = ["method", "spearman_randomized", "ssim_randomized", "insensitive", "deletion_auc", "insertion_auc",
                   "random_deletion_auc", "random_insertion_auc"]


def _plot_quality(sanity: dict, spearman: dict, faithful: dict, methods: list[str], figures: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(9, 3.6))
    steps = np.arange(len(sanity["layers"]) + 1)
    for i, m in enumerate(methods):
        ax.plot(steps, np.r_[1.0, spearman[m]], marker="o", ms=3, color=colours(i),
                label=m, ls="--" if sanity["insensitive"][m] else "-")
    ax.set_xticks(steps, ["original"] + [p.rsplit("/", 1)[-1] for p in sanity["layers"]], rotation=50, ha="right",
                  fontsize=7)
    ax.set_ylabel("Spearman to the original map")
    ax.set_title("Cascading randomization of the weights, from the top (Adebayo et al. 2018)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    fig.tight_layout()
    fig.savefig(figures / "randomization.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    any_f = next(iter(faithful.values()))
    for ax, kind in zip(axes, ("deletion", "insertion")):
        for i, m in enumerate(methods):
            ax.plot(any_f["fractions"], faithful[m][kind].mean(axis=0), color=colours(i), lw=1.2, label=m)
        ax.plot(any_f["fractions"], any_f["random"][kind].mean(axis=0), color="black", ls=":", lw=2, label="random")
        ax.set_title(f"{kind}: class probability as pixels are {'removed' if kind == 'deletion' else 'added'}",
                     fontsize=9)
        ax.set_xlabel("fraction of pixels, in the order of the map", fontsize=8)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(figures / "deletion_insertion.png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# per-image figures


TILE_PX = 28  # a feature map's display size in grids: small maps enlarged, large ones shrunk (to 28-56 px)


def _layer_file(layer: str) -> str:
    """A layer path as a file-name part: nested paths joined by '__', other unsafe characters '_'."""
    return sanitize_id(layer.replace("/", "__"))


def render_image(raw_npz: str, summary_json: str, figures_dir: str, sheet_json: str, sheet_layers: list[str]) -> None:
    """Numpy/Pillow figures for one image: inputs, activation grids, Grad-CAM overlays; sheet.json.

    Every transform row uses the channels chosen (and the display scaling computed) on the
    untransformed image by the analysis step (``channels_<j>``, ``display_<j>`` in raw.npz): the
    first conv layer in full, deeper layers by their top_k.
    """
    from convlens import activations as acts_mod, render
    from convlens.attribution import normalize_map
    from convlens.data import write_png

    summary = json.loads(Path(summary_json).read_text())
    if summary.get("error"):
        raise InputError(summary["error"])
    first = summary["conv_layers"][0]
    unknown = [name for name in sheet_layers if name not in summary["layers"]]
    if unknown:
        raise InputError(f"config.report.sheet_layers (or models.*.sheet_layers): {', '.join(unknown)} not among the model's conv and "
                         f"pooling layers ({', '.join(summary['layers'])})")
    sheet_layers = sheet_layers or acts_mod.default_sheet_layers(summary["conv_layers"])
    out_dir = Path(figures_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with np.load(raw_npz, allow_pickle=False) as raw:
        inputs = raw["inputs"].astype(np.float32)
        names = [str(n) for n in raw["transforms"]]
        layers = [str(n) for n in raw["layers"]]
        cam_up = raw["cam_up"]
        display_px = max(96, inputs.shape[1])
        for k, t in enumerate(names):
            rgb = render.to_rgb_uint8(inputs[k])
            write_png(render.upscale(rgb, display_px), out_dir / f"input_{t}.png")
            heat, _ = normalize_map(cam_up[k])
            write_png(render.upscale(render.overlay(rgb, heat), display_px), out_dir / f"gradcam_{t}.png")
        methods = [str(m) for m in raw["methods"]] if "methods" in raw else []
        heat_files = {m: _draw_heatmaps(raw[f"heat_{j}"], inputs, names, m, display_px, out_dir)
                      for j, m in enumerate(methods)}
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
                fname = f"act_{_layer_file(layer)}_{t}.png"
                write_png(render.grid(tiles, cols=cols), out_dir / fname)
                layer_files[layer][t] = fname
            shown_channels[layer] = [int(ch) for ch in channels]
    sheet = {"image": summary["image"], "transforms": names, "sheet_layers": sheet_layers,
             "layers": layers, "first_conv": first,
             "inputs": {t: f"input_{t}.png" for t in names}, "gradcam": {t: f"gradcam_{t}.png" for t in names},
             "activations": layer_files, "channels": shown_channels, "methods": methods, "heatmaps": heat_files}
    _write_json(sheet_json, sheet)


def _draw_heatmaps(maps: np.ndarray, inputs: np.ndarray, names: list[str], method: str, display_px: int,
                   out_dir: Path) -> dict[str, str]:
    """One method's map over each transformed input: jet for maps >= 0, blue-red for signed maps
    (when any row has a negative part); each row scaled by its own largest magnitude."""
    from convlens import render
    from convlens.attribution import normalize_map
    from convlens.data import write_png

    signed = bool((maps < -1e-12 * max(1e-30, float(np.abs(maps).max()))).any())
    files = {}
    for k, t in enumerate(names):
        if signed:
            peak = float(np.abs(maps[k]).max())
            picture = render.signed_overlay(inputs[k], maps[k] / peak if peak > 0 else maps[k])
        else:
            picture = render.overlay(inputs[k], normalize_map(maps[k])[0])
        files[t] = f"heat_{method}_{t}.png"
        write_png(render.upscale(picture, display_px), out_dir / files[t])
    return files


# ---------------------------------------------------------------------------------------------
# filters


FILTER_IMAGE_PX = 128  # default side of filter-pattern images: larger inputs cost time, add little


def filters(model_path: str, info_json: str, cfg: dict, seed: int, threads: int, out_dir: str, out_json: str) -> None:
    """First-layer kernel grid and gradient-ascent patterns for chosen layers."""
    from convlens import activations as acts_mod, backend, render
    from convlens.data import write_png
    from convlens.models import ModelInfo

    model, _ = open_model(model_path, threads)
    info = ModelInfo.load(info_json)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    convs = backend.conv_layers(model)
    first = backend.find_layer(model, convs[0])
    kernels = first.get_weights()[0]
    write_png(render.kernel_grid(kernels), out / "kernels.png")
    fcfg = cfg["filters"]
    layers = fcfg["layers"] or acts_mod.default_sheet_layers(convs)
    for layer in layers:
        backend.check_spatial(model, layer, "config.filters.layers (or models.*.filter_layers)")
    h, w, c = info.input_shape
    side = fcfg["image_size"] or min(h, FILTER_IMAGE_PX)
    shape = (side, side if h == w else max(1, round(w * side / h)), c)
    result = {"kernels": "kernels.png", "kernel_layer": convs[0], "kernel_shape": list(kernels.shape),
              "image_shape": list(shape), "layers": []}
    for i, layer in enumerate(layers):
        n_channels = int(backend.find_layer(model, layer).output.shape[-1])
        chosen = list(range(min(fcfg["n_filters"], n_channels)))
        t0 = time.time()
        res = backend.filter_patterns(model, layer, chosen, shape, info.preprocess, fcfg["steps"],
                                      fcfg["step_size"], seed + i)
        gain = res["objective_end"] - res["objective_start"]
        log.info("%s: %d filters in %.1f s; mean pre-activation %.3f -> %.3f", layer, len(chosen), time.time() - t0,
                 float(res["objective_start"].mean()), float(res["objective_end"].mean()))
        pats = np.stack([render.upscale(render.pattern_to_uint8(p), 64) for p in res["images"]])
        fname = f"patterns_{_layer_file(layer)}.png"
        write_png(render.grid(pats, cols=min(8, len(pats)), pad=2), out / fname)
        entry = {"layer": layer, "file": fname, "filters": chosen, "objective_start": res["objective_start"],
                 "objective_end": res["objective_end"], "improved": int((gain > 0).sum())}
        if fcfg["regularized"]["steps"]:
            entry["regularized"] = _regularized_patterns(model, layer, chosen, shape, info.preprocess,
                                                         fcfg["regularized"], seed + i, res["images"], out)
        result["layers"].append(entry)
    _write_json(out_json, result)


def _regularized_patterns(model, layer: str, channels: list[int], shape, preprocess_mode: str, reg: dict, seed: int,
                          plain: np.ndarray, out: Path) -> dict:
    """Regularized feature visualization of the same filters (featviz.visualize) and the filters'
    mean pre-activation on four kinds of image: uniform noise, the plain pattern clipped to the
    valid pixel range, the plain pattern as drawn (min-max scaled), the regularized pattern."""
    from convlens import featviz, render
    from convlens.data import write_png

    t0 = time.time()
    res = featviz.visualize(model, layer, channels, shape, preprocess_mode, objective="channel", param=reg["param"],
                            steps=reg["steps"], lr=reg["lr"], jitter=min(reg["jitter"], min(shape[:2]) - 1),
                            scales=tuple(reg["scales"]), rotate_deg=reg["rotate_deg"], tv_weight=reg["tv_weight"],
                            blur_every=reg["blur_every"], seed=seed)
    noise = np.random.default_rng(seed).random((len(channels),) + tuple(shape)).astype(np.float32)
    drawn = np.stack([render.pattern_to_uint8(p)[..., :shape[2]] for p in plain]).astype(np.float32) / 255.0

    def measured(images):
        return featviz.objective_values(model, layer, channels, images, preprocess_mode)

    values = {"noise": measured(noise), "plain_clipped": measured(np.clip(plain, 0.0, 1.0)),
              "plain_drawn": measured(drawn), "regularized": res["objective"]}
    fname = f"regularized_{_layer_file(layer)}.png"
    pats = np.stack([render.upscale(render.to_rgb_uint8(p), 64) for p in res["images"]])
    write_png(render.grid(pats, cols=min(8, len(pats)), pad=2), out / fname)
    means = {k: float(np.mean(v)) for k, v in values.items()}
    log.info("%s: regularized patterns in %.1f s; mean pre-activation noise %.3f, plain clipped %.3f, "
             "plain drawn %.3f, regularized %.3f", layer, time.time() - t0, *means.values())
    return {"file": fname, "mean": means, "beats": {k: int((values["regularized"] > v).sum())
                                                   for k, v in values.items() if k != "regularized"}}

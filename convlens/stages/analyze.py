"""Stage of the analyze_<shard> rules: every transform of every image of a shard through the model
in batches (activations, predictions, heatmaps) and the sensitivity metrics from the maps in memory."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from convlens import activations as acts_mod
from convlens import transforms as tr
from convlens.attribution.base import normalize_map
from convlens.attribution.explainer import Explainer
from convlens.core.head import TARGET_PREDICTED, TARGET_REFERENCE, resolve_targets
from convlens.core.grids import layer_grids
from convlens.core.layers import check_spatial, conv_layers, feature_layers, last_conv_layer
from convlens.core.setup import open_model, use_mixed_precision
from convlens.errors import InputError
from convlens.models import ModelInfo
from convlens.sensitivity import metrics as sensitivity
from convlens.sensitivity.analyzer import Analyzer
from convlens.stages.common import heatmap_methods, load_input_image
from convlens.stages.files import savez, write_csv, write_json
from convlens.stages.run import log


def analyze_shard(model_path: str, info_json: str, images: list[dict], cfg: dict, threads: int) -> None:
    """Transforms, activations, predictions, heatmaps and sensitivity metrics for a shard of images.

    images: dicts with ``id``, ``path`` or ``dataset_npz`` + ``index``, and output paths ``raw``,
    ``summary`` and ``metrics``. An unreadable image gets a summary with its ``error`` (the render
    step for it then fails, naming the file) while the rest of the shard completes.
    """
    t_start = time.time()
    model, devices = open_model(model_path, threads)
    if cfg.get("mixed_precision"):
        changed = use_mixed_precision(model)
        log.info("mixed precision: %d layers compute in float16%s", changed,
                 "" if any(":GPU" in d for d in devices) else " (no GPU: on CPU this is slower, not faster)")
    info = ModelInfo.load(info_json)
    h, w, c = info.input_shape
    layers = feature_layers(model)
    cam_layer = cfg["heatmaps"]["layer"] or last_conv_layer(model)
    check_spatial(model, cam_layer, "config.heatmaps.layer (or models.*.heatmap_layer)")
    target_cfg = cfg["heatmaps"]["target"]
    if isinstance(target_cfg, int) and target_cfg >= len(info.class_names):
        raise InputError(f"config.heatmaps.target: class {target_cfg} does not exist ({len(info.class_names)} classes)")
    target_code = {"reference": TARGET_REFERENCE, "predicted": TARGET_PREDICTED}.get(target_cfg, target_cfg)
    # the study's heatmap agreement is for the reference class, whatever class the sheets show
    transforms = tr.build_transforms(cfg["transforms"])
    study = sensitivity.Study.build(transforms, h, w, layers, layer_grids(model, layers), cfg["fill_mode"],
                                    cfg["fill_value"])
    analyzer = Analyzer(model, layers, info.preprocess, samplers=study.samplers)
    methods, method_notes = heatmap_methods(model, cfg["heatmaps"]["methods"], cam_layer)
    for note in method_notes:
        log.info("%s", note)
    # Grad-CAM always: the sheets overlay it on every transformed input
    explainer = Explainer(model, list(dict.fromkeys(["gradcam", *methods])), info.preprocess, cam_layer,
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
            write_json(entry["summary"], {"image": entry["id"], "source": entry.get("path"), "error": str(exc)})
            savez(entry["raw"], error=np.array(str(exc)))
            write_csv(entry["metrics"], [], sensitivity.COLUMNS)
            continue
        for note in notes:
            log.info("%s: %s", entry["id"], note)
        loaded.append((entry, image, label, notes))

    shard = ShardContext(info, transforms, [t.name in shown for t in transforms], study, layers,
                         conv_layers(model), cam_layer, devices, cfg["activations"], methods, method_notes)
    per_call = max(1, cfg["batch_size"] // n_t)
    t_compute = t_methods = t_metrics = 0.0
    for start in range(0, len(loaded), per_call):
        chunk = loaded[start:start + per_call]
        pixels = np.stack([img for _, img, _, _ in chunk]).astype("float32") / 255.0
        batch = np.repeat(pixels, n_t, axis=0)
        warped = np.asarray(tr.warp(batch, np.tile(study.matrices, (len(chunk), 1, 1)), cfg["fill_mode"],
                                    cfg["fill_value"]))
        t0 = time.time()
        out = analyzer.run(warped, n_t)
        t_compute += time.time() - t0
        t0 = time.time()
        out.update(explain(explainer, warped, out["logits"], target_code, n_t))
        t_methods += time.time() - t0
        for i, (entry, _, label, notes) in enumerate(chunk):
            rows = slice(i * n_t, (i + 1) * n_t)
            t0 = time.time()
            save_image_result(shard, entry, warped[rows], {k: rows_of(v, rows) for k, v in out.items()}, label, notes)
            t_metrics += time.time() - t0
        log.info("images %d-%d of %d done", start + 1, start + len(chunk), len(loaded))
    log.info("shard done in %.1f s (model step %.1f s, heatmap methods %.1f s, metrics and files %.1f s)",
             time.time() - t_start, t_compute, t_methods, t_metrics)


def explain(explainer: Explainer, x: np.ndarray, logits: np.ndarray, target_code: int, group: int) -> dict:
    """Every method's maps (B, H, W) for the sheets' target and for each image's reference class (the
    study's heatmap agreement; one pass when the sheets explain the reference class too).

    Returns target (B,), cam and cam_up (Grad-CAM for the sheets' target, at the CAM layer and at
    input resolution), heatmaps and heatmaps_reference ({method: (B, H, W)}).
    """
    targets = np.asarray(resolve_targets(logits, np.full(len(x), target_code), group)).astype(np.int64)
    sheets = explainer.explain(x, targets)
    reference = sheets
    if target_code != TARGET_REFERENCE:
        reference_targets = np.asarray(resolve_targets(logits, np.full(len(x), TARGET_REFERENCE), group))
        reference = explainer.explain(x, reference_targets.astype(np.int64))
    return {"target": targets, "cam": sheets["gradcam"].raw, "cam_up": sheets["gradcam"].maps,
            "heatmaps": {m: r.maps for m, r in sheets.items()},
            "heatmaps_reference": {m: r.maps for m, r in reference.items()}}


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


def rows_of(value, rows: slice):
    if isinstance(value, dict):
        return {k: v[rows] for k, v in value.items()}
    return [v[rows] for v in value] if isinstance(value, list) else value[rows]


def save_image_result(shard: ShardContext, entry: dict, inputs: np.ndarray, out: dict, label: str | None,
                       notes: list[str]) -> None:
    """metrics.csv, raw.npz and summary.json of one image; ``out`` holds only this image's rows.

    raw.npz keeps the rows drawn in the sheets: their inputs, maps (the drawn channels, or all of them
    with ``activations.raw_channels: all``), the drawn channels' display scaling, and the pooled
    reference features; every row enters the metrics.
    """
    info, probs, targets = shard.info, out["probs"], out["target"]
    label_index = info.class_names.index(label) if label in info.class_names else None
    reference_maps = {m: out["heatmaps_reference"][m] for m in shard.methods}
    stats = sensitivity.LayerStats(out["num"], out["den"], out["pooled"])
    metrics = sensitivity.image_metrics(shard.study, entry["id"], inputs, stats, probs, label_index, reference_maps)
    write_csv(entry["metrics"], metrics, sensitivity.COLUMNS)
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
    savez(entry["raw"], **arrays)
    ref_class = int(probs[0].argmax())
    rows_out = []
    for k, t in enumerate(shard.transforms):
        pred, target = int(probs[k].argmax()), int(targets[k])
        rows_out.append({"transform": t.name, "kind": t.kind, "param": t.param, "shown": bool(shard.shown[k]),
                         "predicted": pred, "predicted_name": info.class_names[pred], "confidence": float(probs[k, pred]),
                         "target": target, "target_name": info.class_names[target],
                         "target_probability": float(probs[k, target]),
                         "flipped": pred != ref_class, "cam_all_zero": normalize_map(out["cam_up"][k])[1]})
    write_json(entry["summary"], {
        "image": entry["id"], "source": entry.get("path") or f"{entry.get('dataset')} test[{entry.get('index')}]",
        "label_name": label, "class_names": info.class_names, "cam_layer": shard.cam_layer,
        "layers": shard.layers, "conv_layers": shard.conv_layers, "notes": notes + shard.method_notes,
        "devices": shard.devices, "methods": shard.methods, "transforms": rows_out, "error": None})

"""What the measure and draw stages share: one model set up once per job, images read ahead of the
model step, and every transform of a chunk of images through the model and the heatmap methods.

``Analysis(...).chunks(entries)`` yields, per chunk of ``batch_size // transforms`` images, the
chunk's readable images and everything measured on them (image-major rows: ``T`` consecutive rows
are the transforms of one image, the first untransformed). Images are read and decoded by a
background thread while the model runs the previous chunk, so the model step never waits on PNG
decoding; the warps and the photometric transforms' pixel operations run inside the compiled step.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from convlens import transforms as tr
from convlens.attribution.cams import SHEET_METHOD
from convlens.attribution.explainer import Explainer
from convlens.core.grids import layer_grids
from convlens.core.head import TARGET_PREDICTED, TARGET_REFERENCE, resolve_targets
from convlens.core.layers import conv_layers, feature_layers, last_conv_layer
from convlens.core.setup import open_model, use_mixed_precision
from convlens.data import load_input_image
from convlens.errors import InputError
from convlens.models import ModelInfo
from convlens.sensitivity import cka, ladder, photometric
from convlens.sensitivity import metrics as sensitivity
from convlens.sensitivity.analyzer import Analyzer
from convlens.sensitivity.lie import LieStep, generators_of
from convlens.stages.common import heatmap_explainer
from convlens.stages.run import log

READ_AHEAD = 2  # chunks decoded ahead of the model step


@dataclass
class Loaded:
    """One readable image of a chunk: its config entry, true class name (or None) and notes."""

    entry: dict
    label: str | None
    notes: list[str]
    aspect: float = 1.0  # how much the resize changed the aspect ratio (data.fit)


class Analysis:
    """A model opened once, with the study's transforms, its analyzer and its explainer."""

    def __init__(
        self,
        model_path: str,
        info_json: str,
        cfg: dict,
        threads: int,
        shown_only: bool = False,
        channel_maps: str | None = None,
    ):
        """``shown_only``: only the transforms drawn in the sheets, with their full feature maps (the
        draw job: their metrics are measured already, so the other rows need not go through the model
        and the methods again). Otherwise every transform, measured from the compiled step's sums and
        pooled maps (the full maps stay on the device). ``channel_maps``: the equivariance ladder's
        fitted maps (rule fit_channel_maps), scored with the config's rungs."""
        self.t_start = time.time()
        self.model, self.devices = open_model(model_path, threads)
        if cfg.get("mixed_precision"):
            changed = use_mixed_precision(self.model)
            log.info(
                "mixed precision: %d layers compute in float16%s",
                changed,
                "" if any(":GPU" in d for d in self.devices) else " (no GPU: on CPU this is slower, not faster)",
            )
        model = self.model
        self.cfg, self.shown_only = cfg, shown_only
        self.info = info = ModelInfo.load(info_json)
        h, w, _ = info.input_shape
        self.layers = feature_layers(model)
        self.conv_layers = conv_layers(model)
        self.cam_layer = cfg["heatmaps"]["layer"] or last_conv_layer(model)
        target_cfg = cfg["heatmaps"]["target"]
        if isinstance(target_cfg, int) and target_cfg >= len(info.class_names):
            raise InputError(
                f"config.heatmaps.target: class {target_cfg} does not exist ({len(info.class_names)} classes)"
            )
        self.target_code = {"reference": TARGET_REFERENCE, "predicted": TARGET_PREDICTED}.get(target_cfg, target_cfg)
        self.shown = tr.sheet_selection(cfg["transforms"], cfg["sheet_transforms"])
        self.transforms = [t for t in tr.build_transforms(cfg["transforms"]) if not shown_only or t.name in self.shown]
        for t in self.transforms:
            problem = t.problem(info.input_shape)
            if problem:
                raise InputError(f"config.transforms: {t.name}: {problem}")
        self.seed = int(cfg["seed"])  # the noise transform's seed, with each image's id
        self.study = sensitivity.Study.build(
            self.transforms, h, w, self.layers, layer_grids(model, self.layers), cfg["fill_mode"], cfg["fill_value"]
        )
        # Grad-CAM always: the sheets overlay it on every transformed input
        self.explainer, self.methods, self.method_notes = heatmap_explainer(
            model,
            cfg,
            info.preprocess,
            self.cam_layer,
            f"config.heatmaps.layer (or config.models.{info.name}.heatmap_layer)",
            always=(SHEET_METHOD,),
        )
        for note in self.method_notes:
            log.info("%s", note)
        cka_cfg = cfg.get("cka", {})  # off (cka.enabled: false): no Grams in the step, an empty cka.npz
        self.cka_images = None if shown_only or not cka_cfg.get("enabled", True) else cka_cfg.get("batch_images")
        self.ladder = ladder.load_ladder(channel_maps, cfg, self.study)
        # the CAM family's maps come with the model step (a backward pass there, not a pass of their own)
        self.analyzer = Analyzer(
            model,
            self.layers,
            info.preprocess,
            samplers=self.study.samplers,
            warps=self.study,
            maps=shown_only,
            explainer=self.explainer,
            reference_too=self.target_code != TARGET_REFERENCE,
            cka_images=self.cka_images,
            ladder=self.ladder,
        )
        self.lie = None  # the Lie derivatives' step (config lie_derivative), measuring only
        generators = generators_of(self.transforms) if cfg.get("lie_derivative") and not shown_only else []
        if generators:
            self.lie = LieStep(self.analyzer, generators, self.layers, layer_grids(model, self.layers))
        self.n_t = len(self.transforms)
        self.per_call = max(1, cfg["batch_size"] // self.n_t)
        if self.cka_images:  # whole CKA minibatches per model call
            self.per_call = cka.chunk_images(self.per_call, self.cka_images)
        self.seconds = {"read": 0.0, "model step": 0.0, "heatmap methods": 0.0}

    def describe(self, n_images: int) -> None:
        log.info(
            "model %s: %d layers probed, Grad-CAM at %s, %d transforms (%d drawn), %d images, devices %s",
            self.info.name,
            len(self.layers),
            self.cam_layer,
            self.n_t,
            len(self.shown),
            n_images,
            ", ".join(self.devices),
        )

    def _read(self, entries: list[dict], cache: dict) -> tuple[list[Loaded], np.ndarray, list[tuple[dict, str]]]:
        """Decode a chunk: (readable images, their pixels (n, H, W, C) float32 in [0, 1], failures)."""
        t0 = time.time()
        loaded, pixels, failed = [], [], []
        for entry in entries:
            try:
                image, label, notes, aspect = load_input_image(entry, self.info, cache)
            except InputError as exc:
                failed.append((entry, str(exc)))
                continue
            loaded.append(Loaded(entry, label, notes, aspect))
            pixels.append(image)
        self.seconds["read"] += time.time() - t0
        h, w, c = self.info.input_shape
        array = np.stack(pixels).astype("float32") / 255.0 if pixels else np.zeros((0, h, w, c), "float32")
        return loaded, array, failed

    def chunks(self, entries: list[dict]):
        """Yield (loaded, failed, out) per chunk; ``out`` as ``run`` returns it."""
        groups = [entries[i : i + self.per_call] for i in range(0, len(entries), self.per_call)]
        full = self.per_call if len(groups) > 1 else 0  # one chunk: its own size is the only one traced
        cache: dict = {}
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="convlens-read") as pool:
            pending = deque(pool.submit(self._read, g, cache) for g in groups[:READ_AHEAD])
            for i in range(len(groups)):
                loaded, pixels, failed = pending.popleft().result()
                if i + READ_AHEAD < len(groups):
                    pending.append(pool.submit(self._read, groups[i + READ_AHEAD], cache))
                ids = [item.entry["id"] for item in loaded]
                yield loaded, failed, (self.run(*padded(pixels, ids, full), own=len(loaded)) if len(loaded) else None)

    def run(self, pixels: np.ndarray, ids: list[str] | None = None, own: int | None = None) -> dict:
        """Every transform of every image of ``pixels`` (n, H, W, C) through the model and the methods;
        ``ids``: the images' ids, which seed their noise (needed when a transform is ``noise``).
        ``own``: how many of the images are the chunk's own (``padded``): the copies after them go
        through the compiled step (its traced shape) but not through the heatmap methods, whose
        gradient passes take any batch size (Integrated Gradients alone is 16 passes an image).

        Returns the Analyzer's outputs (inputs: the warped images, back: warped back by the inverse,
        activations, logits, probs, num, den, pooled), ``explain``'s (target, cam, cam_up, heatmaps,
        heatmaps_reference) and, when measuring, heatmaps_back (the reference maps warped back), in
        image-major rows: n * T of the Analyzer's, own * T of the others (the padding copies have none).
        """
        t0 = time.time()
        seeds = photometric.image_seeds(self.seed, ids) if ids is not None else None
        out = self.analyzer.run(pixels, self.n_t, self.target_code, seeds)
        if self.lie is not None:  # per image, not per transform: ``measure`` takes it out before slicing rows
            out["lie"] = self.lie.run(pixels)
        self.seconds["model step"] += time.time() - t0
        t0 = time.time()
        own = len(pixels) if own is None else own
        step = rows_of(out, slice(0, own * self.n_t))
        out.update(explain(self.explainer, step["inputs"], step["logits"], self.target_code, self.n_t, step))
        for key in ("cam_activations", "cams", "cams_reference", "target_reference"):  # now in the heatmaps
            out.pop(key, None)
        if not self.shown_only:  # the reference maps moved back for the heatmap agreement: one warp per method
            back = np.tile(self.study.back_matrices, (own, 1, 1))
            modes = self.study.fill_modes("constant") * own  # circular shifts wrap
            out["heatmaps_back"] = {
                m: tr.warp_rows(out["heatmaps_reference"][m][..., None], back, modes)[..., 0] for m in self.methods
            }
        self.seconds["heatmap methods"] += time.time() - t0
        return out

    def done(self, extra: dict[str, float] | None = None) -> None:
        parts = {**self.seconds, **(extra or {})}
        log.info(
            "shard done in %.1f s (%s)",
            time.time() - self.t_start,
            ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()),
        )


def explain(
    explainer: Explainer, x: np.ndarray, logits: np.ndarray, target_code: int, group: int, step: dict | None = None
) -> dict:
    """Every method's maps (B, H, W) for the sheets' target and for each image's reference class (the
    study's heatmap agreement; one pass when the sheets explain the reference class too).

    ``step``: the Analyzer's outputs when it made the CAM family's maps (target, cam_activations,
    cams, and target_reference, cams_reference when the sheets' target is not the reference class).
    Returns target (B,), cam and cam_up (Grad-CAM for the sheets' target, at the CAM layer and at
    input resolution), heatmaps and heatmaps_reference ({method: (B, H, W)}).
    """

    def run(code, suffix):
        if step is not None:
            targets = step["target" + suffix].astype(np.int64)
            return targets, explainer.explain(x, targets, cams=(step["cam_activations"], step["cams" + suffix]))
        targets = np.asarray(resolve_targets(logits, np.full(len(x), code), group)).astype(np.int64)
        return targets, explainer.explain(x, targets)

    targets, sheets = run(target_code, "")
    reference = sheets
    if target_code != TARGET_REFERENCE:
        reference = run(TARGET_REFERENCE, "_reference")[1]
    return {
        "target": targets,
        "cam": sheets[SHEET_METHOD].raw,
        "cam_up": sheets[SHEET_METHOD].maps,
        "heatmaps": {m: r.maps for m, r in sheets.items()},
        "heatmaps_reference": {m: r.maps for m, r in reference.items()},
    }


def rows_of(value, rows: slice):
    """Some rows of an ``Analysis.run`` output value: of every array in it (arrays, and lists, tuples
    and dicts of them, nested); anything else as it is."""
    if isinstance(value, dict):
        return {k: rows_of(v, rows) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(rows_of(v, rows) for v in value)
    return value[rows] if getattr(value, "ndim", 0) else value


def padded(pixels: np.ndarray, ids: list[str], size: int) -> tuple[np.ndarray, list[str]]:
    """A short chunk (the shard's last, or one with unreadable images) filled up to ``size`` images with
    copies of its last image, so every model call has the shape the compiled steps were traced for: a
    second shape costs a retrace (seconds, and the memory of a second graph). The copies' rows come
    after the chunk's own and nothing reads them (every image's rows are its own; the heatmap methods
    skip them, ``Analysis.run``; CKA's minibatches end at the chunk's readable images)."""
    missing = size - len(pixels)
    if missing <= 0:
        return pixels, ids
    return np.concatenate([pixels, np.repeat(pixels[-1:], missing, axis=0)]), ids + [ids[-1]] * missing


def image_outputs(out: dict, i: int, n_t: int) -> dict:
    """Image ``i``'s rows of a chunk's outputs."""
    rows = slice(i * n_t, (i + 1) * n_t)
    return {k: rows_of(v, rows) for k, v in out.items()}


def image_metrics(analysis: Analysis, image_id: str, out: dict, label: str | None) -> list[dict]:
    """The tidy metric rows of one image from its rows of a chunk's outputs."""
    info = analysis.info
    label_index = info.class_names.index(label) if label in info.class_names else None
    reference_maps = {m: out["heatmaps_reference"][m] for m in analysis.methods}
    stats = sensitivity.LayerStats(out["num"], out["den"], out["pooled"])
    rows = sensitivity.image_metrics(
        analysis.study,
        image_id,
        out["inputs"],
        stats,
        out["probs"],
        label_index,
        reference_maps,
        back=out["back"],
        heatmaps_back=out["heatmaps_back"],
    )
    return rows + (analysis.ladder.rows(analysis.study, image_id, out) if analysis.ladder else [])


def predictions(analysis: Analysis, out: dict) -> list[dict]:
    """One image's prediction per transform (its rows of a chunk's outputs)."""
    names = analysis.info.class_names
    probs, targets = out["probs"], out["target"]
    ref_class = int(probs[0].argmax())
    rows = []
    for k, t in enumerate(analysis.transforms):
        pred, target = int(probs[k].argmax()), int(targets[k])
        rows.append(
            {
                "transform": t.name,
                "kind": t.kind,
                "param": t.param,
                "shown": t.name in analysis.shown,
                "predicted": pred,
                "predicted_name": names[pred],
                "confidence": float(probs[k, pred]),
                "target": target,
                "target_name": names[target],
                "target_probability": float(probs[k, target]),
                "flipped": pred != ref_class,
            }
        )
    return rows

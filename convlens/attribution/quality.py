"""Checks of attribution methods for the report: do the maps depend on the weights (cascading
randomization), and do they rank the pixels the model uses (deletion and insertion)?"""

from __future__ import annotations

import numpy as np

from convlens.attribution.base import normalize_map
from convlens.attribution.explainer import Explainer
from convlens.attribution.perturbations import Ordered, baseline_image
from convlens.core.layers import find_layer, iter_layers
from convlens.errors import InputError
from convlens.stats import spearman, ssim


def _randomize(layer, rng: np.random.Generator) -> None:
    """Redraw each trainable weight from a Gaussian with that weight's own mean and std."""
    for variable in layer.trainable_weights:
        value = np.asarray(variable)
        variable.assign(rng.normal(value.mean(), value.std(), value.shape).astype(value.dtype))


def cascading_randomization(model, x: np.ndarray, targets, methods: list, layers_from_top: list[str] | None = None,
                            *, preprocess_mode: str = "unit", cam_layer: str | None = None, score: str = "logit",
                            params: dict | None = None, max_batch: int = 32, seed: int = 0,
                            threshold: float = 0.9, original: dict | None = None, on_step=None) -> dict:
    """Model-parameter randomization test (Adebayo et al. 2018, "Sanity checks for saliency maps").

    Re-initializes the layers in ``layers_from_top`` (default: every layer with trainable weights,
    output first) one more at a time, seeded, and compares each method's maps with the original
    ones. A weight is redrawn from a Gaussian with its own mean and standard deviation (one with no
    spread, such as an untrained zero bias, stays). The targets are resolved once, on the original
    model. The model's weights are restored on return.

    Returns {"layers": the randomized layers in order, "spearman": {method: (steps, B)},
    "ssim": {method: (steps, B)}, "insensitive": {method: bool}}: row i is after randomizing
    layers[:i + 1]. Both are computed on |map| (SSIM after scaling each map to [0, 1] by its
    maximum). A method is insensitive when its mean Spearman after the last step exceeds
    ``threshold``: its maps do not depend on what the model learned. ``original``: the unrandomized
    |maps| per method when the caller already has them (for the same targets and settings).
    ``on_step``: called with no arguments after each layer's step (progress lines).
    """
    if layers_from_top is None:
        layers_from_top = [p for p, layer in reversed(list(iter_layers(model))) if layer.trainable_weights]
    x = np.asarray(x, np.float32)

    def maps_now():
        explainer = Explainer(model, methods, preprocess_mode, cam_layer, score, params, max_batch)
        return {name: np.abs(r.maps) for name, r in explainer.explain(x, resolved).items()}

    resolved = Explainer(model, [], preprocess_mode, max_batch=max_batch).resolve_targets(x, targets)[0]
    saved = model.get_weights()
    rng = np.random.default_rng(seed)
    try:
        original = original if original is not None else maps_now()
        names = list(original)
        rho = {n: np.zeros((len(layers_from_top), len(x))) for n in names}
        sim = {n: np.zeros((len(layers_from_top), len(x))) for n in names}
        for step, path in enumerate(layers_from_top):
            _randomize(find_layer(model, path), rng)
            current = maps_now()
            for n in names:
                for b in range(len(x)):
                    rho[n][step, b] = spearman(original[n][b], current[n][b])
                    sim[n][step, b] = ssim(normalize_map(original[n][b])[0], normalize_map(current[n][b])[0])
            if on_step is not None:
                on_step()
    finally:
        model.set_weights(saved)
    # all-NaN (maps that became constant have no rank order) counts as changed, without a warning
    last = {n: rho[n][-1][np.isfinite(rho[n][-1])] for n in names}
    return {"layers": list(layers_from_top), "spearman": rho, "ssim": sim,
            "insensitive": {n: bool(last[n].size and last[n].mean() > threshold) for n in names}}


def deletion_insertion(model, x: np.ndarray, targets, maps: np.ndarray, steps: int = 20, *,
                       preprocess_mode: str = "unit", deletion_baseline="black", insertion_baseline="blur",
                       blur_sigma: float = 5.0, seed: int = 0, max_batch: int = 32,
                       explainer: "Explainer | None" = None) -> dict:
    """Deletion and insertion curves (Petsiuk et al. 2018, RISE) of maps (B, H, W).

    Pixels are taken in decreasing order of the map, (H * W) / steps more at each step. Deletion
    replaces them in x by ``deletion_baseline``; insertion puts them from x into
    ``insertion_baseline`` (either: black, white, blur, noise or a number; see ``baseline_image``).
    The curve is the target class's probability at each step; its area is the trapezoid over the
    fraction of pixels. A good map has a small deletion area and a large insertion area. The same
    is computed for a random order (seeded) as a baseline. Pass ``explainer`` (any Explainer of this
    model) to reuse its compiled forward pass across calls.

    Returns {"fractions": (steps + 1,), "deletion", "insertion": (B, steps + 1) curves,
    "deletion_auc", "insertion_auc": (B,), "random": the same four for the random order}.
    """
    x = np.asarray(x, np.float32)
    if np.shape(maps) != x.shape[:3]:
        raise InputError(f"deletion_insertion: maps have shape {np.shape(maps)}; the images need {x.shape[:3]}")
    explainer = explainer or Explainer(model, [], preprocess_mode, max_batch=max_batch)
    targets = explainer.resolve_targets(x, targets)[0]
    n_pixels = x.shape[1] * x.shape[2]
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.round(fractions * n_pixels).astype(np.int64)
    removed = baseline_image(x, deletion_baseline, blur_sigma, seed)
    start = baseline_image(x, insertion_baseline, blur_sigma, seed)

    def curves(ranks):
        deletion = explainer.scores(Ordered(x, removed, ranks, counts), targets, "probability")
        insertion = explainer.scores(Ordered(start, x, ranks, counts), targets, "probability")
        return {"deletion": deletion, "insertion": insertion,
                "deletion_auc": np.trapezoid(deletion, fractions, axis=1),
                "insertion_auc": np.trapezoid(insertion, fractions, axis=1)}

    def ranks_of(order):  # order: (B, H*W) pixel indices, first taken first
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(n_pixels)[None].repeat(len(order), 0), axis=1)
        return ranks.reshape(x.shape[:3])

    flat = np.asarray(maps, np.float64).reshape(len(x), -1)
    rng = np.random.default_rng(seed)
    random_order = np.stack([rng.permutation(n_pixels) for _ in range(len(x))])
    return {"fractions": fractions, **curves(ranks_of(np.argsort(-flat, axis=1, kind="stable"))),
            "random": curves(ranks_of(random_order))}

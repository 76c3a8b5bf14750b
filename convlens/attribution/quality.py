"""Checks of attribution methods for the report: do the maps depend on the weights (cascading
randomization), and do they rank the pixels the model uses (deletion and insertion)?"""

from __future__ import annotations

import numpy as np

from convlens.attribution.base import normalize_map
from convlens.attribution.explainer import Explainer
from convlens.attribution.perturbations import Ordered, baseline_image
from convlens.core.layers import find_layer, iter_layers
from convlens.errors import InputError
from convlens.stats import bootstrap_mean_ci, column_means, spearman, ssim


def _randomize(layer, rng: np.random.Generator) -> None:
    """Redraw each trainable weight from a Gaussian with that weight's own mean and std."""
    for variable in layer.trainable_weights:
        value = np.asarray(variable)
        variable.assign(rng.normal(value.mean(), value.std(), value.shape).astype(value.dtype))


CONSTANT_TOLERANCE = 1e-6
"""A map is constant when its range (max - min of |map|) is at most this fraction of the original
map's range: a map that collapsed to one value (Grad-CAM after ReLU of an all-negative sum, say)."""


def is_constant(current: np.ndarray, original: np.ndarray, tolerance: float = CONSTANT_TOLERANCE) -> bool:
    """Whether ``current`` (|map|) is constant relative to ``original``: ptp(current) <= tolerance *
    ptp(original). An original with no range makes every exactly constant map constant."""
    return bool(np.ptp(current) <= tolerance * np.ptp(original))


def cascading_randomization(
    model,
    x: np.ndarray,
    targets,
    methods: list,
    layers_from_top: list[str] | None = None,
    *,
    preprocess_mode: str = "unit",
    cam_layer: str | None = None,
    score: str = "logit",
    params: dict | None = None,
    max_batch: int = 32,
    seed: int = 0,
    threshold: float = 0.9,
    original: dict | None = None,
    on_step=None,
) -> dict:
    """Model-parameter randomization test (Adebayo et al. 2018, "Sanity checks for saliency maps").

    Re-initializes the layers in ``layers_from_top`` (default: every layer with trainable weights,
    output first) one more at a time, seeded, and compares each method's maps with the original
    ones. A weight is redrawn from a Gaussian with its own mean and standard deviation (one with no
    spread, such as an untrained zero bias, stays). The targets are resolved once, on the original
    model. The model's weights are restored on return.

    Both similarities are computed on |map|: Spearman, and SSIM after scaling each map to [0, 1] by
    its maximum. A randomized map that became constant (``is_constant``: its range at most
    ``CONSTANT_TOLERANCE`` of the original's) has no structure left: it counts as fully changed,
    similarity 0 for both, and is counted in ``n_constant``. An image whose original map is itself
    constant has nothing to compare: NaN for it at every step, counted in ``n_blank``.

    Every step is judged: step i is ``similar`` when the mean Spearman over the images (NaN
    excluded) exceeds ``threshold``, and a method is ``insensitive`` when any step is similar: its
    maps survive randomizing the top layer(s), so they do not explain what the model learned.

    Returns {"layers": the randomized layers in order, "spearman", "ssim": {method: (steps, B)},
    "constant": {method: (steps, B) bool}, "n_constant": {method: (steps,) int}, "n_blank":
    {method: int}, "mean_spearman", "mean_ssim": {method: (steps,)}, "similar": {method: (steps,)
    bool}, "insensitive": {method: bool}}: row i is after randomizing layers[:i + 1].
    ``original``: the unrandomized |maps| per method when the caller already has them (for the
    same targets and settings). ``on_step``: called with no arguments after each layer's step
    (progress lines).
    """
    if layers_from_top is None:
        layers_from_top = [p for p, layer in reversed(list(iter_layers(model))) if layer.trainable_weights]
    x = np.asarray(x, np.float32)

    # one Explainer for every step: its compiled functions read the model's variables, which the
    # steps assign in place (a new Explainer per step traced every function again)
    explainer = Explainer(model, methods, preprocess_mode, cam_layer, score, params, max_batch)

    def maps_now():
        explainer.weights_changed()
        return {name: np.abs(r.maps) for name, r in explainer.explain(x, resolved).items()}

    resolved = explainer.resolve_targets(x, targets)[0]
    saved = model.get_weights()
    rng = np.random.default_rng(seed)
    shape = (len(layers_from_top), len(x))
    try:
        original = original if original is not None else maps_now()
        names = list(original)
        rho = {n: np.full(shape, np.nan) for n in names}
        sim = {n: np.full(shape, np.nan) for n in names}
        constant = {n: np.zeros(shape, bool) for n in names}
        blank = {n: np.array([np.ptp(m) == 0 for m in original[n]]) for n in names}
        for step, path in enumerate(layers_from_top):
            _randomize(find_layer(model, path), rng)
            current = maps_now()
            for n in names:
                for b in np.flatnonzero(~blank[n]):
                    if is_constant(current[n][b], original[n][b]):
                        constant[n][step, b] = True
                        rho[n][step, b] = sim[n][step, b] = 0.0
                        continue
                    rho[n][step, b] = spearman(original[n][b], current[n][b])
                    sim[n][step, b] = ssim(normalize_map(original[n][b])[0], normalize_map(current[n][b])[0])
            if on_step is not None:
                on_step()
    finally:
        model.set_weights(saved)
    mean_rho = {n: column_means(rho[n].T)[0] for n in names}
    similar = {n: np.nan_to_num(mean_rho[n], nan=-1.0) > threshold for n in names}
    return {
        "layers": list(layers_from_top),
        "spearman": rho,
        "ssim": sim,
        "constant": constant,
        "n_constant": {n: constant[n].sum(axis=1) for n in names},
        "n_blank": {n: int(blank[n].sum()) for n in names},
        "mean_spearman": mean_rho,
        "mean_ssim": {n: column_means(sim[n].T)[0] for n in names},
        "similar": similar,
        "insensitive": {n: bool(similar[n].any()) for n in names},
    }


def deletion_insertion(
    model,
    x: np.ndarray,
    targets,
    maps: np.ndarray,
    steps: int = 20,
    *,
    preprocess_mode: str = "unit",
    deletion_baseline="black",
    insertion_baseline="blur",
    blur_sigma: float = 5.0,
    seed: int = 0,
    max_batch: int = 32,
    explainer: "Explainer | None" = None,
    random_orders: int = 1,
    random: dict | None = None,
) -> dict:
    """Deletion and insertion curves (Petsiuk et al. 2018, RISE) of maps (B, H, W).

    Pixels are taken in decreasing order of the map, (H * W) / steps more at each step. Deletion
    replaces them in x by ``deletion_baseline``; insertion puts them from x into
    ``insertion_baseline`` (either: black, white, blur, noise or a number; see ``baseline_image``).
    The curve is the target class's probability at each step; its area is the trapezoid over the
    fraction of pixels. A good map has a small deletion area and a large insertion area. The same
    is computed for a random order (seeded) as a baseline: with ``random_orders`` > 1, the mean
    curve of that many independent random orders per image. Pass ``explainer`` (any Explainer of
    this model) to reuse its compiled forward pass across calls, and ``random`` (the "random" of an
    earlier answer for the same images, targets, steps, baselines, seed and ``random_orders``: it
    does not depend on the maps) to compute the random orders' curves once for several methods.
    ``against_random`` compares the areas with the random order's.

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
        return {
            "deletion": deletion,
            "insertion": insertion,
            "deletion_auc": np.trapezoid(deletion, fractions, axis=1),
            "insertion_auc": np.trapezoid(insertion, fractions, axis=1),
        }

    def ranks_of(order):  # order: (B, H*W) pixel indices, first taken first
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(n_pixels)[None].repeat(len(order), 0), axis=1)
        return ranks.reshape(x.shape[:3])

    flat = np.asarray(maps, np.float64).reshape(len(x), -1)
    if random is None:
        rng = np.random.default_rng(seed)
        randoms = [
            curves(ranks_of(np.stack([rng.permutation(n_pixels) for _ in range(len(x))])))
            for _ in range(max(1, random_orders))
        ]
        random = {k: np.mean([r[k] for r in randoms], axis=0) for k in randoms[0]}
    return {"fractions": fractions, **curves(ranks_of(np.argsort(-flat, axis=1, kind="stable"))), "random": random}


def against_random(
    result: dict, random: dict | None = None, *, n_boot: int = 10000, seed: int = 0, level: float = 0.95
) -> dict:
    """Paired comparison of a map's deletion and insertion areas with a random order's.

    ``result``: a ``deletion_insertion`` answer; ``random``: the random-order areas to compare with
    (default its own). Per image the difference is method minus random; its mean gets a percentile
    bootstrap interval over the images (``bootstrap_mean_ci``, seeded). The good side of 0 is below
    for deletion (the class probability falls sooner), above for insertion. ``beats_random``: the
    whole interval is on the good side; ``worse_than_random``: the whole interval is on the other.

    Returns {"deletion": {...}, "insertion": {...}}, each {"diff", "low", "high", "beats_random",
    "worse_than_random", "level"}.
    """
    random = random if random is not None else result["random"]
    out = {}
    for kind, sign in (("deletion", -1.0), ("insertion", 1.0)):
        diff = np.asarray(result[f"{kind}_auc"], np.float64) - np.asarray(random[f"{kind}_auc"], np.float64)
        low, high = bootstrap_mean_ci(diff, n_boot, seed, level)
        good, bad = (high < 0, low > 0) if sign < 0 else (low > 0, high < 0)
        out[kind] = {
            "diff": float(diff.mean()),
            "low": low,
            "high": high,
            "beats_random": bool(good),
            "worse_than_random": bool(bad),
            "level": level,
        }
    return out

"""Transformation-sensitivity metrics of one image, computed from the maps in memory.

Definitions follow ``SENSITIVITY.md`` (Lenc & Vedaldi 2015; Zeiler & Fergus 2014; Azulay & Weiss
2019; Zhang 2019). Every measurement is a row ``image, transform, param, layer, metric, value`` of
the study's tidy table; ``layer`` is a conv/pool layer path, ``input`` (the floor), ``output``
(predictions) or a heatmap method name (agreement).

The identity row is computed like every other row and gives error 0 and cosine 1 exactly.

Photometric transforms (blur, noise, brightness, contrast, JPEG) move no pixel, so equivariance
does not apply to them: they have no ``equivariance_error`` or ``equivariance_floor`` rows. Their
invariance, prediction and heatmap rows are measured like every other (heatmaps compared without a
warp: their inverse is the identity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convlens import transforms as tr
from convlens.stats import row_pearson, row_ranks

# name -> (what the layer column holds, True if larger is worse, meaning)
METRICS = {
    "equivariance_error": (
        "layer",
        True,
        "‖V⊙(φ(Tx) − T_l φ(x))‖ / ‖V⊙T_l φ(x)‖: the map of the transformed image against "
        "the original map moved by the same transform (geometric transforms only)",
    ),
    "equivariance_error_perm": (
        "layer",
        True,
        "‖V⊙(φ(Tx) − diag(s)Π T_l φ(x))‖ / ‖V⊙T_l φ(x)‖ with the channel permutation Π and scales s ≥ 0 "
        "fit on held-apart images (sensitivity.ladder; geometric transforms only)",
    ),
    "equivariance_error_linear": (
        "layer",
        True,
        "‖V⊙(φ(Tx) − (W T_l φ(x) + b))‖ / ‖V⊙T_l φ(x)‖ with the 1×1 linear map W, b (ridge) fit on "
        "held-apart images (sensitivity.ladder; geometric transforms only)",
    ),
    "equivariance_floor": (
        "input",
        True,
        "the same error for the input warped by T then T⁻¹: what interpolation alone costs (geometric transforms only)",
    ),
    "invariance_cosine": ("layer", False, "cosine similarity of the globally average-pooled maps of x and Tx"),
    "top1_change": ("output", True, "1 if the top-1 class of Tx differs from that of x"),
    "prob_change": ("output", True, "|p(c₀ | Tx) − p(c₀ | x)| for the class c₀ predicted on x (its mean is MAC)"),
    "kl_divergence": ("output", True, "KL(p(x) ‖ p(Tx)) in nats"),
    "correct": ("output", False, "1 if the top-1 class of Tx is the true class (images with a known label)"),
    "heatmap_pearson": ("method", False, "Pearson correlation of the heatmap of x and that of Tx moved back by T⁻¹"),
    "heatmap_spearman": ("method", False, "Spearman rank correlation of the same two maps"),
    "heatmap_iou20": ("method", False, "IoU of the top-20 % pixels of the same two maps"),
    "lie_derivative": (
        "layer",
        True,
        "Lie derivative along a generator (shift_x, shift_y, rotate, scale) at t = 0: output ‖d/dt z(T_t x)‖₂ "
        "of the logits z; a layer ‖d/dt T_t⁻¹ φ(T_t x)‖ / ‖φ(x)‖ (Gruver et al. 2022; sensitivity.lie)",
    ),
    "consistency": (
        "output",
        False,
        "fraction of pairs of offsets of a shift sweep (0 included) whose top-1 classes agree (Zhang 2019)",
    ),
}
COLUMNS = ["image", "transform", "param", "layer", "metric", "value"]
TOP_FRACTION = 0.2


@dataclass
class Study:
    """What every image of a shard shares: transforms, and each layer's warps and valid masks."""

    transforms: list  # tr.Transform, identity first
    matrices: np.ndarray  # (T, 3, 3) forward, at input resolution
    valid: np.ndarray  # (T, H, W) bool: pixels of Tx that come from inside x
    layers: list[str]
    layer_matrices: list[np.ndarray]  # per layer (T, 3, 3), the transforms on the layer's grid
    layer_valid: list[np.ndarray]  # per layer (T, h, w) bool: pixels not from outside the canvas
    samplers: list[list[tr.Sampler]]  # per layer, per transform: T_l as gathers over the valid pixels
    back_matrices: np.ndarray  # (T, 3, 3) inverses
    back_valid: np.ndarray  # (T, H, W) bool: pixels of x whose image under T stays on the canvas
    fill_mode: str
    fill_value: float

    def fill_modes(self, fill: str) -> list[str]:
        """Per transform, the fill mode of its warps: ``wrap`` for a circular shift, ``fill`` otherwise."""
        return [t.fill_mode(fill) for t in self.transforms]

    @property
    def geometric(self) -> np.ndarray:
        """(T,) bool: the transforms equivariance applies to (their kinds say: warps, not pixel operations)."""
        return np.array([t.equivariant for t in self.transforms])

    @classmethod
    def build(
        cls, transforms, height: int, width: int, layers: list[str], grids: dict, fill_mode: str, fill_value: float
    ) -> "Study":
        matrices = np.stack([t.matrix(height, width) for t in transforms])
        wraps = np.array([t.wraps for t in transforms], bool)  # circular shifts: every pixel valid, reads wrap

        def valid(m, h, w):
            mask = tr.valid_mask(m, h, w)
            mask[wraps] = True
            return mask

        layer_matrices, layer_valid, samplers = [], [], []
        for layer in layers:
            g = grids[layer]
            m = np.stack([tr.rescale_matrix(mi, g) for mi in matrices])
            layer_matrices.append(m)
            layer_valid.append(valid(m, g.height, g.width))
            samplers.append([tr.sampler(mi, v, w) for mi, v, w in zip(m, layer_valid[-1], wraps, strict=False)])
        back = np.stack([np.linalg.inv(m) for m in matrices])
        back[0] = np.eye(3)
        return cls(
            list(transforms),
            matrices,
            valid(matrices, height, width),
            list(layers),
            layer_matrices,
            layer_valid,
            samplers,
            back,
            valid(back, height, width),
            fill_mode,
            float(fill_value),
        )


def _warp_one(image: np.ndarray, matrices: np.ndarray, fill_modes: list[str], fill_value: float = 0.0):
    """One (h, w, c) map moved by each of (T, 3, 3) matrices, each with its fill mode: (T, h, w, c) float32."""
    batch = np.broadcast_to(image.astype(np.float32), (len(matrices),) + image.shape)
    return tr.warp_rows(batch, matrices, fill_modes, fill_value)


def error_from_sums(num: np.ndarray, den: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """sqrt(num / den) per row, from the squared sums ‖V⊙(actual − expected)‖² and ‖V⊙expected‖².

    A row whose expected map is zero inside the mask gives 0 when the actual one is zero too and
    NaN otherwise (no scale to measure against); a row with nothing ``measured`` (an empty mask)
    gives NaN.
    """
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt(num / den)
    out[den == 0] = np.where(num[den == 0] == 0, 0.0, np.nan)
    out[~np.asarray(measured, bool)] = np.nan
    return out


def masked_sums(actual: np.ndarray, expected: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row ‖mask⊙(actual − expected)‖² and ‖mask⊙expected‖²; rows (T, h, w[, c]), mask (T, h, w)."""
    m = mask.reshape(mask.shape + (1,) * (actual.ndim - mask.ndim))
    dtype = np.result_type(actual, expected, np.float32)  # float32 maps stay float32; sums in float64

    def squared_norms(values):
        squared = np.square(values.astype(dtype, copy=False) * m)
        return squared.reshape(len(values), -1).sum(axis=1, dtype=np.float64)

    return squared_norms(np.subtract(actual, expected, dtype=dtype)), squared_norms(expected)


def relative_error(actual: np.ndarray, expected: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per row ‖mask⊙(actual − expected)‖ / ‖mask⊙expected‖; rows (T, h, w[, c]), mask (T, h, w)."""
    return error_from_sums(*masked_sums(actual, expected, mask), mask.reshape(len(mask), -1).any(axis=1))


@dataclass
class LayerStats:
    """What the layer metrics need of one image's maps (T rows each): the squared sums of the
    equivariance error inside the valid mask, and the globally pooled maps."""

    num: list[np.ndarray]  # per layer (T,): ‖V⊙(φ(Tx) − T_l φ(x))‖²
    den: list[np.ndarray]  # per layer (T,): ‖V⊙T_l φ(x)‖²
    pooled: list[np.ndarray]  # per layer (T, c)


def layer_stats(study: Study, activations: list[np.ndarray]) -> LayerStats:
    """LayerStats from maps in numpy, with a full warp per layer (the reference computation;
    ``backend.Analyzer`` computes the same inside its compiled step)."""
    sums = [
        masked_sums(act, _warp_one(act[0], m, study.fill_modes("constant")), valid)
        for act, m, valid in zip(activations, study.layer_matrices, study.layer_valid, strict=False)
    ]
    return LayerStats([n for n, _ in sums], [d for _, d in sums], [pooled(act) for act in activations])


def cosine_to_first(vectors: np.ndarray) -> np.ndarray:
    """Cosine of each row with row 0; a nonzero row equal to row 0 gives exactly 1, a zero row NaN."""
    v = vectors.astype(np.float64)
    norms = np.linalg.norm(v, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = v @ v[0] / (norms * norms[0])
    out[(norms == 0) | (norms[0] == 0)] = np.nan
    out[np.all(v == v[0], axis=1) & (norms > 0)] = 1.0
    return out


def pooled(act: np.ndarray) -> np.ndarray:
    """Global average pooling: (T, h, w, c) -> (T, c)."""
    return act.mean(axis=(1, 2), dtype=np.float64)


def map_agreements(reference: np.ndarray, maps: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Pearson, Spearman and top-20 % IoU (``TOP_FRACTION``) of ``reference`` (H, W) against every
    row of ``maps`` (T, H, W), each inside its own mask (T, H, W), at once: per metric a (T,) array;
    NaN where a map is constant inside the mask or the mask has fewer than 2 pixels."""
    t = len(maps)
    m = masks.reshape(t, -1)
    x = np.broadcast_to(reference.reshape(1, -1).astype(np.float64), m.shape)
    y = maps.reshape(t, -1).astype(np.float64)
    n = m.sum(axis=1)

    def spread(v):
        return np.where(m, v, -np.inf).max(axis=1) - np.where(m, v, np.inf).min(axis=1)

    def top(v, k):  # the row's k largest masked entries (ties: the first in pixel order)
        order = np.argsort(np.where(m, -v, np.inf), axis=1, kind="stable")
        place = np.empty_like(order)
        np.put_along_axis(place, order, np.arange(v.shape[1])[None, :].repeat(t, axis=0), axis=1)
        return (place < k[:, None]) & m

    with np.errstate(invalid="ignore"):
        usable = (n >= 2) & (spread(x) > 0) & (spread(y) > 0)
    k = np.maximum(1, np.ceil(TOP_FRACTION * n)).astype(np.int64)
    ta, tb = top(x, k), top(y, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = (ta & tb).sum(axis=1) / (ta | tb).sum(axis=1)
    out = {
        "heatmap_pearson": row_pearson(x, y, m),
        "heatmap_spearman": row_pearson(row_ranks(x, m), row_ranks(y, m), m),
        "heatmap_iou20": iou.astype(np.float64),
    }
    return {name: np.where(usable, v, np.nan) for name, v in out.items()}


def map_agreement(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Pearson, Spearman and top-20 % IoU of two maps inside a mask; NaN where a map is constant
    (``map_agreements``' one-row case)."""
    return {name: float(v[0]) for name, v in map_agreements(a, b[None], mask[None]).items()}


def image_metrics(
    study: Study,
    image: str,
    inputs: np.ndarray,
    stats: LayerStats,
    probs: np.ndarray,
    label: int | None,
    heatmaps: dict[str, np.ndarray],
    back: np.ndarray | None = None,
    heatmaps_back: dict[str, np.ndarray] | None = None,
) -> list[dict]:
    """Every measurement of one image.

    inputs: (T, H, W, C) the warped images, row 0 the original; stats: the layers' squared sums
    and pooled maps (``layer_stats``, or the Analyzer's compiled step); probs: (T, K); label: the
    true class index or None; heatmaps: method -> (T, H, W) maps of each row for the class
    predicted on the original image. Photometric transforms get no equivariance rows (see above).
    ``back`` (the inputs warped back by the inverses) and ``heatmaps_back`` (the maps warped back),
    when the caller warped a whole batch at once; computed here otherwise.
    """
    rows = []
    geometric = study.geometric

    def add(layer: str, metric: str, values, only=None) -> None:
        for k, (t, v) in enumerate(zip(study.transforms, values, strict=False)):
            if only is not None and not only[k]:
                continue
            rows.append(
                {
                    "image": image,
                    "transform": t.name,
                    "param": t.param,
                    "layer": layer,
                    "metric": metric,
                    "value": float(v),
                }
            )

    for layer, num, den, pool, valid in zip(
        study.layers, stats.num, stats.den, stats.pooled, study.layer_valid, strict=False
    ):
        add(
            layer, "equivariance_error", error_from_sums(num, den, valid.reshape(len(valid), -1).any(axis=1)), geometric
        )
        add(layer, "invariance_cosine", cosine_to_first(pool))
    if back is None:
        back = tr.warp_rows(inputs, study.back_matrices, study.fill_modes(study.fill_mode), study.fill_value)
    original = np.broadcast_to(inputs[0].astype(np.float32), inputs.shape)
    add("input", "equivariance_floor", relative_error(back, original, study.back_valid), geometric)

    p = probs.astype(np.float64)
    top = p.argmax(axis=1)
    c0 = top[0]
    add("output", "top1_change", (top != c0).astype(float))
    add("output", "prob_change", np.abs(p[:, c0] - p[0, c0]))
    eps = 1e-12
    add("output", "kl_divergence", np.sum(p[0] * (np.log(p[0] + eps) - np.log(p + eps)), axis=1))
    if label is not None:
        add("output", "correct", (top == label).astype(float))

    for method, maps in heatmaps.items():
        moved_back = (heatmaps_back or {}).get(method)
        if moved_back is None:
            moved_back = tr.warp_rows(maps[..., None], study.back_matrices, study.fill_modes("constant"))[..., 0]
        agreement = map_agreements(maps[0], moved_back, study.back_valid)
        for metric in ("heatmap_pearson", "heatmap_spearman", "heatmap_iou20"):
            add(method, metric, agreement[metric])
    return rows

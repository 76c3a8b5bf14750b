"""The equivariance ladder: equivariance up to a re-mapping of channels (SENSITIVITY.md).

For a layer l and a geometric transform T, with p = T_l φ(x) (the expected map, C channels per
valid pixel) and q = φ(Tx) (the map got), three nested families of maps M, each scored with the
denominator of the equivariance error, e = ‖V⊙(q − M p)‖ / ‖V⊙p‖:

- same channels (M = I): ``equivariance_error`` (metrics.py);
- permutation with a non-negative scale per channel, M = diag(s) Π: ``equivariance_error_perm``.
  The Hungarian algorithm on cost_ij = ‖q_j‖² − max(p_i·q_j, 0)² / ‖p_i‖² (the least-squares
  residual of q_j from s·p_i with s ≥ 0) gives π; s_j = max(p_π(j)·q_j, 0) / ‖p_π(j)‖²;
- 1×1 linear map with bias, q ≈ Wᵀ p + b: ``equivariance_error_linear``, ridge with penalty
  λ·tr(S)/C·‖W − I‖² (S the centred scatter of p, so λ is relative to its mean eigenvalue; shrunk
  toward the same-channel map, the bottom rung; the bias is not penalised).

The maps are fit on a held-apart fit set (the study's first ``equivariance.fit_images`` images) and
scored on every other image: every ``_perm`` / ``_linear`` row is held-out. Fitting needs only the
C×C sums of ``PairSums``, accumulated shard by shard, so its memory does not grow with the images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convlens.errors import InputError
from convlens.sensitivity.metrics import error_from_sums

RUNGS = {"perm": "equivariance_error_perm", "linear": "equivariance_error_linear"}
TIE_BREAK = 1e-12  # relative cost added off the diagonal: equal costs resolve to the identity
DEFAULT_LAMBDA = 1e-5  # on an exact permutation (test_ladder) the shrinkage alone costs ~1e-4 of error


@dataclass
class PairSums:
    """Sufficient statistics of (p, q) pairs over valid pixels of one layer × transform (float64)."""

    channels: int
    pp: np.ndarray = field(default=None)  # (C, C) Σ p pᵀ
    pq: np.ndarray = field(default=None)  # (C, C) Σ p qᵀ
    p: np.ndarray = field(default=None)  # (C,) Σ p
    q: np.ndarray = field(default=None)  # (C,) Σ q
    qq: np.ndarray = field(default=None)  # (C,) Σ q_j² per channel
    count: int = 0

    def __post_init__(self):
        c = self.channels
        for name, shape in (("pp", (c, c)), ("pq", (c, c)), ("p", (c,)), ("q", (c,)), ("qq", (c,))):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(shape, np.float64))

    def add(self, p: np.ndarray, q: np.ndarray) -> None:
        """Add pairs p, q (n, C) (rows: valid pixels of any number of images)."""
        p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
        self.pp += p.T @ p
        self.pq += p.T @ q
        self.p += p.sum(axis=0)
        self.q += q.sum(axis=0)
        self.qq += np.square(q).sum(axis=0)
        self.count += len(p)


def expected_and_got(reference: np.ndarray, transformed: np.ndarray, sampler) -> tuple[np.ndarray, np.ndarray]:
    """p = T_l φ(x) and q = φ(Tx) over the sampler's valid pixels: (n, C) each.

    reference, transformed: (h, w, C) maps of x and of Tx; sampler: ``transforms.Sampler`` of T_l.
    """
    c = reference.shape[-1]
    ref, got = reference.reshape(-1, c), transformed.reshape(-1, c)
    expected = sum(ref[index] * weights[:, None] for index, weights in zip(sampler.index, sampler.weights, strict=True))
    return np.asarray(expected, np.float64), got[sampler.positions].astype(np.float64)


def permutation_cost(s: PairSums) -> np.ndarray:
    """(C, C) cost_ij = ‖q_j‖² − max(p_i·q_j, 0)² / ‖p_i‖² (a zero channel p_i explains nothing)."""
    norms = np.diag(s.pp)
    with np.errstate(invalid="ignore", divide="ignore"):
        explained = np.where(norms[:, None] > 0, np.square(np.maximum(s.pq, 0)) / norms[:, None], 0.0)
    return s.qq[None, :] - explained


def fit_permutation(s: PairSums) -> tuple[np.ndarray, np.ndarray]:
    """The best M = diag(s) Π: (source (C,) int, scale (C,)) with q_j ≈ scale_j · p_source_j."""
    from scipy.optimize import linear_sum_assignment

    cost = permutation_cost(s)
    # ties (channels that are zero on the whole fit set cost the same anywhere) go to the identity
    tie_break = TIE_BREAK * max(float(np.abs(cost).max()), np.finfo(np.float64).tiny)
    rows, cols = linear_sum_assignment(cost + tie_break * (1 - np.eye(s.channels)))
    source = np.empty(s.channels, np.int64)
    source[cols] = rows
    norms = np.diag(s.pp)[source]
    dots = np.maximum(s.pq[source, np.arange(s.channels)], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # a source channel that is zero on the whole fit set gives no scale: its own channel keeps scale 1
        scale = np.where(norms > 0, dots / norms, (source == np.arange(s.channels)).astype(np.float64))
    return source, scale


def fit_linear(s: PairSums, lam: float = DEFAULT_LAMBDA) -> tuple[np.ndarray, np.ndarray]:
    """Ridge fit of q ≈ p @ W + b: (W (C, C), b (C,)); penalty lam·tr(S)/C · ‖W − I‖², S = Σ (p − p̄)(p − p̄)ᵀ.

    The ridge shrinks toward the same-channel map (I, the bottom rung), not toward 0: with no
    evidence (a channel zero on the whole fit set) the map keeps the channel, and an exact identity
    costs no shrinkage. The bias is not penalised.
    """
    n = max(s.count, 1)
    mean_p, mean_q = s.p / n, s.q / n
    spp = s.pp - n * np.outer(mean_p, mean_p)
    spq = s.pq - n * np.outer(mean_p, mean_q)
    scale = np.trace(spp) / s.channels
    # lam = 0 (plain least squares) or collinear channels: a floor of 1e-12 of the mean eigenvalue keeps
    # the system solvable without changing a well-posed fit; constant maps: the identity (no evidence)
    penalty = max(lam, 1e-12) * scale if scale > 0 else 1.0
    eye = np.eye(s.channels)
    w = np.linalg.lstsq(spp + penalty * eye, spq + penalty * eye, rcond=None)[0]
    return w, mean_q - mean_p @ w


@dataclass
class ChannelMaps:
    """The fitted maps of every layer: per layer arrays over the study's transforms (T rows).

    ``fitted`` (T,) marks the geometric transforms (the others hold the identity and are never scored).
    """

    layers: list[str]
    fitted: np.ndarray  # (T,) bool
    source: list[np.ndarray]  # per layer (T, C) int
    scale: list[np.ndarray]  # per layer (T, C)
    weight: list[np.ndarray]  # per layer (T, C, C)
    bias: list[np.ndarray]  # per layer (T, C)
    lam: float
    fit_images: list[str]

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays to save (``np.savez``); ``load`` reads them back."""
        arrays = {
            "layers": np.array(self.layers, dtype=str),
            "fitted": self.fitted,
            "lam": np.float64(self.lam),
            "fit_images": np.array(self.fit_images, dtype=str),
        }
        for j in range(len(self.layers)):
            arrays.update(
                {f"source_{j}": self.source[j], f"scale_{j}": self.scale[j]}
                | {f"weight_{j}": self.weight[j], f"bias_{j}": self.bias[j]}
            )
        return arrays

    @classmethod
    def load(cls, path: str) -> "ChannelMaps":
        with np.load(path) as z:
            layers = [str(v) for v in z["layers"]]
            parts = {k: [z[f"{k}_{j}"] for j in range(len(layers))] for k in ("source", "scale", "weight", "bias")}
            return cls(layers, z["fitted"], **parts, lam=float(z["lam"]), fit_images=[str(v) for v in z["fit_images"]])


def fit_maps(layers: list[str], sums: list[list[PairSums | None]], lam: float, fit_images: list[str]) -> ChannelMaps:
    """Fit every layer × transform; ``sums[j][t]`` is None for a transform that is not fitted."""
    fitted = np.array([s is not None for s in sums[0]]) if sums else np.zeros(0, bool)
    source, scale, weight, bias = [], [], [], []
    for per_t in sums:
        c = next(s.channels for s in per_t if s is not None) if fitted.any() else 0
        parts = []
        for s in per_t:
            if s is None:
                parts.append((np.arange(c), np.ones(c), np.eye(c), np.zeros(c)))
            else:
                parts.append((*fit_permutation(s), *fit_linear(s, lam)))
        source.append(np.stack([p[0] for p in parts]).astype(np.int32))
        scale.append(np.stack([p[1] for p in parts]).astype(np.float32))
        weight.append(np.stack([p[2] for p in parts]).astype(np.float32))
        bias.append(np.stack([p[3] for p in parts]).astype(np.float32))
    return ChannelMaps(list(layers), fitted, source, scale, weight, bias, float(lam), list(fit_images))


def ladder_sums(acts, samplers, group: int, maps: ChannelMaps, rungs: tuple[str, ...]):
    """Inside a compiled step: per rung, per layer (B,) ‖V⊙(φ(Tx) − M T_l φ(x))‖² with the fitted M.

    acts, samplers, group as ``analyzer.equivariance_sums``. The permutation is a gather and a scale,
    the linear map one C×C matmul per valid pixel (no more than a 1×1 convolution of the layer).
    Transforms that are not fitted (photometric) get the same-channel numerator (never reported).
    """
    import tensorflow as tf

    out = {rung: [] for rung in rungs}
    for j, (a, layer_samplers) in enumerate(zip(acts, samplers, strict=True)):
        h, w, c = a.shape[1], a.shape[2], a.shape[3]
        flat = tf.reshape(tf.cast(a, tf.float32), (-1, group, h * w, c))
        per_rung = {rung: [] for rung in rungs}
        for t, s in enumerate(layer_samplers):
            expected = tf.add_n(
                [
                    tf.gather(flat[:, 0], index, axis=1) * weights[None, :, None]
                    for index, weights in zip(s.index, s.weights, strict=True)
                ]
            )
            got = tf.gather(flat[:, t], s.positions, axis=1)
            for rung in rungs:
                if rung == "perm":
                    mapped = tf.gather(expected, maps.source[j][t], axis=2) * maps.scale[j][t]
                else:
                    mapped = tf.tensordot(expected, tf.constant(maps.weight[j][t]), axes=1) + maps.bias[j][t]
                per_rung[rung].append(tf.reduce_sum(tf.square(got - mapped), axis=[1, 2]))
        for rung in rungs:
            out[rung].append(tf.reshape(tf.stack(per_rung[rung], axis=1), (-1,)))
    return out


def ladder_rows(study, image: str, num: dict, den: list[np.ndarray]) -> list[dict]:
    """The tidy rows of one image's rungs: num {rung: per layer (T,)}, den per layer (T,) (the
    denominator of ``equivariance_error``); geometric transforms only."""
    rows = []
    geometric = study.geometric
    for rung, values in num.items():
        for layer, n, d, valid in zip(study.layers, values, den, study.layer_valid, strict=True):
            errors = error_from_sums(n, d, valid.reshape(len(valid), -1).any(axis=1))
            for k, t in enumerate(study.transforms):
                if geometric[k]:
                    row = {"image": image, "transform": t.name, "param": t.param, "layer": layer}
                    rows.append(row | {"metric": RUNGS[rung], "value": float(errors[k])})
    return rows


@dataclass
class Ladder:
    """The fitted maps and the rungs a measure job scores (``Analyzer(ladder=...)`` calls ``sums``)."""

    maps: ChannelMaps
    rungs: tuple[str, ...]
    _weights: list = field(default_factory=list, repr=False)  # per layer: its (T, C, C) maps as one tf.Variable

    def __post_init__(self):
        """The linear maps as variables, made now, before any trace: a variable a compiled function
        creates on its first call makes TensorFlow trace it twice (seconds for a study's step)."""
        if "linear" in self.rungs:
            import tensorflow as tf

            self._weights = [
                tf.Variable(w, trainable=False, name=f"ladder_maps_{j}") for j, w in enumerate(self.maps.weight)
            ]

    def sums(self, acts, samplers, group: int) -> dict:
        """{"num_<rung>": per layer (B,)} inside the compiled step."""
        return {f"num_{r}": v for r, v in ladder_sums(acts, samplers, group, self.maps, self.rungs).items()}

    def pair_sums(self, j: int, t: int, expected, got) -> dict:
        """Inside the compiled step: {"num_<rung>": (n,)} of layer ``j``, transform ``t`` from the
        expected map T_l φ(x) and φ(Tx) at the valid pixels, (n, P, c), gathered once for every rung and
        for ``equivariance_sums`` (``analyzer.layer_sums``); the same values as ``sums``."""
        import tensorflow as tf

        return {
            f"num_{r}": tf.reduce_sum(tf.square(got - self._mapped(r, j, t, expected)), axis=[1, 2]) for r in self.rungs
        }

    def _mapped(self, rung: str, j: int, t: int, expected):
        import tensorflow as tf

        maps = self.maps
        if rung == "perm":
            return tf.gather(expected, maps.source[j][t], axis=2) * maps.scale[j][t]
        return tf.tensordot(expected, self._weight(j, t), axes=1) + maps.bias[j][t]

    def _weight(self, j: int, t: int):
        """The linear map of layer ``j``, transform ``t``, read from the layer's variable: a constant
        would be written into the traced graph, whose size is capped at 2 GB (a deep model's C×C maps
        per layer × transform reach that: 2048² floats are 16 MB each)."""
        return self._weights[j][t]

    def rows(self, study, image: str, out: dict) -> list[dict]:
        """One image's rung rows from its rows of the step's outputs; none for a fit image (held-out)."""
        if image in self.maps.fit_images:
            return []
        return ladder_rows(study, image, {r: out[f"num_{r}"] for r in self.rungs}, out["den"])

    def check(self, study, transforms: list[str] | None = None) -> str | None:
        """What makes the saved maps unusable for this study (other layers, transforms or channel
        counts), or None; ``transforms``: the names the maps were fit for, when saved."""
        if self.maps.layers != list(study.layers):
            return f"fit for layers {self.maps.layers}, measuring {list(study.layers)}"
        if len(self.maps.fitted) != len(study.transforms) or not np.array_equal(self.maps.fitted, study.geometric):
            return "fit for other transforms than the study's"
        if transforms is not None and transforms != [t.name for t in study.transforms]:
            return "fit for other transforms than the study's"
        return None


def rungs_of(cfg: dict) -> tuple[str, ...]:
    """The rungs the config's ``equivariance`` section turns on, in ladder order."""
    section = cfg.get("equivariance") or {}
    return tuple(r for r in RUNGS if section.get(r, True))


def load_ladder(path: str | None, cfg: dict, study) -> Ladder | None:
    """The measure job's ladder: the saved maps of ``path`` and the config's rungs (None: none measured)."""
    rungs = rungs_of(cfg)
    if path is None or not rungs:
        return None
    found = Ladder(ChannelMaps.load(path), rungs)
    with np.load(path) as saved:
        names = [str(v) for v in saved["transforms"]] if "transforms" in saved else None
    problem = found.check(study, names)
    if problem:
        raise InputError(
            f"equivariance: the channel maps {path} do not fit this study ({problem}); rerun fit_channel_maps"
        )
    return found

"""Two measures of how a network follows continuous shifts, rotations and scalings: the Lie derivative
(Gruver et al. 2022, "The Lie derivative for measuring learned equivariance") and the consistency of
top-1 classes over a shift sweep (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again").

Lie derivative rows (``metric = lie_derivative``; ``transform`` is the generator ``shift_x``,
``shift_y``, ``rotate`` or ``scale``; ``param`` empty), one per image and generator:

- ``layer = output``: ‖d/dt z(T_t x)‖₂ at t = 0, z the logits (absolute, in logit units per pixel of
  shift, per radian of rotation, per unit of log-scale);
- ``layer = <layer>``: ‖d/dt T_{t,l}⁻¹ φ_l(T_t x)‖ / ‖φ_l(x)‖ at t = 0, the layer's map warped back at
  the layer's grid (0: the layer follows the transform exactly; relative, per unit of t).

The generators' actions (flow times central differences) and the network's derivative along them are
``convlens.core.lie``'s (wrap boundary for shifts, clamped edges for rotate and scale). Which
generators a study gets: those of the continuous kinds in its transforms (``Kind.lie`` in
``convlens.transform_kinds``), with config ``lie_derivative: true``.

Consistency rows (``metric = consistency``, ``layer = output``, ``transform`` the sweep's curve with
underscores: ``shift_x``, ``shift_y``, ``shift_diagonal``; ``param`` empty), one per image and shift
curve with at least one shift: over the curve's offsets with the reference (offset 0) among them, the
fraction of the pairs of distinct offsets whose top-1 classes agree. A crop-mode sweep (Zhang 2019:
the image enlarged, a window cut at each offset) counts its own offsets only, its centred crop among them.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from convlens.core.head import preprocess
from convlens.core.lie import argmax_max_pool, lie_derivatives
from convlens.transform_kinds import CURVES, REGISTRY

CONSISTENCY_KINDS = ("shift",)  # the kinds whose sweeps get a consistency row (Zhang 2019's protocol)


# The comparison's groups of these rows (``transform`` is a generator or a curve, not a transform of
# the study): per metric, the rows' transform value -> group. The Lie derivative pools a kind's
# generators ("Lie derivative (shift)": shift_x and shift_y, both per pixel); consistency is per curve.
MEASURE_GROUPS: dict[str, dict[str, str]] = {
    "lie_derivative": {g: f"Lie derivative ({k.name})" for k in REGISTRY.values() for g in k.lie},
    "consistency": {
        c.name.replace(" ", "_"): f"consistency ({c.name})"
        for k in REGISTRY.values()
        if k.name in CONSISTENCY_KINDS
        for c in k.curves
    },
}


def measure_group(transform: str, metric: str) -> str | None:
    """The comparison group of a Lie derivative or consistency row; None for any other row."""
    return MEASURE_GROUPS.get(metric, {}).get(transform)


def generators_of(transforms) -> list[str]:
    """The Lie generators of the continuous kinds among ``transforms``, each once, in registry order."""
    kinds = {t.kind for t in transforms}
    return [g for k in REGISTRY.values() if k.name in kinds for g in k.lie]


def consistency(transforms, probs: np.ndarray) -> dict[str, float]:
    """Per shift curve (name with underscores): the fraction of pairs of distinct offsets of the sweep,
    the reference (row 0, offset 0) included, whose top-1 classes agree. ``probs`` (T, K), rows as
    ``transforms``. Curves with no shift are left out."""
    top = np.asarray(probs).argmax(axis=1)
    curves: dict[str, dict[float, int]] = {}
    for k, t in enumerate(transforms):
        axis = t.axis
        if t.kind in CONSISTENCY_KINDS and axis is not None:
            # offset 0 is the reference, except on a crop sweep (no neutral point: its own centred crop)
            start = {} if CURVES[axis[0]].neutral is None else {0.0: int(top[0])}
            curves.setdefault(axis[0], start)[float(axis[1])] = int(top[k])
    out = {}
    for curve, classes in curves.items():
        pairs = list(combinations(classes.values(), 2))
        if pairs:  # a curve of one offset (a crop sweep of one) has no pair to agree on
            out[curve.replace(" ", "_")] = float(np.mean([a == b for a, b in pairs]))
    return out


def consistency_rows(transforms, image: str, probs: np.ndarray) -> list[dict]:
    """One image's consistency rows (see the module docstring)."""
    return [
        {"image": image, "transform": curve, "param": "", "layer": "output", "metric": "consistency", "value": v}
        for curve, v in consistency(transforms, probs).items()
    ]


class LieStep:
    """The Lie derivatives of an Analyzer's model at a chunk of images, compiled once: one derivative of
    the model along each generator's tangent per image (the reference image only; two reverse passes)."""

    def __init__(self, analyzer, generators: list[str], layers: list[str], grids: dict):
        import tensorflow as tf

        self.generators, self.layers = list(generators), list(layers)
        matrices = [grids[layer].to_input() for layer in self.layers]
        n_layers = len(self.layers)

        def forward(x):
            with argmax_max_pool():  # runs while the step traces (see core.lie.argmax_max_pool)
                outs = analyzer.probe(preprocess(x, analyzer.preprocess_mode), training=False)
            logits, _ = analyzer.head.logits_and_probs(outs[-2], outs[-1])
            return [tf.cast(a, tf.float32) for a in outs[:n_layers]], logits

        # compiled once per job (its chunks have one size), like the Analyzer's step
        self._step = tf.function(
            lambda x: lie_derivatives(forward, x, self.generators, matrices), reduce_retracing=True, autograph=False
        )

    def run(self, pixels: np.ndarray) -> dict:
        """pixels (n, H, W, C) in [0, 1]: {"output": (n, G), "layers": per layer (n, G)}."""
        output, layers = self._step(np.asarray(pixels, np.float32))
        shape = (len(pixels), len(self.generators))
        return {"output": np.asarray(output).reshape(shape), "layers": [np.asarray(v).reshape(shape) for v in layers]}

    def rows(self, image: str, lie: dict, i: int) -> list[dict]:
        """Image ``i``'s rows of a chunk's ``run`` result (see the module docstring)."""
        rows = []
        for layer, values in [("output", lie["output"]), *zip(self.layers, lie["layers"], strict=True)]:
            for g, name in enumerate(self.generators):
                rows.append(
                    {
                        "image": image,
                        "transform": name,
                        "param": "",
                        "layer": layer,
                        "metric": "lie_derivative",
                        "value": float(values[i, g]),
                    }
                )
        return rows

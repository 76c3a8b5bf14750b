"""Training-data augmentation: random shifts, rotations, flips and scalings of each training batch.

Augmentation lives in the training data pipeline, not in the model, so the saved model (and every
layer the report analyses) is the same architecture with or without it. Each batch's warps are
drawn as one stack of forward matrices (the same conventions as ``convlens.transforms``: about the
image centre, y down, rotation counter-clockwise on screen) and applied in one
``keras.ops.image.affine_transform`` call (``transforms.warp``), so there is one warp mechanism and
no per-image Python loop. The draws are seeded by the config's seed, the epoch and the batch index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convlens.transforms import warp


@dataclass(frozen=True)
class Augment:
    """Ranges of the random warps; each image draws its own parameters.

    shift_px: whole-pixel shifts dx, dy, each uniform in [-shift_px, shift_px];
    rotate_deg: angle uniform in [-rotate_deg, rotate_deg]; scale: factor uniform in [lo, hi];
    hflip / vflip: each applied with probability 1/2; fill_mode: how uncovered pixels are filled
    (constant fills black, the transforms' default).
    """

    shift_px: int = 0
    rotate_deg: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    hflip: bool = False
    vflip: bool = False
    fill_mode: str = "constant"

    @classmethod
    def from_spec(cls, spec: dict | None) -> "Augment | None":
        """The augmentation a model's ``augment`` config entry asks for, or None when absent."""
        if not spec:
            return None
        return cls(
            int(spec.get("shift_px", 0)),
            float(spec.get("rotate_deg", 0.0)),
            tuple(float(v) for v in spec.get("scale", (1.0, 1.0))),
            bool(spec.get("hflip", False)),
            bool(spec.get("vflip", False)),
            spec.get("fill_mode", "constant"),
        )

    def draw(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Per-image parameters for ``n`` images: dx, dy (pixels), angle (degrees), factor, fx, fy (+-1)."""
        s = self.shift_px

        def signs(on: bool) -> np.ndarray:  # -1 flips the axis
            return np.where(rng.random(n) < 0.5, -1.0, 1.0) if on else np.ones(n)

        return {
            "dx": rng.integers(-s, s + 1, n).astype(np.float64),
            "dy": rng.integers(-s, s + 1, n).astype(np.float64),
            "angle": rng.uniform(-self.rotate_deg, self.rotate_deg, n),
            "factor": rng.uniform(*self.scale, n),
            "fx": signs(self.hflip),
            "fy": signs(self.vflip),
        }


def matrices(params: dict[str, np.ndarray], height: int, width: int) -> np.ndarray:
    """Forward matrices (n, 3, 3): flip, then scale, then rotate about the image centre, then shift.

    Equals ``shift @ rotate @ scale @ flips`` of ``transforms.forward_matrix`` (checked in tests).
    """
    theta = np.radians(params["angle"])
    c, s, f = np.cos(theta), np.sin(theta), params["factor"]
    n = len(theta)
    a = np.empty((n, 2, 2))
    a[:, 0, 0], a[:, 0, 1] = f * c * params["fx"], f * s * params["fy"]
    a[:, 1, 0], a[:, 1, 1] = -f * s * params["fx"], f * c * params["fy"]
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    out = np.zeros((n, 3, 3))
    out[:, :2, :2] = a
    out[:, :2, 2] = centre - a @ centre + np.stack([params["dx"], params["dy"]], axis=1)
    out[:, 2, 2] = 1.0
    return out


def augment_batch(images: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """One batch (B, H, W, C) float in [0, 1], each image warped by its own random draw."""
    forward = matrices(aug.draw(rng, len(images)), images.shape[1], images.shape[2])
    return np.asarray(warp(images, forward, fill_mode=aug.fill_mode, fill_value=0.0))


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, aug: Augment, seed: int, prepare=None):
    """A Keras PyDataset of augmented, shuffled training batches (a new order and new warps each epoch).

    ``prepare`` (e.g. the model's preprocessing) runs on each batch after the warp.
    """
    import keras

    class AugmentedBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch, self.order = 0, None

        def __len__(self):
            return -(-len(x) // batch_size)

        def __getitem__(self, index):
            # the epoch's order and the batch's warps depend only on (seed, epoch, index)
            if self.order is None or self.order[0] != self.epoch:
                self.order = self.epoch, np.random.default_rng([seed, self.epoch]).permutation(len(x))
            rows = np.sort(self.order[1][index * batch_size : (index + 1) * batch_size])
            batch = augment_batch(x[rows], aug, np.random.default_rng([seed, self.epoch, index]))
            return (prepare(batch) if prepare else batch), y[rows]

        def on_epoch_end(self):
            self.epoch += 1

    return AugmentedBatches()

"""Perturbations: the copies of each image that the batched passes feed the model."""

from __future__ import annotations

import numpy as np

from convlens.errors import InputError
from convlens.stats import gaussian_blur


class Perturbation:
    """``count`` perturbed copies of every image of ``x``; ``inputs(images, index)`` builds the
    copies ``index`` of the images ``images`` as (b, k, H, W, C), so they can be made in chunks."""

    def __init__(self, x: np.ndarray, count: int):
        self.x, self.count = x, int(count)

    def inputs(self, images: slice, index: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Stack(Perturbation):
    """Given images: copy i of image b is ``arrays[i][b]``."""

    def __init__(self, arrays: list[np.ndarray]):
        super().__init__(arrays[0], len(arrays))
        self.arrays = arrays

    def inputs(self, images, index):
        return np.stack([self.arrays[i][images] for i in index], axis=1)


class Noise(Perturbation):
    """Copy i: x plus Gaussian noise of std ``level`` times the image's range, seeded by (seed, i)."""

    def __init__(self, x, level: float, samples: int, seed: int):
        super().__init__(x, samples)
        self.sigma = level * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
        self.seed = seed

    def inputs(self, images, index):
        noise = np.stack([np.random.default_rng([self.seed, i]).standard_normal(self.x.shape[1:]) for i in index])
        return self.x[images, None] + self.sigma[images, None, None, None, None] * noise[None]


class Path(Perturbation):
    """Copy i: baseline + alpha_i (x - baseline), alpha at the midpoints of ``steps`` intervals."""

    def __init__(self, x, baseline: np.ndarray, steps: int):
        super().__init__(x, steps)
        self.baseline = baseline
        self.alphas = (np.arange(steps) + 0.5) / steps

    def inputs(self, images, index):
        a = self.alphas[index][None, :, None, None, None]
        start = self.baseline[images, None]
        return start + a * (self.x[images, None] - start)


class Patches(Perturbation):
    """A patch filled with ``fill`` at every stride; the last row and column reach the border."""

    def __init__(self, x, patch: int, stride: int, fill: float):
        self.size = (min(patch, x.shape[1]), min(patch, x.shape[2]))
        self.rows, self.cols = (starts(n, p, stride) for n, p in zip(x.shape[1:3], self.size, strict=False))
        self.corners = [(r, c) for r in self.rows for c in self.cols]
        super().__init__(x, len(self.corners))
        self.fill = fill

    def inputs(self, images, index):
        out = np.repeat(self.x[images, None], len(index), axis=1)
        for j, i in enumerate(index):
            r, c = self.corners[i]
            out[:, j, r : r + self.size[0], c : c + self.size[1], :] = self.fill
        return out


def starts(size: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, size - patch + 1, stride))
    return starts if starts[-1] == size - patch else starts + [size - patch]


class ChannelMasks(Perturbation):
    """The image times each channel of the CAM layer, upsampled and scaled to [0, 1] (Score-CAM).
    A constant channel gives an all-zero mask."""

    def __init__(self, x, activations: np.ndarray):
        super().__init__(x, activations.shape[-1])
        self.activations = activations

    def inputs(self, images, index):
        up = np.asarray(
            upsample(
                np.moveaxis(self.activations[images][..., index], -1, 1).reshape((-1,) + self.activations.shape[1:3]),
                self.x.shape[1:3],
            )
        )
        up = up.reshape((-1, len(index)) + up.shape[1:])  # (b, k, H, W)
        low, high = up.min(axis=(2, 3), keepdims=True), up.max(axis=(2, 3), keepdims=True)
        masks = np.where(high > low, (up - low) / np.where(high > low, high - low, 1.0), 0.0)
        return self.x[images, None] * masks[..., None]


class Ordered(Perturbation):
    """Step s replaces, in ``start``, the pixels ranked below ``counts[s]`` by ``end``'s."""

    def __init__(self, start, end, ranks: np.ndarray, counts: np.ndarray):
        super().__init__(start, len(counts))
        self.end, self.ranks, self.counts = end, ranks, counts

    def inputs(self, images, index):
        chosen = self.ranks[images, None] < self.counts[index][None, :, None, None]
        return np.where(chosen[..., None], self.end[images, None], self.x[images, None])


def baseline_image(x: np.ndarray, kind, blur_sigma: float = 5.0, seed: int = 0) -> np.ndarray:
    """A reference image per image of x: "black", "white", "blur", "noise" (uniform) or a number."""
    if isinstance(kind, (int, float)) and not isinstance(kind, bool):
        return np.full_like(x, kind)
    if kind == "black":
        return np.zeros_like(x)
    if kind == "white":
        return np.ones_like(x)
    if kind == "blur":
        return gaussian_blur(x, blur_sigma, axes=(1, 2)).astype(x.dtype)
    if kind == "noise":
        return np.random.default_rng(seed).random(x.shape).astype(x.dtype)
    raise InputError(f"baseline: {kind!r} is not black, white, blur, noise or a number")


def upsample(maps, size):
    """(B, h, w) maps -> (B, H, W) tensor, bilinear (how every CAM map reaches input resolution)."""
    import keras

    return keras.ops.image.resize(maps[..., None], size, interpolation="bilinear")[..., 0]

"""Which feature maps to show and how to scale them for display (numpy only)."""

from __future__ import annotations

import numpy as np


def top_channels(reference_map: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k channels with the largest mean activation, most active first.

    reference_map: (h, w, c), the layer's output for the untransformed image. The same indices are
    then used for every transform of that image, so rows of a sheet compare like with like.
    Ties keep channel order (stable sort).
    """
    means = reference_map.reshape(-1, reference_map.shape[-1]).mean(axis=0)
    order = np.argsort(-means, kind="stable")
    return order[: min(k, reference_map.shape[-1])]


def display_stats(reference_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of the reference map: (c,), (c,)."""
    flat = reference_map.reshape(-1, reference_map.shape[-1]).astype(np.float64)
    return flat.mean(axis=0), flat.std(axis=0)


def to_display(maps: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per-channel display scaling as in Deep Learning with Python 5.4, to uint8.

    maps: (..., h, w, c). Each channel is centred on ``mean`` and scaled so one ``std`` spans 64
    grey levels around 128, then clipped. A channel whose reference is constant (std 0) is drawn
    flat at mid-grey where it equals that constant, brighter or darker where a transform moved it,
    never NaN.
    """
    maps = np.asarray(maps, dtype=np.float64)
    scale = np.where(std > 0, std, 1.0)
    out = (maps - mean) / scale * 64.0 + 128.0
    np.copyto(out, 128.0, where=np.isnan(out))  # infinities are clipped below
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def default_sheet_layers(conv_layers: list[str], count: int = 3) -> list[str]:
    """The first conv layer plus deeper conv layers spread to the last one: at most ``count``."""
    if len(conv_layers) <= count:
        return list(conv_layers)
    picks = np.linspace(0, len(conv_layers) - 1, count).round().astype(int)
    return [conv_layers[i] for i in dict.fromkeys(picks)]

"""Attribution maps (where the network looks). Math in keras.ops, so any Keras backend runs it."""

from __future__ import annotations

import numpy as np


def gradcam_from_gradients(activations, gradients):
    """Grad-CAM (Selvaraju et al. 2017) from a layer's activations and the class score's gradient.

    activations, gradients: (B, h, w, c). Channel weight alpha_c = spatial mean of the gradient;
    map = ReLU(sum_c alpha_c * A_c). Returns (B, h, w).
    """
    import keras

    weights = keras.ops.mean(gradients, axis=(1, 2), keepdims=True)
    return keras.ops.relu(keras.ops.sum(weights * activations, axis=-1))


def normalize_map(heatmap: np.ndarray) -> tuple[np.ndarray, bool]:
    """Scale a (H, W) map to [0, 1] by its maximum; an all-zero map stays zero and is flagged.

    Returns (map, is_all_zero). Never divides by zero, never produces NaN.
    """
    heatmap = np.nan_to_num(np.asarray(heatmap, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(heatmap.max()) if heatmap.size else 0.0
    if peak <= 0.0:
        return np.zeros_like(heatmap), True
    return np.clip(heatmap / peak, 0.0, 1.0), False

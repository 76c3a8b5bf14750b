"""Image parameterizations: free parameters -> images, and back exactly; image-space penalties."""

from __future__ import annotations

import numpy as np

from convlens.stats import gaussian_blur as blur

PARAMETERIZATIONS = ("pixel", "fourier", "raw")


# Lucid's ImageNet colour correlation (square root via SVD), columns scaled to unit max norm:
# a decorrelated image d becomes colours d @ COLOR_CORRELATION.T
_COLOR_SVD_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


COLOR_CORRELATION = _COLOR_SVD_SQRT / np.max(np.linalg.norm(_COLOR_SVD_SQRT, axis=0))


_EPS = 1e-6  # images are clipped to [_EPS, 1 - _EPS] before the inverse sigmoid


class Parameterization:
    """Maps free parameters (N, ...) to images (N, H, W, C), and back exactly.

    ``raw``: params are the pixels themselves, unbounded (plain gradient ascent; the preset of the
    report's filter patterns).
    ``pixel``: params have the image's shape; image = sigmoid(params).
    ``fourier``: params (N, 2, C, H, W // 2 + 1) are the real and imaginary parts of each channel's
    rfft2 spectrum divided by ``spectrum_scale`` (1 / max(f, 1 / max(H, W)) ** decay_power, times
    Lucid's sqrt(H W) / 4); image = sigmoid(decorrelate(irfft2(params * scale))). Since the
    spectrum of a real image is Hermitian, a few imaginary parts (DC and Nyquist bins) do not
    reach the image: image -> params -> image is exact, params -> image -> params only for
    params that came from an image.
    """

    def __init__(self, kind: str, image_shape, decay_power: float = 1.0):
        if kind not in PARAMETERIZATIONS:
            raise ValueError(f"unknown parameterization {kind!r}; known: {', '.join(PARAMETERIZATIONS)}")
        self.kind = kind
        self.h, self.w, self.c = (int(s) for s in image_shape)
        fy = np.fft.fftfreq(self.h)[:, None]
        fx = np.fft.rfftfreq(self.w)[None, :]
        freqs = np.sqrt(fx * fx + fy * fy)
        scale = 1.0 / np.maximum(freqs, 1.0 / max(self.h, self.w)) ** decay_power
        self.spectrum_scale = scale * np.sqrt(self.h * self.w) / 4.0  # (H, W // 2 + 1)

    def params_shape(self, n: int) -> tuple[int, ...]:
        if self.kind in ("pixel", "raw"):
            return (n, self.h, self.w, self.c)
        return (n, 2, self.c, self.h, self.w // 2 + 1)

    def params_to_image(self, params):
        """Differentiable (TensorFlow ops): params -> images (N, H, W, C) in (0, 1)."""
        import tensorflow as tf

        params = tf.convert_to_tensor(params, dtype=tf.float32)
        if self.kind == "raw":
            return params
        if self.kind == "pixel":
            return tf.sigmoid(params)
        scale = tf.constant(self.spectrum_scale, dtype=tf.complex64)
        spectrum = tf.complex(params[:, 0], params[:, 1]) * scale
        image = tf.signal.irfft2d(spectrum, fft_length=[self.h, self.w])  # (N, C, H, W)
        image = tf.transpose(image, (0, 2, 3, 1))
        if self.c == 3:
            image = tf.einsum("nhwk,ck->nhwc", image, tf.constant(COLOR_CORRELATION, dtype=tf.float32))
        return tf.sigmoid(image)

    def image_to_params(self, images: np.ndarray) -> np.ndarray:
        """The inverse of params_to_image (numpy, float64 inside): images (N, H, W, C) -> params."""
        if self.kind == "raw":
            return np.asarray(images, dtype="float32")
        images = np.clip(np.asarray(images, dtype=np.float64), _EPS, 1.0 - _EPS)
        logits = np.log(images) - np.log1p(-images)
        if self.kind == "pixel":
            return logits.astype("float32")
        if self.c == 3:
            logits = logits @ np.linalg.inv(COLOR_CORRELATION).T
        spectrum = np.fft.rfft2(logits.transpose(0, 3, 1, 2), axes=(-2, -1)) / self.spectrum_scale
        return np.stack([spectrum.real, spectrum.imag], axis=1).astype("float32")


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (N, H, W, C) images over H and W, reflecting at the edges."""
    return blur(images, sigma, axes=(1, 2), radius=max(1, int(np.ceil(3.0 * sigma))), mode="reflect")


def total_variation(images):
    """Anisotropic L1 total variation per image: mean |vertical step| + mean |horizontal step|, (N,)."""
    import tensorflow as tf

    dy = tf.abs(images[:, 1:] - images[:, :-1])
    dx = tf.abs(images[:, :, 1:] - images[:, :, :-1])
    return tf.reduce_mean(dy, axis=(1, 2, 3)) + tf.reduce_mean(dx, axis=(1, 2, 3))

"""Regularized feature visualization: images that maximize a unit, kept natural-looking.

After Olah, Mordvintsev & Schubert, "Feature Visualization" (Distill 2017) and Mordvintsev et al.,
"Differentiable Image Parameterizations" (Distill 2018). backend.filter_patterns is the plain
version (gradient ascent on raw pixels); here the image is

- *parameterized* (``param``): ``pixel`` = sigmoid of free per-pixel values; ``fourier`` = a real
  2-D spectrum per channel scaled by 1/f, inverse FFT, colour decorrelation with Lucid's ImageNet
  colour matrix (3-channel images only), then a sigmoid. Both keep pixels in (0, 1), and
  Parameterization.image_to_params is the exact inverse of params_to_image;
- made *robust to transformations*: each step the objective is taken on a randomly jittered
  (reflect-pad + crop, ``jitter`` px), scaled (a factor from ``scales``) and rotated
  (uniform in +-``rotate_deg``) copy. One draw per step, shared by the whole batch, so each
  image's path depends only on its own start and the seed;
- *penalized*: total variation (``tv_weight``), and a Gaussian blur (``blur_sigma``) of the image
  every ``blur_every`` steps.

Objectives, all before the unit's activation function (a silent ReLU unit still has a gradient):

- ``channel``: mean pre-activation of channel c of ``layer_path`` (the 2-pixel border left out of
  maps larger than 8x8, as backend.filter_patterns does, so the two are measured alike);
- ``neuron``: the pre-activation of channel c at the centre position (h // 2, w // 2);
- ``class``: the logit of class c before the softmax (backend.Head); ``layer_path`` is None.
For a layer with flat (B, units) output, ``channel`` and ``neuron`` are both unit c.

API::

    visualize(model, layer_path, channels, input_shape=None, preprocess_mode="unit",
              objective="channel", param="fourier", steps=256, lr=0.05, optimizer="adam",
              jitter=4, scales=DEFAULT_SCALES, rotate_deg=5.0, tv_weight=0.0,
              blur_every=0, blur_sigma=0.5, seed=0) -> dict
        # {"images": (N, H, W, C) in (0, 1), "objective": (N,) on the final un-transformed images,
        #  "objective_start": (N,) on the start images}
    objective_values(model, layer_path, channels, images, preprocess_mode, objective="channel")
        -> (N,) np.ndarray
    Parameterization(kind, image_shape).params_to_image(params) / .image_to_params(images)

All channels are optimized as one batch in one compiled step. ``input_shape`` other than the
model's own works for channel/neuron objectives when every layer up to ``layer_path`` is
convolutional (see backend.build_probe); nested models are descended into.
"""

from __future__ import annotations

import numpy as np

from convlens import attribution
from convlens.backend import Head, build_probe, pre_activation_probe, preprocess
from convlens.errors import InputError

OBJECTIVES = ("channel", "neuron", "class")
PARAMS = ("pixel", "fourier")
OPTIMIZERS = ("adam", "normalized")
DEFAULT_SCALES = (1.0, 0.975, 1.025, 0.95, 1.05)

# Lucid's ImageNet colour correlation (square root via SVD), columns scaled to unit max norm:
# a decorrelated image d becomes colours d @ COLOR_CORRELATION.T
_COLOR_SVD_SQRT = np.array([[0.26, 0.09, 0.02],
                            [0.27, 0.00, -0.05],
                            [0.27, -0.09, 0.03]])
COLOR_CORRELATION = _COLOR_SVD_SQRT / np.max(np.linalg.norm(_COLOR_SVD_SQRT, axis=0))

_EPS = 1e-6  # images are clipped to [_EPS, 1 - _EPS] before the inverse sigmoid
_BORDER = 2  # border left out of the channel mean, for maps larger than _BORDER_MIN x _BORDER_MIN
_BORDER_MIN = 8


class Parameterization:
    """Maps free parameters (N, ...) to images (N, H, W, C) in (0, 1), and back exactly.

    ``pixel``: params have the image's shape; image = sigmoid(params).
    ``fourier``: params (N, 2, C, H, W // 2 + 1) are the real and imaginary parts of each channel's
    rfft2 spectrum divided by ``spectrum_scale`` (1 / max(f, 1 / max(H, W)) ** decay_power, times
    Lucid's sqrt(H W) / 4); image = sigmoid(decorrelate(irfft2(params * scale))). Since the
    spectrum of a real image is Hermitian, a few imaginary parts (DC and Nyquist bins) do not
    reach the image: image -> params -> image is exact, params -> image -> params only for
    params that came from an image.
    """

    def __init__(self, kind: str, image_shape, decay_power: float = 1.0):
        if kind not in PARAMS:
            raise ValueError(f"unknown parameterization {kind!r}; known: {', '.join(PARAMS)}")
        self.kind = kind
        self.h, self.w, self.c = (int(s) for s in image_shape)
        fy = np.fft.fftfreq(self.h)[:, None]
        fx = np.fft.rfftfreq(self.w)[None, :]
        freqs = np.sqrt(fx * fx + fy * fy)
        scale = 1.0 / np.maximum(freqs, 1.0 / max(self.h, self.w)) ** decay_power
        self.spectrum_scale = scale * np.sqrt(self.h * self.w) / 4.0  # (H, W // 2 + 1)

    def params_shape(self, n: int) -> tuple[int, ...]:
        if self.kind == "pixel":
            return (n, self.h, self.w, self.c)
        return (n, 2, self.c, self.h, self.w // 2 + 1)

    def params_to_image(self, params):
        """Differentiable (TensorFlow ops): params -> images (N, H, W, C) in (0, 1)."""
        import tensorflow as tf

        params = tf.convert_to_tensor(params, dtype=tf.float32)
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
    return attribution.gaussian_blur(images, sigma, axes=(1, 2), radius=max(1, int(np.ceil(3.0 * sigma))),
                                     mode="reflect")


def total_variation(images):
    """Anisotropic L1 total variation per image: mean |vertical step| + mean |horizontal step|, (N,)."""
    import tensorflow as tf

    dy = tf.abs(images[:, 1:] - images[:, :-1])
    dx = tf.abs(images[:, :, 1:] - images[:, :, :-1])
    return tf.reduce_mean(dy, axis=(1, 2, 3)) + tf.reduce_mean(dx, axis=(1, 2, 3))


def _objective_fn(model, layer_path: str | None, input_shape: tuple[int, int, int], preprocess_mode: str,
                  objective: str):
    """A function (images (N, H, W, C) in [0, 1], index (N,) int) -> (N,) objective values."""
    import keras
    import tensorflow as tf

    own_shape = tuple(int(s) for s in model.inputs[0].shape[1:])
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    if objective == "class":
        if layer_path is not None:
            raise ValueError("the class objective takes layer_path=None (channels are class indices)")
        if tuple(input_shape) != own_shape:
            raise InputError(f"the class objective needs the model's own input size {own_shape}, not {input_shape}")
        probe = build_probe(model, [], None)
        head = Head(model)

        def class_logit(x, index):
            _, pre, out = probe(preprocess(x, preprocess_mode), training=False)
            logits, _ = head.logits_and_probs(pre, out)
            return tf.gather(logits, index, batch_dims=1)

        return class_logit

    if layer_path is None:
        raise ValueError(f"the {objective} objective needs a layer_path")
    probe, response = pre_activation_probe(model, layer_path, input_shape, f"use the model's input size {own_shape}")

    def unit_value(x, index):
        outs = probe(preprocess(x, preprocess_mode), training=False)
        act = response(outs[-1] if isinstance(outs, (list, tuple)) else outs)
        if len(act.shape) == 4 and objective == "channel":
            if act.shape[1] > _BORDER_MIN and act.shape[2] > _BORDER_MIN:  # padding dominates the border
                act = act[:, _BORDER:-_BORDER, _BORDER:-_BORDER, :]
            act = keras.ops.mean(act, axis=(1, 2))
        elif len(act.shape) == 4:
            act = act[:, act.shape[1] // 2, act.shape[2] // 2, :]
        elif len(act.shape) != 2:
            raise InputError(f"layer {layer_path!r} outputs shape {tuple(act.shape)}; "
                             "objectives need (B, h, w, c) or (B, units)")
        return tf.gather(act, index, batch_dims=1)

    return unit_value


def _evaluate(fn, images: np.ndarray, channels, batch_size: int = 64) -> np.ndarray:
    index = np.asarray(channels, dtype="int32")
    images = np.asarray(images, dtype="float32")
    return np.concatenate([np.asarray(fn(images[i:i + batch_size], index[i:i + batch_size]))
                           for i in range(0, len(images), batch_size)])


def objective_values(model, layer_path: str | None, channels: list[int], images: np.ndarray,
                     preprocess_mode: str, objective: str = "channel") -> np.ndarray:
    """The objective of ``channels[i]`` on ``images[i]`` (N, H, W, C) in [0, 1], as visualize defines it."""
    fn = _objective_fn(model, layer_path, tuple(np.shape(images)[1:]), preprocess_mode, objective)
    return _evaluate(fn, images, channels)


def _affine(scale: float, angle: float, h: int, w: int) -> np.ndarray:
    """ImageProjectiveTransform parameters (1, 8): scale by ``scale`` and rotate by ``angle`` (radians)
    about the image centre, as a map from output to input coordinates."""
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    return np.array([[cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0]],
                    dtype="float32")


def start_images(channels: list[int], image_shape, seed: int) -> np.ndarray:
    """Seeded grey noise 0.5 + 0.05 N(0, 1), one image per channel, drawn from (seed, channel) so an
    image does not depend on the rest of the batch."""
    return np.stack([0.5 + 0.05 * np.random.default_rng([seed, int(c)]).standard_normal(tuple(image_shape))
                     for c in channels]).astype("float32")


def visualize(model, layer_path: str | None, channels: list[int], input_shape=None, preprocess_mode: str = "unit",
              objective: str = "channel", param: str = "fourier", steps: int = 256, lr: float = 0.05,
              optimizer: str = "adam", jitter: int = 4, scales=DEFAULT_SCALES, rotate_deg: float = 5.0,
              tv_weight: float = 0.0, blur_every: int = 0, blur_sigma: float = 0.5, seed: int = 0) -> dict:
    """Maximize the objective of every channel in ``channels`` (class indices for ``class``), one batch.

    ``input_shape`` (H, W, C) defaults to the model's own. ``optimizer``: ``adam``
    (keras.optimizers.Adam at ``lr``) or ``normalized`` (params move by ``lr`` times the ascent
    gradient over its RMS, per image; lr around 0.5 suits it). Set ``jitter=0``, ``scales=(1.0,)``,
    ``rotate_deg=0`` to switch transformations off. Start images: start_images(channels, shape, seed).
    Returns images (N, H, W, C) in (0, 1), objective (N,) on them un-transformed, objective_start (N,).
    """
    import keras
    import tensorflow as tf

    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    shape = tuple(int(s) for s in (model.inputs[0].shape[1:] if input_shape is None else input_shape))
    h, w = shape[:2]
    if jitter >= min(h, w):
        raise InputError(f"jitter {jitter} px must be smaller than the image ({h}x{w})")
    fn = _objective_fn(model, layer_path, shape, preprocess_mode, objective)
    parameterization = Parameterization(param, shape)
    start = start_images(channels, shape, seed)
    params = keras.Variable(parameterization.image_to_params(start), dtype="float32", name="featviz_params")
    index = tf.constant(np.asarray(channels, dtype="int32"))
    affine_on = rotate_deg > 0 or any(s != 1.0 for s in scales)
    adam = None
    if optimizer == "adam":
        adam = keras.optimizers.Adam(learning_rate=lr)
        adam.build([params])

    def transform(image, offset, affine):
        if jitter:
            padded = tf.pad(image, [[0, 0], [jitter, jitter], [jitter, jitter], [0, 0]], mode="REFLECT")
            image = tf.slice(padded, tf.stack([0, offset[0], offset[1], 0]), [-1, h, w, shape[2]])
        if affine_on:
            image = tf.raw_ops.ImageProjectiveTransformV3(
                images=image, transforms=affine, output_shape=[h, w], fill_value=0.0,
                interpolation="BILINEAR", fill_mode="REFLECT")
        return image

    def step(offset, affine):
        with tf.GradientTape() as tape:
            image = parameterization.params_to_image(params.value)
            value = fn(transform(image, offset, affine), index)
            # images are independent, so d(sum)/d(params_i) is image i's own gradient
            loss = -tf.reduce_sum(value)
            if tv_weight:
                loss += tv_weight * tf.reduce_sum(total_variation(image))
        grad = tape.gradient(loss, params.value)
        if adam is not None:
            adam.apply_gradients([(grad, params)])
        else:
            axes = tuple(range(1, len(grad.shape)))
            rms = tf.sqrt(tf.reduce_mean(tf.square(grad), axis=axes, keepdims=True))
            params.assign_sub(lr * grad / (rms + 1e-8))

    compiled = tf.function(step, reduce_retracing=True)
    rng = np.random.default_rng(seed)
    for i in range(1, steps + 1):
        offset = rng.integers(0, 2 * jitter + 1, size=2).astype("int32")
        angle = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg))
        affine = _affine(float(rng.choice(scales)), angle, h, w)
        compiled(tf.constant(offset), tf.constant(affine))
        if blur_every and i % blur_every == 0:
            image = np.asarray(parameterization.params_to_image(params.value))
            params.assign(parameterization.image_to_params(gaussian_blur(image, blur_sigma)))
    images = np.asarray(parameterization.params_to_image(params.value))
    return {"images": images, "objective": _evaluate(fn, images, channels),
            "objective_start": _evaluate(fn, start, channels)}

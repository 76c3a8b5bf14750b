"""Activation maximization: every channel optimized as one batch in one compiled step."""

from __future__ import annotations

import numpy as np

from convlens.errors import InputError
from convlens.featviz.objectives import evaluate, objective_fn
from convlens.featviz.params import Parameterization, gaussian_blur, total_variation
from convlens.transforms import forward_matrix, keras_transform_vector

OPTIMIZERS = ("adam", "normalized")


DEFAULT_SCALES = (1.0, 0.975, 1.025, 0.95, 1.05)
# named settings of visualize(); "plain" is the report's filter patterns: gradient ascent on the raw
# pixels, each step normalized to unit RMS, no transformations or penalties
PRESETS = {
    "plain": {
        "param": "raw",
        "optimizer": "normalized",
        "jitter": 0,
        "scales": (1.0,),
        "rotate_deg": 0.0,
        "tv_weight": 0.0,
        "blur_every": 0,
    },
}


def start_images(channels: list[int], image_shape, seed: int) -> np.ndarray:
    """Seeded grey noise 0.5 + 0.05 N(0, 1), one image per channel, drawn from (seed, channel) so an
    image does not depend on the rest of the batch."""
    return np.stack(
        [0.5 + 0.05 * np.random.default_rng([seed, int(c)]).standard_normal(tuple(image_shape)) for c in channels]
    ).astype("float32")


def visualize(
    model,
    layer_path: str | None,
    channels: list[int],
    input_shape=None,
    preprocess_mode: str = "unit",
    objective: str = "channel",
    param: str = "fourier",
    steps: int = 256,
    lr: float = 0.05,
    optimizer: str = "adam",
    jitter: int = 4,
    scales=DEFAULT_SCALES,
    rotate_deg: float = 5.0,
    tv_weight: float = 0.0,
    blur_every: int = 0,
    blur_sigma: float = 0.5,
    seed: int = 0,
) -> dict:
    """Maximize the objective of every channel in ``channels`` (class indices for ``class``), one batch.

    ``input_shape`` (H, W, C) defaults to the model's own. ``optimizer``: ``adam``
    (keras.optimizers.Adam at ``lr``) or ``normalized`` (params move by ``lr`` times the ascent
    gradient over its RMS, per image; lr around 0.5 suits it). Set ``jitter=0``, ``scales=(1.0,)``,
    ``rotate_deg=0`` to switch transformations off, or pass a preset: ``**PRESETS["plain"]``. Start
    images: start_images(channels, shape, seed). Returns images (N, H, W, C) (in (0, 1) unless
    ``param`` is raw), objective (N,) on them un-transformed, objective_start (N,).
    """
    import keras
    import tensorflow as tf

    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    shape = tuple(int(s) for s in (model.inputs[0].shape[1:] if input_shape is None else input_shape))
    h, w = shape[:2]
    if jitter >= min(h, w):
        raise InputError(f"jitter {jitter} px must be smaller than the image ({h}x{w})")
    fn = objective_fn(model, layer_path, shape, preprocess_mode, objective)
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
                images=image,
                transforms=affine,
                output_shape=[h, w],
                fill_value=0.0,
                interpolation="BILINEAR",
                fill_mode="REFLECT",
            )
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
        angle_deg = rng.uniform(-rotate_deg, rotate_deg)
        forward = forward_matrix("rotate", {"angle_deg": angle_deg}, h, w) @ forward_matrix(
            "scale", {"factor": float(rng.choice(scales))}, h, w
        )
        affine = keras_transform_vector(forward)[None].astype("float32")
        compiled(tf.constant(offset), tf.constant(affine))
        if blur_every and i % blur_every == 0:
            image = np.asarray(parameterization.params_to_image(params.value))
            params.assign(parameterization.image_to_params(gaussian_blur(image, blur_sigma)))
    images = np.asarray(parameterization.params_to_image(params.value))
    return {
        "images": images,
        "objective": evaluate(fn, images, channels),
        "objective_start": evaluate(fn, start, channels),
    }

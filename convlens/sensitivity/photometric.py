"""The photometric transforms' pixel operations, batched, for the study's compiled model step.

Each works on (n, H, W, C) float32 pixels in [0, 1] (before the model's preprocessing) and returns
the same shape, in [0, 1]:

- ``blur``: separable Gaussian (``sigma_px``), kernel radius ``int(4 σ + 0.5)`` and boundary
  ``symmetric`` (the edge pixel repeated: ``d c b a | a b c d``), as ``scipy.ndimage.gaussian_filter``
  with its defaults (``mode='reflect'``, ``truncate=4``). A kernel wider than the image is an error.
- ``noise``: ``clip(x + std · z)`` with z a standard normal field drawn per image from a seed (see
  ``image_seeds``): reproducible, and independent of which images share a batch or a shard. Every
  noise transform of an image uses the same z scaled by its std, so a sweep shows the effect of the
  magnitude, not of a new draw.
- ``brightness``: ``clip(x + delta)``.
- ``contrast``: ``clip(m + factor · (x − m))`` with m each channel's mean over the image (as
  ``tf.image.adjust_contrast``).
- ``jpeg``: encoded at ``quality`` and decoded (TensorFlow's libjpeg, 4:2:0 chroma subsampling,
  accurate integer DCT), pixels rounded to 8 bits first. ``tf.io.encode_jpeg`` takes one image, so
  this is a ``tf.map_fn`` over the batch, and it runs on the CPU even when the model is on a GPU.

Each photometric kind of ``convlens.transform_kinds`` names its operation here (``Kind.pixels``) and says
whether it needs the noise field (``Kind.seeded``); ``apply`` dispatches on those, and the kind's own
``shape_problem`` says which model inputs it cannot run on (tests/sensitivity/test_photometric.py checks
that every photometric kind's operation is here).
"""

from __future__ import annotations

import hashlib

import numpy as np

from convlens.transform_kinds import REGISTRY, blur_radius


def image_seeds(seed: int, image_ids: list[str]) -> np.ndarray:
    """One noise seed per image, (n,) int64 in [0, 2**31): a hash of the run's seed and the image id,
    so an image gets the same noise whatever batch, chunk or shard it is measured in."""
    return np.array(
        [
            int.from_bytes(hashlib.sha256(f"{int(seed)}/{i}".encode()).digest()[:4], "little") & 0x7FFFFFFF
            for i in image_ids
        ],
        dtype=np.int64,
    )


def gaussian_kernel(sigma_px: float) -> np.ndarray:
    """The normalized 1-D Gaussian of ``gaussian_filter``: (2r + 1,) float64, r = int(4 σ + 0.5)."""
    radius = blur_radius(sigma_px)
    if radius == 0:
        return np.ones(1)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / float(sigma_px)) ** 2)
    return k / k.sum()


def blur(images, params: dict, noise=None):
    """Separable Gaussian blur with symmetric boundaries; see the module docstring."""
    import keras

    k = gaussian_kernel(params["sigma_px"])
    r = len(k) // 2
    if r == 0:
        return images
    h, w, c = images.shape[1], images.shape[2], images.shape[3]
    if r >= min(h, w):
        raise ValueError(
            f"blur sigma_px {params['sigma_px']:g} needs a kernel radius of {r} px, more than the "
            f"{h}x{w} image allows (at most {min(h, w) - 1}); use a smaller sigma_px"
        )
    x = keras.ops.pad(images, [[0, 0], [r, r], [r, r], [0, 0]], mode="symmetric")
    column = np.tile(k.astype("float32")[:, None, None, None], (1, 1, c, 1))  # (2r+1, 1, C, 1)
    x = keras.ops.depthwise_conv(x, column, padding="valid")
    return keras.ops.depthwise_conv(x, np.transpose(column, (1, 0, 2, 3)), padding="valid")


def noise_field(images, seeds):
    """A standard normal field per image (n, H, W, C), image i drawn from ``seeds[i]`` (stateless)."""
    import tensorflow as tf

    shape = tf.shape(images)[1:]
    return tf.map_fn(
        lambda s: tf.random.stateless_normal(shape, tf.stack([s, tf.constant(0, tf.int64)])),
        tf.cast(seeds, tf.int64),
        fn_output_signature=tf.float32,
    )


def noise(images, params: dict, noise=None):
    """``clip(x + std · z)``; ``noise`` is ``noise_field`` of the same images."""
    import keras

    if noise is None:
        raise ValueError("the noise transform needs each image's noise field (noise_field with image seeds)")
    return keras.ops.clip(images + float(params["std"]) * noise, 0.0, 1.0)


def brightness(images, params: dict, noise=None):
    import keras

    return keras.ops.clip(images + float(params["delta"]), 0.0, 1.0)


def contrast(images, params: dict, noise=None):
    import keras

    mean = keras.ops.mean(images, axis=(1, 2), keepdims=True)
    return keras.ops.clip(mean + float(params["factor"]) * (images - mean), 0.0, 1.0)


def jpeg(images, params: dict, noise=None):
    """JPEG encode and decode at ``quality``; one image at a time (``tf.io.encode_jpeg``), on the CPU."""
    import tensorflow as tf

    quality = int(params["quality"])
    channels = images.shape[-1]
    if channels not in (1, 3):
        raise ValueError(f"jpeg needs images with 1 or 3 channels, not {channels}")

    def one(image):
        pixels = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)
        encoded = tf.io.encode_jpeg(pixels, quality=quality, chroma_downsampling=True)
        return tf.cast(tf.io.decode_jpeg(encoded, channels=channels, dct_method="INTEGER_ACCURATE"), tf.float32) / 255.0

    out = tf.map_fn(one, tf.cast(images, tf.float32), fn_output_signature=tf.float32)
    return tf.ensure_shape(out, images.shape)


def operation(kind: str):
    """The pixel operation of a photometric kind: the function of this module its ``Kind.pixels`` names."""
    return globals()[REGISTRY[kind].pixels]


def apply(kind: str, params: dict, images, noise=None):
    """One photometric transform on a batch (n, H, W, C) in [0, 1]; ``noise``: ``noise_field`` of the
    batch (needed by a ``seeded`` kind only)."""
    return operation(kind)(images, params, noise)

"""What the TensorFlow child processes share (limit.py, peers.py): plain Keras/TensorFlow, no convlens.

Import this only after the process has recorded its start time: it imports TensorFlow lazily,
function by function, so the caller can time the import itself.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np

IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)


def import_tf(threads: int) -> float:
    """Import TensorFlow and Keras, set the thread pools as convlens does for ``threads`` cores;
    returns the seconds it took."""
    import importlib

    t = time.perf_counter()
    importlib.import_module("keras")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    return time.perf_counter() - t


def get_model(spec: dict, model_file: str | None):
    """The benchmark model: built from keras.applications (random weights) or loaded from its file."""
    import keras

    if spec.get("application"):
        ctor = getattr(keras.applications, spec["application"])
        size = spec["input_size"]
        return ctor(weights=None, input_shape=(size, size, 3), classes=spec["entry"].get("classes", 1000))
    return keras.saving.load_model(model_file, compile=False, safe_mode=True)


def read_images(folder: str | Path) -> np.ndarray:
    """Every PNG in the folder, sorted by name, as float32 (N, H, W, 3) pixels in [0, 1]."""
    from PIL import Image

    paths = sorted(Path(folder).glob("*.png"))
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]).astype("float32") / 255.0


def preprocess(x, mode: str):
    """[0, 1] pixels -> model input (the two modes the benchmark models use), in TensorFlow ops."""
    import tensorflow as tf

    if mode == "unit":
        return x
    if mode == "caffe":
        return tf.reverse(x * 255.0, axis=[-1]) - tf.constant(IMAGENET_MEAN_BGR, dtype=x.dtype)
    raise ValueError(mode)


def flat_layers(model):
    """(feature layers: every conv and non-global pool, the last conv, the softmax head) of a flat model."""
    import keras

    convs = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
    pools = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
    if any(isinstance(layer, keras.Model) for layer in model.layers):
        raise ValueError("the benchmark's bare-TensorFlow code handles flat models only")
    feats = [layer for layer in model.layers if isinstance(layer, convs + pools)]
    last_conv = [layer for layer in feats if isinstance(layer, convs)][-1]
    return feats, last_conv, model.layers[-1]


def transform_vectors(matrices: np.ndarray) -> np.ndarray:
    """(T, 8) ImageProjectiveTransform vectors (output -> input map) of forward 3x3 matrices."""
    out = []
    for m in matrices:
        inv = np.linalg.inv(m)
        inv = inv / inv[2, 2]
        out.append([inv[0, 0], inv[0, 1], inv[0, 2], inv[1, 0], inv[1, 1], inv[1, 2], inv[2, 0], inv[2, 1]])
    return np.asarray(out, dtype="float32")


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

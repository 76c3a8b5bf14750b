"""TensorFlow set-up for a job: devices, threads, mixed precision, and loading a saved model safely."""

from __future__ import annotations

import os
from contextlib import contextmanager

from convlens.core.layers import final_layer, iter_layers

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def configure(threads: int | None = None) -> list[str]:
    """Set up TensorFlow for a job: GPU memory growth, CPU threads from Snakemake's ``threads``.

    Returns the names of the devices TensorFlow sees, for the run summary.
    """
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialized in this process
            pass
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        except RuntimeError:
            pass
    return [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()]


MIXED_POLICY = "mixed_float16"


def use_mixed_precision(model) -> int:
    """Switch a loaded model to Keras' ``mixed_float16`` policy: layers compute in float16 and
    keep float32 weights (GPU tensor cores). The layer that makes the model's output stays float32,
    so logits and probabilities keep their precision. Returns how many layers changed.

    On CPU float16 is slower, not faster; the switch is for GPUs (config ``mixed_precision``).
    """
    import keras

    last = final_layer(model)  # a nested model at the end: its own output layer
    changed = 0
    for _, layer in iter_layers(model):
        if layer is last or isinstance(layer, keras.layers.InputLayer):
            continue
        layer.dtype_policy = MIXED_POLICY
        changed += 1
    return changed


_SHARED: dict = {}  # model path -> (model, devices, saved weights) inside ``shared_model``


def open_model(model_path: str, threads: int | None = None):
    """Configure TensorFlow and load a saved model in Keras safe mode: (model, device names).

    Inside ``shared_model(model_path)``: the model loaded once for the block, its weights set back
    to the saved ones on every call (a stage may change them: the method check randomizes layers,
    the training views load checkpoints)."""
    import keras

    if model_path in _SHARED:
        model, devices, weights = _SHARED[model_path]
        model.set_weights(weights)
        return model, devices
    devices = configure(threads)
    return keras.saving.load_model(model_path, compile=False, safe_mode=True), devices


@contextmanager
def shared_model(model_path: str, threads: int | None = None):
    """A block in which every ``open_model(model_path)`` gives the same loaded model, as saved: for
    a job that runs several stages on one model (rule model_extras), which then pays one TensorFlow
    start and one model load. It holds a second copy of the weights (VGG16: 0.5 GB more)."""
    model, devices = open_model(model_path, threads)
    _SHARED[model_path] = (model, devices, model.get_weights())
    try:
        yield model
    finally:
        del _SHARED[model_path]

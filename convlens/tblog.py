"""TensorBoard logging of training: scalars plus first-layer kernels and feature maps as images.

TensorBoardLogger is a Keras callback writing, under ``log_dir``, at step = epoch number (1-based):

- one scalar per training log key (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` ...);
- image ``kernels/<first conv layer>``: its kernels as one grid (render.kernel_tiles, each
  kernel min-max scaled and enlarged);
- image ``feature_maps/<first conv layer>``: that layer's output channels for one fixed image,
  each min-max scaled, as one grid;
images at every epoch, or only at ``image_epochs``.

tf.summary.scalar and tf.summary.image are re-exports that need the ``tensorboard`` package, which
this project does not install. The records are therefore written with tf.summary.write (part of
TensorFlow) in the format TensorBoard's own scalar and image summaries use: a float32 scalar, or a
string vector [width, height, png...], tagged with the ``scalars`` / ``images`` plugin name.

read_events reads a log dir back: with TensorBoard's EventAccumulator when the ``tensorboard``
package is installed, else as TFRecords of TensorFlow's Event protos (same result either way).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from convlens import render
from convlens.core.graph import build_probe
from convlens.core.head import preprocess
from convlens.core.layers import conv_layers, find_layer

KERNEL_TILE_PX = 24  # kernels are enlarged (nearest) to at least this many pixels a side
MAP_TILE_PX = 32


def _metadata(plugin: str):
    """TensorBoard's SummaryMetadata for its ``scalars`` / ``images`` plugins (plugin data version 0,
    which serializes to empty content)."""
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin))


def write_scalar(tag: str, value: float, step: int) -> None:
    """One scalar to the default writer, as tensorboard's tf.summary.scalar writes it."""
    import tensorflow as tf

    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=_metadata("scalars"))


def write_image(tag: str, image: np.ndarray, step: int) -> None:
    """One (H, W) or (H, W, 3) uint8 image to the default writer, as tensorboard's tf.summary.image writes it."""
    import tensorflow as tf

    image = image[..., None] if image.ndim == 2 else image
    tensor = tf.stack([tf.as_string(image.shape[1]), tf.as_string(image.shape[0]), tf.io.encode_png(image)])
    tf.summary.write(tag, tensor, step=step, metadata=_metadata("images"))


def kernel_grid(kernels: np.ndarray) -> np.ndarray:
    """First-layer kernels (kh, kw, cin, cout) -> one uint8 grid image, one tile per kernel."""
    return render.kernel_grid(kernels, KERNEL_TILE_PX)


def feature_map_grid(maps: np.ndarray, max_maps: int = 64) -> np.ndarray:
    """Feature maps (h, w, c) -> one uint8 grid, the first ``max_maps`` channels each min-max scaled."""
    tiles = np.stack(
        [render.upscale(render.minmax_uint8(maps[..., i]), MAP_TILE_PX) for i in range(min(max_maps, maps.shape[-1]))]
    )
    return render.grid(tiles, cols=min(16, len(tiles)), pad=2)


class TensorBoardLogger(keras.callbacks.Callback):
    """Keras callback: scalars each epoch, kernel and feature-map images (see module docstring).

    ``image``: (H, W, C) in [0, 1], the fixed image whose first-layer maps are logged, fed through
    ``preprocess_mode``. ``image_epochs``: 1-based epochs that get images; None = every epoch.
    """

    def __init__(
        self,
        log_dir: str | Path,
        image: np.ndarray,
        preprocess_mode: str = "unit",
        image_epochs: list[int] | None = None,
        max_maps: int = 64,
    ):
        super().__init__()
        self.log_dir = str(log_dir)
        self.image = np.asarray(image, dtype="float32")[None]
        self.preprocess_mode = preprocess_mode
        self.image_epochs = None if image_epochs is None else set(image_epochs)
        self.max_maps = max_maps
        self.writer = self.probe = self.layer_path = None

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(self.log_dir)
        self.layer_path = conv_layers(self.model)[0]
        self.probe = build_probe(self.model, [self.layer_path], None)  # shares the model's layers

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + 1
        with self.writer.as_default():
            for key, value in (logs or {}).items():
                write_scalar(key, value, step)
            if self.image_epochs is None or step in self.image_epochs:
                kernels = find_layer(self.model, self.layer_path).get_weights()[0]
                write_image(f"kernels/{self.layer_path}", kernel_grid(kernels), step)
                maps = np.asarray(self.probe(preprocess(self.image, self.preprocess_mode), training=False)[0])[0]
                write_image(f"feature_maps/{self.layer_path}", feature_map_grid(maps, self.max_maps), step)
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()


def _record(result: dict, tag: str, plugin: str, step: int, tensor_proto) -> None:
    """Decode one TF2 tensor summary (scalars and images plugins) into ``result``."""
    import tensorflow as tf

    value = tf.make_ndarray(tensor_proto)
    if plugin == "scalars":
        result["scalars"].setdefault(tag, []).append((int(step), float(value)))
    elif plugin == "images":  # [width, height, png, png, ...]
        pngs = [np.asarray(tf.io.decode_png(encoded)) for encoded in value[2:]]
        result["images"].setdefault(tag, []).append((int(step), pngs))


def read_events(log_dir: str | Path) -> dict:
    """The scalars and images under ``log_dir``.

    Returns {"reader": "tensorboard" | "tensorflow", "scalars": {tag: [(step, value), ...]},
    "images": {tag: [(step, [(h, w, c) uint8, ...]), ...]}}, in file order.
    """
    result = {"scalars": {}, "images": {}}
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        import tensorflow as tf
        from tensorflow.core.util import event_pb2

        result["reader"] = "tensorflow"
        plugins = {}  # the plugin name may come only with a tag's first value; keep it for the rest
        for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
            for record in tf.data.TFRecordDataset(str(path)):
                event = event_pb2.Event.FromString(record.numpy())
                for value in event.summary.value:
                    if value.metadata.plugin_data.plugin_name:
                        plugins[value.tag] = value.metadata.plugin_data.plugin_name
                    _record(result, value.tag, plugins.get(value.tag, ""), event.step, value.tensor)
        return result
    result["reader"] = "tensorboard"
    acc = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    acc.Reload()
    for tag in acc.Tags()["tensors"]:
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        for event in acc.Tensors(tag):
            _record(result, tag, plugin, event.step, event.tensor_proto)
    return result

"""How a model's first layer and feature maps change during training, from saved checkpoints.

- EpochCheckpoints: a Keras callback saving ``epoch_NNN.weights.h5`` at the end of chosen
  (1-based) epochs, e.g. [1, 2, 5, 10, 20, 40];
- checkpoint_strip: for each checkpoint file, the first conv layer's kernels and a chosen layer's
  activations for one image, read by loading that file into a clone of the model (the model
  itself, its weights and optimizer state, is left alone).
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np

from convlens.core.graph import build_probe
from convlens.core.head import preprocess
from convlens.core.layers import conv_layers, find_layer

CHECKPOINT_NAME = "epoch_{epoch:03d}.weights.h5"
_EPOCH_RE = re.compile(r"epoch_(\d+)\.weights\.h5$")


class EpochCheckpoints(keras.callbacks.Callback):
    """Saves the model's weights to ``folder/epoch_NNN.weights.h5`` after each epoch in ``epochs``
    (1-based: epoch k = after k passes). ``saved`` lists the files written, in order."""

    def __init__(self, folder: str | Path, epochs: list[int]):
        super().__init__()
        self.folder = Path(folder)
        self.epochs = set(int(e) for e in epochs)
        self.saved: list[Path] = []

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / CHECKPOINT_NAME.format(epoch=epoch + 1)
            self.model.save_weights(path)
            self.saved.append(path)


def checkpoint_epoch(path: str | Path) -> int | None:
    """The epoch in a checkpoint's file name, None if it does not follow CHECKPOINT_NAME."""
    match = _EPOCH_RE.search(Path(path).name)
    return int(match.group(1)) if match else None


def checkpoint_strip(
    model, checkpoints: list[str | Path], image: np.ndarray, layer_path: str, preprocess_mode: str = "unit"
) -> list[dict]:
    """For each checkpoint: {"checkpoint", "epoch", "kernels" (first conv layer's kernel array),
    "activations" ((h, w, c) output of ``layer_path`` for ``image`` (H, W, C) in [0, 1])}.

    ``model`` gives the architecture: each file is loaded into one clone of it (keras.models.clone_model).
    """
    clone = keras.models.clone_model(model)
    kernel_layer = find_layer(clone, conv_layers(clone)[0])
    probe = build_probe(clone, [layer_path], None)  # shares the clone's layers, so sees each file's weights
    x = preprocess(np.asarray(image, dtype="float32")[None], preprocess_mode)
    strip = []
    for path in checkpoints:
        clone.load_weights(path)
        strip.append(
            {
                "checkpoint": str(path),
                "epoch": checkpoint_epoch(path),
                "kernels": np.array(kernel_layer.get_weights()[0]),
                "activations": np.asarray(probe(x, training=False)[0])[0],
            }
        )
    return strip

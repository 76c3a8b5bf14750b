"""Stage of rule train_model."""

from __future__ import annotations

import time
from pathlib import Path

from convlens import models
from convlens.core.setup import configure
from convlens.data import Dataset
from convlens.errors import InputError
from convlens.evolution import EpochCheckpoints
from convlens.stages.files import save_model, write_csv, write_json
from convlens.stages.run import Progress, log
from convlens.tblog import TensorBoardLogger


def checkpoint_epochs(wanted: list[int], epochs: int) -> list[int]:
    """The configured checkpoint epochs that training reaches, and always the last one."""
    return sorted({e for e in wanted if e <= epochs} | {epochs})


def train_model(name: str, spec: dict, dataset_npz: str, seed: int, threads: int, evolution: dict, out: dict) -> None:
    """Writes model.keras, info.json, architecture.csv, history.csv, metrics.json; checkpoints at
    the chosen epochs and TensorBoard event files (scalars, first-layer kernels and feature maps)."""
    configure(threads)
    ds = Dataset.load(dataset_npz)
    epochs = checkpoint_epochs(evolution["epochs"], spec["epochs"])
    if evolution["image"] >= len(ds.x_test):
        raise InputError(
            f"config.evolution.image: {evolution['image']} is past the end of the test split ({len(ds.x_test)} images)"
        )
    image = ds.x_test[evolution["image"]].astype("float32") / 255.0
    for folder in (out["checkpoints"], out["tensorboard"]):
        Path(folder).mkdir(parents=True, exist_ok=True)
    callbacks = [
        EpochCheckpoints(out["checkpoints"], epochs),
        TensorBoardLogger(out["tensorboard"], image, models.resolve_preprocess(spec), image_epochs=epochs),
        epoch_progress(spec["epochs"]),
    ]
    t0 = time.time()
    model, history, metrics = models.train(spec, ds, seed, callbacks)
    log.info(
        "trained %s in %.1f s; best epoch %d (val acc %.3f); test accuracy %.3f",
        name,
        time.time() - t0,
        metrics["best_epoch"],
        metrics["best_val_accuracy"],
        metrics["test_accuracy"],
    )
    save_model(
        model,
        models.ModelInfo(name, "train", list(ds.x_train.shape[1:]), ds.class_names, models.resolve_preprocess(spec)),
        out,
    )
    write_csv(out["history"], history)
    write_json(out["metrics"], metrics)


def epoch_progress(epochs: int):
    """A Keras callback logging ``training: epochs n of N (rate/s, about N s left)``."""
    import keras

    class EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.progress = Progress("training: epochs", epochs, summary_follows=True)  # "trained ... in"

        def on_epoch_end(self, epoch, logs=None):
            self.progress.advance()

    return EpochProgress()

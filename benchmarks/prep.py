"""Make a benchmark model file once per benchmark run (a child process of run.py).

    python benchmarks/prep.py shapes  OUT.keras   # the default shapes_cnn, trained 1 epoch
    python benchmarks/prep.py vggtiny OUT.keras   # a small VGG-like network, random weights

Prints one JSON line: seconds and what was made.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if os.environ.get("CONVLENS_BENCH_TREE"):  # the convlens being measured (run.py --at-commit)
    sys.path.insert(0, os.environ["CONVLENS_BENCH_TREE"])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_vggtiny(size: int = 64, n_classes: int = 10):
    """VGG16's shape in miniature: three blocks of two 3x3 convs (16/32/64) and a pool, dense, softmax."""
    import keras
    from keras import layers

    x = inputs = keras.Input(shape=(size, size, 3), name="image")
    for block, filters in enumerate((16, 32, 64), start=1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv1")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv2")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="fc1")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="vggtiny")


def main(kind: str, out: str, seed: int = 42) -> dict:
    t0 = time.perf_counter()
    import keras

    if kind == "shapes":
        from convlens.config import validate
        from convlens.data import build_dataset
        from convlens.models import train

        # the spec as the workflow hands it to train(): the config schema fills every default
        # (source, preprocess, ...), so prep cannot drift from what train() reads
        cfg = validate(
            {
                "datasets": {"shapes": {"kind": "shapes", "n_per_class": 100, "image_size": 28, "test_fraction": 0.3}},
                "models": {
                    "shapes": {
                        "source": "train",
                        "architecture": "shapes_cnn",
                        "dataset": "shapes",
                        "epochs": 1,
                        "batch_size": 32,
                        "learning_rate": 0.001,
                        "validation_fraction": 0.15,
                    }
                },
                "images": [{"dataset": "shapes", "count": 1}],
            }
        )
        ds = build_dataset(cfg["datasets"]["shapes"], seed)
        spec = cfg["models"]["shapes"]
        model, _, metrics = train(spec, ds, seed)
        extra = {"test_accuracy": metrics["test_accuracy"], "epochs": 1}
    elif kind == "vggtiny":
        keras.utils.set_random_seed(seed)
        model = build_vggtiny()
        extra = {}
    else:
        raise SystemExit(f"unknown model kind {kind!r}")
    tmp = out + ".part.keras"
    model.save(tmp)
    os.replace(tmp, out)
    return {
        "kind": kind,
        "path": out,
        "seconds": time.perf_counter() - t0,
        "params": int(model.count_params()),
        **extra,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))

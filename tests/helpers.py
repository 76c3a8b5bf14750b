"""Tiny Keras models with known weights and seeded inputs that several test files share.

Import it after ``pytest.importorskip("keras")``: it imports Keras itself.
"""

import importlib
from pathlib import Path

import keras
import numpy as np


def importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def rng(seed):
    return np.random.default_rng(seed)


def images(shape, seed=0):
    return rng(seed).random(shape).astype("float32")


# ---------------------------------------------------------------------------------------------
# classifiers whose answers can be worked out by hand


def tiny_gap_model(seed=0):
    """Input (4, 4, 2) -> 1x1 conv (3 filters, ReLU) -> global average pooling -> dense softmax (2).

    Returns the model, the conv kernel (1, 1, 2, 3), the dense kernel (3, 2) and bias (2,)."""
    r = rng(seed)
    inputs = keras.Input((4, 4, 2))
    a = keras.layers.Conv2D(3, 1, activation="relu", use_bias=False, name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(a)
    out = keras.layers.Dense(2, activation="softmax", name="predictions")(pooled)
    model = keras.Model(inputs, out)
    k = r.normal(size=(1, 1, 2, 3)).astype("float32")
    w = r.normal(size=(3, 2)).astype("float32")
    b = r.normal(size=(2,)).astype("float32")
    model.get_layer("conv").set_weights([k])
    model.get_layer("predictions").set_weights([w, b])
    return model, k, w, b


def linear_model(shape=(4, 4, 2), classes=3, seed=0, activation=None):
    """Flatten -> Dense (logits, or the given activation); returns the model, kernel and bias."""
    n = int(np.prod(shape))
    model = keras.Sequential(
        [keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(classes, activation=activation, name="out")]
    )
    w = rng(seed).normal(size=(n, classes)).astype("float32")
    b = rng(seed + 1).normal(size=(classes,)).astype("float32")
    model.get_layer("out").set_weights([w, b])
    return model, w, b


def gap_model(shape=(6, 6, 2), filters=3, classes=2, kernel=3, head=None, bias=True, seed=0):
    """Conv (ReLU, 'same') -> global average pooling -> dense; returns the model."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    a = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu", use_bias=bias, name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(a)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation=head, name="head")(pooled))
    for layer in model.layers:  # non-zero biases: the model is not positively homogeneous
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng(seed + 7).normal(0, 0.3, layer.bias.shape).astype("float32"))
    return model


def logits_of(model, x):
    """Model outputs (the tests' models end in a linear layer when logits are needed)."""
    return np.asarray(model(x, training=False))


def nested_classifier():
    """A base model (16x16x3 -> conv c1 -> pool p1 -> conv c2) inside a Sequential classifier."""
    base_in = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(base_in)
    y = keras.layers.MaxPooling2D(name="p1")(y)
    y = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2")(y)
    base = keras.Model(base_in, y, name="base")
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            base,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax", name="head"),
        ]
    )


# ---------------------------------------------------------------------------------------------
# feature visualization and embeddings: a random 32x32 CNN and independent computations on it


def random_cnn32(seed=0):
    """32x32x3 -> conv c1, c2 (16) -> pool -> conv c3, c4 (32) -> GAP -> dense softmax (5); random weights."""
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c3")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c4")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(5, activation="softmax", name="pred")(x)
    return keras.Model(inputs, out)


def c4_pre_activation(model, x):
    """Independent: c4's input from a Keras submodel, then its convolution + bias by hand."""
    import tensorflow as tf

    before = keras.Model(model.inputs[0], model.get_layer("c4").input)(x)
    kernel, bias = model.get_layer("c4").get_weights()
    return np.asarray(tf.nn.conv2d(before, kernel, 1, "SAME") + bias)  # (N, 16, 16, 32)


def gap_logits(model, x):
    """Independent: the softmax model's logits = GAP features @ W + b."""
    feats = np.asarray(keras.Model(model.inputs[0], model.get_layer("gap").output)(x))
    w, b = model.get_layer("pred").get_weights()
    return feats @ w + b


# ---------------------------------------------------------------------------------------------
# training: TensorBoard logging and checkpoints


def tiny_trainable(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    r = rng(seed)
    x = r.random((32, 8, 8, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("int64")
    return model, x, y


# ---------------------------------------------------------------------------------------------
# stages: the analysis config and image entries as the workflow passes them


def analysis_config(**overrides):
    from convlens.config import validate

    cfg = validate(
        {
            "datasets": {"d": {"kind": "shapes"}},
            "models": {"m": {"source": "train", "architecture": "shapes_cnn", "dataset": "d"}},
            "images": [{"dataset": "d", "count": 1}],
            "transforms": [{"kind": "rotate", "angle_deg": 90}, {"kind": "vflip"}],
            "filters": {"n_filters": 2, "steps": 2},
            "lie_derivative": False,  # on by default; the stage tests that read it ask for it
            **overrides,
        }
    )
    cfg["sheet_transforms"] = cfg["report"]["sheet_transforms"]  # as workflow/rules/common.smk passes it
    return cfg


def analyze(model_path, info_json, sources, cfg, folder, sheet_layers=()) -> dict:
    """What the workflow does for one shard and one model, without Snakemake: measure_shard, the
    gathered table, the study's exemplars (choose_exemplars, every image named), then draw_exemplars.
    Returns per image id: its metric rows (DataFrame) and the paths of its raw.npz, summary.json,
    sheet.json and figures folder."""
    import pandas as pd

    from convlens.stages.draw import draw_exemplars
    from convlens.stages.exemplars import choose_exemplars
    from convlens.stages.measure import measure_shard

    folder = Path(folder)
    shard = {
        k: str(folder / "shard" / name)
        for k, name in (("metrics", "metrics.csv.gz"), ("images", "images.csv"), ("pooled", "pooled.npz"))
    }
    measure_shard(str(model_path), str(info_json), sources, cfg, 2, shard)
    table = pd.read_csv(shard["metrics"], keep_default_na=False, na_values=[""])
    table.to_csv(folder / "metrics.csv", index=False)
    ids = [s["id"] for s in sources]
    choice = {"disagree": 0, "sensitive": 0, "flipped": 0, "random": 0, "images": ids}
    choose_exemplars({"model": [shard]}, choice, 0, str(folder / "shared.json"))
    draw_exemplars(
        str(model_path),
        str(info_json),
        str(folder / "shared.json"),
        "model",
        sources,
        cfg,
        2,
        list(sheet_layers),
        str(folder / "exemplars"),
        str(folder / "exemplars.json"),
    )
    out = {}
    for i in ids:
        drawn = folder / "exemplars" / i
        out[i] = {
            "metrics": table[table["image"] == i].reset_index(drop=True),
            "raw": drawn / "raw.npz",
            "summary": drawn / "summary.json",
            "sheet": drawn / "sheet.json",
            "figures": drawn / "figures",
        }
    return out


def loaded_shapes_model(folder) -> dict:
    """A seeded, untrained shapes_cnn (28x28x3, 3 classes) saved in ``folder`` and put through the
    load_model stage: its paths {"model", "info", "architecture"}, as the measure stages take them."""
    from convlens import models
    from convlens.stages.load_model import load_model

    keras.utils.set_random_seed(0)
    models.build_shapes_cnn((28, 28, 3), 3).save(folder / "shapes.keras")
    out = {k: str(folder / f"{k}.{ext}") for k, ext in (("model", "keras"), ("info", "json"), ("architecture", "csv"))}
    spec = {"source": "load", "path": str(folder / "shapes.keras"), "class_names": ["a", "b", "c"]}
    load_model("shapes", spec, 2, out)
    return out


def random_png_sources(folder, n: int, id_format: str = "im{}") -> list[dict]:
    """``n`` seeded random 28x28 RGB PNGs in ``folder`` as the image entries a measure stage takes."""
    from PIL import Image

    generator = np.random.default_rng(0)
    sources = []
    for i in range(n):
        Image.fromarray((generator.random((28, 28, 3)) * 255).astype(np.uint8)).save(folder / f"im{i}.png")
        sources.append({"id": id_format.format(i), "path": str(folder / f"im{i}.png"), "resize": "stretch"})
    return sources

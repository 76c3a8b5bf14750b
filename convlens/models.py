"""Architectures, training and loading. Models are Keras 3 models with named layers."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convlens import augment as augment_mod
from convlens.core.head import preprocess as preprocess_input
from convlens.core.layers import conv_layers, iter_layers
from convlens.errors import InputError

log = logging.getLogger(__name__)

# keras.applications constructor -> the preprocessing its weights expect
APPLICATION_PREPROCESS = {
    "VGG16": "caffe",
    "VGG19": "caffe",
    "ResNet50": "caffe",
    "ResNet101": "caffe",
    "ResNet152": "caffe",
    "ResNet50V2": "tf",
    "ResNet101V2": "tf",
    "ResNet152V2": "tf",
    "MobileNet": "tf",
    "MobileNetV2": "tf",
    "MobileNetV3Small": "raw255",
    "MobileNetV3Large": "raw255",
    "InceptionV3": "tf",
    "InceptionResNetV2": "tf",
    "Xception": "tf",
    "NASNetMobile": "tf",
    "NASNetLarge": "tf",
    "DenseNet121": "torch",
    "DenseNet169": "torch",
    "DenseNet201": "torch",
    "EfficientNetB0": "raw255",
    "EfficientNetB1": "raw255",
    "EfficientNetB2": "raw255",
    "EfficientNetB3": "raw255",
    "EfficientNetV2B0": "raw255",
    "EfficientNetV2S": "raw255",
    "ConvNeXtTiny": "raw255",
    "ConvNeXtSmall": "raw255",
}


@dataclass
class ModelInfo:
    """What later stages need to know about a model besides its weights."""

    name: str
    source: str
    input_shape: list[int]  # [H, W, C]
    class_names: list[str]
    preprocess: str
    warnings: list[dict] = field(default_factory=list)  # suspicious setups found when loading (convlens.suspicious)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.__dict__, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "ModelInfo":
        return cls(**json.loads(Path(path).read_text()))


def binomial_kernel(size: int) -> np.ndarray:
    """The normalized 2-D binomial filter of side ``size``: the outer product of row ``size - 1`` of
    Pascal's triangle with itself, divided by its sum (size 3: [1, 2, 1] x [1, 2, 1] / 16)."""
    row = np.array([math.comb(size - 1, k) for k in range(size)], dtype=np.float64)
    kernel = np.outer(row, row)
    return kernel / kernel.sum()


def antialias_size(spec: dict) -> int | None:
    """The blur filter size a model's ``antialias`` entry asks for (true: 3), or None when off."""
    value = spec.get("antialias", False)
    if isinstance(value, dict):
        return int(value.get("filter_size", 3))
    return 3 if value else None


def blur_pool(x, filter_size: int, name: str):
    """Blur with the fixed binomial filter and keep every second pixel (Zhang 2019's BlurPool).

    A standard DepthwiseConv2D (stride 2, 'same' zero padding, no bias, not trainable), so a saved
    model loads in Keras safe mode without custom classes. Zero padding, like the model's own
    convolutions: a constant map stays constant except along the padded edge (the last row and
    column at size 3: 3/4 of the value, 9/16 in the corner); Zhang pads by reflection.
    """
    from keras import layers

    channels = x.shape[-1]
    blur = layers.DepthwiseConv2D(filter_size, strides=2, padding="same", use_bias=False, trainable=False, name=name)
    out = blur(x)
    kernel = np.repeat(binomial_kernel(filter_size)[:, :, None, None], channels, axis=2)
    blur.set_weights([kernel.astype("float32")])
    return out


def downsample(x, name: str, filter_size: int | None):
    """2x2 max-pooling with stride 2; anti-aliased (``filter_size``): max-pooling with stride 1
    (``name``), then ``blur_pool`` (``name_blur``), as Zhang 2019 replaces MaxPool."""
    from keras import layers

    if filter_size is None:
        return layers.MaxPooling2D(2, name=name)(x)
    x = layers.MaxPooling2D(2, strides=1, padding="same", name=name)(x)
    return blur_pool(x, filter_size, f"{name}_blur")


SHAPES_CNN_FILTERS = (32, 64, 64)  # per block: two 3x3 'same' convolutions, pooled after all but the last
MNIST_CNN = {"kernel": 5, "filters": (16, 32), "dense": 512}  # each conv 'same', then a 2x2 pool; then dense


def build_shapes_cnn(input_shape=(28, 28, 3), n_classes: int = 3, antialias: int | None = None):
    """Three blocks of two 3x3 convolutions (32/64/64), max-pooling and dropout after the first two;
    global average pooling; softmax. The last conv layer feeds global average pooling and one dense
    layer, so every heatmap method applies, CAM included (Zhou et al. 2016). ``antialias`` (a blur
    filter size) makes each pooling anti-aliased (``downsample``)."""
    import keras
    from keras import layers

    x = inputs = keras.Input(shape=input_shape, name="image")
    for block, filters in enumerate(SHAPES_CNN_FILTERS, start=1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv1")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv2")(x)
        if block < len(SHAPES_CNN_FILTERS):
            x = downsample(x, f"block{block}_pool", antialias)
            x = layers.Dropout(0.25, name=f"block{block}_dropout")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.25, name="gap_dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="shapes_cnn")


def build_mnist_cnn(input_shape=(28, 28, 1), n_classes: int = 10, antialias: int | None = None):
    """5x5x16 conv, pool, 5x5x32 conv, pool, dense 512, dropout, softmax (``antialias`` as in shapes_cnn)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for k, filters in enumerate(MNIST_CNN["filters"], start=1):
        x = layers.Conv2D(filters, MNIST_CNN["kernel"], padding="same", activation="relu", name=f"conv{k}")(x)
        x = downsample(x, f"pool{k}", antialias)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(MNIST_CNN["dense"], activation="relu", name="fc1")(x)
    x = layers.Dropout(0.5, name="fc1_dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="mnist_cnn")


def build_transfer(input_shape, n_classes: int, spec: dict):
    """A ``keras.applications`` base (``spec['base']``, without its top) with a new head: global
    average pooling and a dense softmax. ``base_weights``: null (random), imagenet (needs the Keras
    cache or network) or a weights file; ``fine_tune``: false freezes the base, true trains all of
    it, an integer n trains its last n layers. The base runs in inference mode (training=False),
    so its batch-normalization statistics stay as loaded even when fine-tuned."""
    import keras
    from keras import layers

    name, weights = spec["base"], spec.get("base_weights")
    ctor = getattr(keras.applications, name, None)
    if ctor is None or not callable(ctor):
        raise InputError(
            f"config.models.*.base: {name!r} is not a keras.applications model; "
            f"allowed: {', '.join(sorted(APPLICATION_PREPROCESS))}"
        )
    try:
        base = ctor(include_top=False, weights=weights, input_shape=tuple(input_shape), **spec.get("base_options", {}))
    except Exception as exc:  # keras raises ValueError, OSError, URL errors...
        if weights == "imagenet":
            raise InputError(
                f"config.models.*.base_weights: cannot get imagenet weights for {name} ({exc}); "
                "without network access give the path of a weights file"
            ) from exc
        raise InputError(
            f"cannot build keras.applications.{name} for input {tuple(input_shape)} with base_weights "
            f"{weights!r}: {exc}"
        ) from exc
    fine_tune = spec.get("fine_tune", False)
    base.trainable = bool(fine_tune)
    if fine_tune is not True and not isinstance(fine_tune, bool):
        for layer in base.layers[: -int(fine_tune)]:
            layer.trainable = False
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = base(inputs, training=False)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{name.lower()}_transfer")


def build(spec: dict, input_shape, n_classes: int):
    """The model a ``source: train`` config entry asks for, untrained."""
    if spec["architecture"] == "transfer":
        return build_transfer(input_shape, n_classes, spec)
    return ARCHITECTURES[spec["architecture"]](tuple(input_shape), n_classes, antialias_size(spec))


ARCHITECTURES = {"shapes_cnn": build_shapes_cnn, "mnist_cnn": build_mnist_cnn}


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, validation) index split of range(n)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def train(spec: dict, dataset, seed: int, callbacks: list | None = None) -> tuple[object, list[dict], dict]:
    """Fit ``spec['architecture']`` on ``dataset``; keep the best-validation-accuracy weights (ties: the
    lower validation loss). ``spec['augment']`` warps the training batches (``convlens.augment``).

    ``callbacks`` (Keras callbacks: checkpoints, TensorBoard) see every epoch of the fit.
    Returns (model, history rows per epoch, metrics with test accuracy and confusion matrix).
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    x = dataset.x_train.astype("float32") / 255.0
    y = dataset.y_train
    tr, va = split_validation(len(x), spec["validation_fraction"], seed)
    n_classes = len(dataset.class_names)
    model = build(spec, x.shape[1:], n_classes)
    mode = resolve_preprocess(spec)

    def prepare(images):
        return images if mode == "unit" else np.asarray(preprocess_input(images, mode))

    aug = augment_mod.Augment.from_spec(spec.get("augment"))
    if aug is None:
        train_data = {"x": prepare(x[tr]), "y": y[tr], "batch_size": spec["batch_size"], "shuffle": True}
    else:  # warped afresh each epoch, in the data pipeline: the model itself has no augmentation layers
        train_data = {"x": augment_mod.batches(x[tr], y[tr], spec["batch_size"], aug, seed, prepare)}
    model.compile(
        optimizer=keras.optimizers.Adam(spec["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    class KeepBest(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best, self.best_loss, self.best_epoch, self.weights = -1.0, np.inf, -1, None

        def on_epoch_end(self, epoch, logs=None):
            acc, loss = float(logs["val_accuracy"]), float(logs["val_loss"])
            log.info(  # to the rule's log only (stages.run.ConsoleFilter): the console gets progress lines
                "epoch %d/%d loss %.4f acc %.4f val_loss %.4f val_acc %.4f",
                epoch + 1,
                spec["epochs"],
                logs["loss"],
                logs["accuracy"],
                loss,
                acc,
                extra={"log_file_only": True},
            )
            # a small validation split ties often (every image right): the lower loss breaks the tie
            if (acc, -loss) > (self.best, -self.best_loss):
                self.best, self.best_loss, self.best_epoch = acc, loss, epoch + 1
                self.weights = self.model.get_weights()

    keep = KeepBest()
    hist = model.fit(
        **train_data,
        validation_data=(prepare(x[va]), y[va]),
        epochs=spec["epochs"],
        verbose=0,
        callbacks=[keep, *(callbacks or [])],
    )
    model.set_weights(keep.weights)
    history = [
        {"epoch": i + 1, **{k: float(v[i]) for k, v in hist.history.items()}} for i in range(len(hist.history["loss"]))
    ]
    probs = model.predict(prepare(dataset.x_test.astype("float32") / 255.0), batch_size=256, verbose=0)
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(dataset.y_test, pred, n_classes)
    metrics = {
        "test_accuracy": float((pred == dataset.y_test).mean()),
        "n_test": int(len(pred)),
        "best_epoch": keep.best_epoch,
        "best_val_accuracy": keep.best,
        "confusion_matrix": cm.tolist(),
        "class_names": dataset.class_names,
    }
    return model, history, metrics


def load(spec: dict):
    """A model from a .keras/.h5 file (Keras safe mode) or a keras.applications constructor."""
    import keras

    if "path" in spec:
        try:
            return keras.saving.load_model(spec["path"], compile=False, safe_mode=True)
        except Exception as exc:  # keras raises many types for a bad file
            reason = " ".join(str(exc).split())  # Keras' messages run over several lines; one line here
            raise InputError(f"cannot load model {spec['path']} (safe mode): {reason}") from exc
    name = spec["application"]
    ctor = getattr(keras.applications, name, None)
    if ctor is None or not callable(ctor):
        known = ", ".join(sorted(APPLICATION_PREPROCESS))
        raise InputError(f"config.models.*.application: {name!r} is not a keras.applications model; e.g. {known}")
    size = spec["input_size"]
    weights = spec.get("weights")
    kwargs = {"weights": weights, "input_shape": (size, size, 3)}
    if weights != "imagenet":
        kwargs["classes"] = spec["classes"]
    try:
        return ctor(**kwargs)
    except Exception as exc:
        if weights == "imagenet":
            raise InputError(
                f"cannot get imagenet weights for {name}: {exc}. Without network access, put the "
                "weights file in ~/.keras/models/ or give its path as weights"
            ) from exc
        raise InputError(
            f"cannot build keras.applications.{name} with input_size {size}, weights {weights!r}, "
            f"classes {kwargs.get('classes')}: {exc}"
        ) from exc


def check_loaded(model, source: str) -> None:
    """InputError naming ``source`` (the model file or application) for a model convlens cannot
    analyse: weights holding NaN or infinity (every image would get the same prediction and every
    metric would be meaningless) or no convolution layer (no feature maps, filters or Grad-CAM)."""
    # one float64 sum per tensor: NaN and infinity carry through it, and it needs no copy of VGG16's 400 MB
    bad = [w.path for w in model.weights if not np.isfinite(np.sum(np.asarray(w), dtype=np.float64))]
    if bad:
        raise InputError(
            f"model {source}: {len(bad)} weight tensor(s) hold NaN or infinite values (first: {bad[0]}); "
            "retrain or re-export the model"
        )
    if not conv_layers(model):
        raise InputError(
            f"model {source} has no convolution layer (Conv2D, DepthwiseConv2D or SeparableConv2D); "
            "convlens analyses convolutional networks: feature maps, filters and Grad-CAM all need one"
        )


def resolve_preprocess(spec: dict) -> str:
    mode = spec.get("preprocess", "auto")
    if mode != "auto":
        return mode
    if spec["source"] == "load" and "application" in spec:
        return APPLICATION_PREPROCESS.get(spec["application"], "raw255")
    if spec["source"] == "train" and spec.get("architecture") == "transfer":
        return APPLICATION_PREPROCESS.get(spec["base"], "raw255")
    return "unit"


def describe(model) -> list[dict]:
    """The architecture table: one row per layer (nested models expanded), with output shape and params."""
    rows = []
    for path, layer in iter_layers(model):
        try:
            shape = tuple(layer.output.shape)
        except (AttributeError, ValueError):
            shape = ()
        rows.append(
            {
                "layer": path,
                "type": layer.__class__.__name__,
                "output_shape": "x".join("?" if d is None else str(d) for d in shape[1:]),
                "params": int(layer.count_params()) if layer.built else 0,
            }
        )
    return rows

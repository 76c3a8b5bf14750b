"""The model's head (logits and probabilities whatever its last layer does), the preprocessing of
pixels in [0, 1] into model input, and the one resolver of which class each row explains."""

from __future__ import annotations

from convlens.core.graph import linear_copy
from convlens.core.layers import final_layer
from convlens.errors import InputError


class Head:
    """Turns the head's input into logits and probabilities, whatever the last layer does.

    - softmax in the last layer: a linear copy of it gives the pre-softmax logits (what the
      Grad-CAM paper differentiates);
    - a separate Softmax/Activation('softmax') layer: its input is the logits;
    - a linear last layer: its output is the logits; probabilities are their softmax;
    - a single sigmoid unit (binary): logits [0, z], so softmax gives [1 - p, p].
    Anything else (multi-label sigmoid, other activations) is refused with a clear message.
    """

    def __init__(self, model):
        import keras

        self.layer = final_layer(model)
        activation = getattr(self.layer, "activation", None)
        name = getattr(activation, "__name__", "linear" if activation is None else str(activation))
        units = int(model.outputs[0].shape[-1])
        if isinstance(self.layer, keras.layers.Softmax) or (
            isinstance(self.layer, keras.layers.Activation) and name == "softmax"
        ):
            self.kind = "softmax-layer"
        elif name == "softmax":
            self.kind = "softmax"
        elif name == "linear":
            self.kind = "logits"
        elif name == "sigmoid" and units == 1:
            self.kind = "sigmoid"
        else:
            raise InputError(
                f"model {model.name!r}: last layer {self.layer.name!r} has activation {name!r} "
                f"with {units} outputs; supported: softmax, linear (logits), or one sigmoid unit"
            )
        if self.kind in ("softmax", "sigmoid"):
            self.linear = linear_copy(self.layer)

    def weights_changed(self) -> None:
        """After the last layer's weights were assigned in place: its linear copy takes them too."""
        if self.kind in ("softmax", "sigmoid"):
            self.linear.set_weights(self.layer.get_weights())

    def logits_and_probs(self, pre, out):
        import keras

        if self.kind == "softmax-layer":
            logits = pre
        elif self.kind == "softmax":
            logits = self.linear(pre)
        elif self.kind == "logits":
            logits = out
        else:
            z = self.linear(pre)
            logits = keras.ops.concatenate([keras.ops.zeros_like(z), z], axis=-1)
        logits = keras.ops.cast(logits, "float32")  # a no-op unless the model computes in mixed precision
        return logits, keras.ops.softmax(logits, axis=-1)


IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)


IMAGENET_MEAN = (0.485, 0.456, 0.406)


IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess(x, mode: str):
    import keras

    ops = keras.ops
    if mode == "unit":
        return x
    if mode == "raw255":
        return x * 255.0
    if mode == "tf":
        return x * 2.0 - 1.0
    if x.shape[-1] != 3:
        raise InputError(f"config.models.*.preprocess: {mode!r} needs 3-channel input, the model has {x.shape[-1]}")
    if mode == "caffe":
        return ops.flip(x * 255.0, axis=-1) - ops.convert_to_tensor(IMAGENET_MEAN_BGR, dtype=x.dtype)
    if mode == "torch":
        mean = ops.convert_to_tensor(IMAGENET_MEAN, dtype=x.dtype)
        std = ops.convert_to_tensor(IMAGENET_STD, dtype=x.dtype)
        return (x - mean) / std
    raise ValueError(f"unknown preprocess mode {mode!r}")


TARGET_REFERENCE = -1


TARGET_PREDICTED = -2


def resolve_targets(logits, targets, group: int):
    """The class each row explains: ``targets`` (B,) holds class indices or the TARGET_ codes.

    ``TARGET_PREDICTED``: the row's own top class; ``TARGET_REFERENCE``: the top class of the first
    row of the row's group (``group`` consecutive rows are the transforms of one image, the first
    untransformed). ``keras.ops`` throughout, so it runs on numpy arrays and inside compiled steps
    alike. logits: (B, K). Returns (B,) int64.
    """
    import keras

    ops = keras.ops
    n_classes = ops.shape(logits)[-1]
    own = ops.argmax(logits, axis=-1)
    reference = ops.repeat(ops.argmax(ops.reshape(logits, (-1, group, n_classes))[:, 0], axis=-1), group)
    targets = ops.cast(targets, own.dtype)
    return ops.where(targets == TARGET_REFERENCE, reference, ops.where(targets == TARGET_PREDICTED, own, targets))

"""Finding layers: every layer by path (nested models descended into), conv and pooling layers,
the layer that makes the model's output."""

from __future__ import annotations

from convlens.errors import InputError


def conv_types():
    import keras

    return (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def pool_types():
    import keras

    return (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)


def iter_layers(model, prefix: str = ""):
    """(path, layer) for every layer, descending into nested models; paths are ``outer/inner``."""
    import keras

    for layer in model.layers:
        path = prefix + layer.name
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer, path + "/")
        else:
            yield path, layer


def feature_layers(model) -> list[str]:
    """Paths of every conv and (non-global) pooling layer, in forward order."""
    kinds = conv_types() + pool_types()
    return [p for p, layer in iter_layers(model) if isinstance(layer, kinds)]


def is_blur_pool(layer) -> bool:
    """An anti-aliasing blur (``models.blur_pool``): a fixed, non-trainable depthwise filter named
    ``*_blur``. It is a pooling step, not a learned convolution."""
    import keras

    return (
        isinstance(layer, keras.layers.DepthwiseConv2D)
        and layer.name.endswith("_blur")
        and not layer.trainable
        and not layer.use_bias
    )


def conv_layers(model) -> list[str]:
    """Paths of the learned convolution layers (anti-aliasing blurs left out), in forward order."""
    return [p for p, layer in iter_layers(model) if isinstance(layer, conv_types()) and not is_blur_pool(layer)]


def last_conv_layer(model) -> str:
    convs = conv_layers(model)
    if not convs:
        raise InputError("the model has no convolution layer; Grad-CAM needs one (set heatmaps.layer)")
    return convs[-1]


def check_spatial(model, path: str, key: str) -> None:
    """Raise InputError naming ``key`` unless layer ``path`` is in the model and outputs (B, h, w, c) maps."""
    try:
        shape = find_layer(model, path).output.shape
    except InputError as exc:
        raise InputError(f"{key}: {exc}") from None
    if len(shape) != 4:
        raise InputError(f"{key}: layer {path!r} outputs shape {tuple(shape)}; it needs spatial maps (B, h, w, c)")


def find_layer(model, path: str):
    for p, layer in iter_layers(model):
        if p == path:
            return layer
    known = ", ".join(p for p, _ in iter_layers(model))
    raise InputError(f"layer {path!r} is not in the model; layers: {known}")


def output_operation(model):
    import keras

    if isinstance(model, keras.Sequential):
        return model.layers[-1]
    return model.outputs[0]._keras_history.operation


def final_layer(model):
    """The layer producing the final output, descending into a nested model at the end."""
    import keras

    op = output_operation(model)
    while isinstance(op, keras.Model):
        op = output_operation(op)
    return op

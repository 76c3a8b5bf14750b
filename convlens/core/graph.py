"""Tracing a model's graph layer by layer, and probes built from the trace.

A *probe* is a Keras model that returns, in one forward pass, the outputs of chosen layers, the
input of the classification head and the final output; ``trace`` is the one graph walk behind it,
behind the layer grids and behind the attribution methods that run layers differently.
"""

from __future__ import annotations

from convlens.core.layers import find_layer, output_operation
from convlens.errors import InputError

INPUT_SUFFIX = "#input"  # a wanted path with this suffix asks for the tensor going into that layer


class AllFound(Exception):
    """Stops a trace once every wanted tensor is found (the rest of the model is never called)."""


def trace(
    model, x, wanted: set[str], found: dict, prefix: str = "", stop_when_found: bool = False, on_call=None, call=None
):
    """Run ``model`` on symbolic ``x``, filling ``found`` with the wanted tensors.

    Returns (final output, input of the last layer). A wanted path ``layer`` asks for the layer's
    output, ``layer#input`` for what goes into it. Nested models are descended into wherever they
    sit, so layers of a base model inside a classifier (the transfer-learning case) can be probed.
    Sequential models are walked layer by layer; functional graphs are replayed node by node. With
    ``stop_when_found`` the walk ends (raising AllFound) as soon as everything wanted is there.
    ``on_call(path, layer, input, output)``, when given, sees every layer call; ``call(path, layer,
    input, *args, **kwargs)``, when given, makes it (to run a layer differently, e.g. with another
    gradient).
    """
    import keras

    def record(path, tensor):
        if path in wanted:
            found[path] = tensor
            if stop_when_found and wanted <= set(found):
                raise AllFound

    def apply(op, arg, args=(), kwargs=None):
        """Call one operation; returns (output, input of its last layer)."""
        path = prefix + op.name
        if isinstance(op, keras.Model):
            return trace(op, arg, wanted, found, path + "/", stop_when_found, on_call, call)
        record(path + INPUT_SUFFIX, arg)
        out = call(path, op, arg, *args, **(kwargs or {})) if call else op(arg, *args, **(kwargs or {}))
        if on_call is not None:
            on_call(path, op, arg, out)
        record(path, out)
        return out, arg

    if isinstance(model, keras.Sequential):
        pre = x
        for layer in model.layers:
            x, pre = apply(layer, x)
        return x, pre
    if not hasattr(model, "_run_through_graph") or len(model.inputs) != 1:
        raise InputError(f"model {model.name!r}: only single-input Sequential or functional models can be probed")
    head = output_operation(model)
    box = {}

    def operation_fn(op):
        def call(*args, **kwargs):
            out, pre = apply(op, args[0], args[1:], kwargs)
            if op is head:
                box["pre"] = pre
            return out

        return call

    outputs = model._run_through_graph(x, operation_fn=operation_fn)
    out = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    return out, box.get("pre", out)


def linear_copy(layer):
    """The same layer (same weights) without its activation: its pre-activation output."""
    config = layer.get_config()
    config["activation"] = "linear"
    config["name"] = layer.name + "_linear"
    copy = layer.__class__.from_config(config)
    copy.build(layer.input.shape)
    copy.set_weights(layer.get_weights())
    return copy


def build_probe(
    model,
    layer_paths: list[str],
    cam_layer: str | None,
    inputs_of: tuple[str, ...] = (),
    input_shape: tuple[int, int, int] | None = None,
):
    """A Keras model: input -> [outputs of layer_paths..., cam layer output, head input, final output,
    inputs of the ``inputs_of`` layers...].

    ``input_shape`` (H, W, C) other than the model's own works when every layer up to the wanted
    ones is convolutional; the model's head is then left out (it may need the original size).
    """
    import keras

    wanted = set(layer_paths) | ({cam_layer} if cam_layer else set()) | {p + INPUT_SUFFIX for p in inputs_of}
    own_shape = tuple(model.inputs[0].shape[1:])
    resized = input_shape is not None and tuple(input_shape) != own_shape
    if resized and (layer_paths or cam_layer):
        raise ValueError("a probe at another input size can only return layer inputs")
    inp = keras.Input(shape=tuple(input_shape) if resized else own_shape)
    found: dict[str, object] = {}
    out = pre = None
    try:
        # resized: stop once the wanted inputs exist, so a head that needs the original size never runs
        out, pre = trace(model, inp, wanted, found, stop_when_found=resized)
    except AllFound:
        pass
    missing = wanted - set(found)
    if missing:
        raise InputError(f"layer(s) {', '.join(sorted(missing))} not found in the model")
    inputs_of_tensors = [found[p + INPUT_SUFFIX] for p in inputs_of]
    if resized:
        return keras.Model(inp, inputs_of_tensors, name="convlens_prefix_probe")
    outputs = [found[p] for p in layer_paths] + [found[cam_layer] if cam_layer else out, pre, out]
    outputs += inputs_of_tensors
    return keras.Model(inp, outputs, name="convlens_probe")


def pre_activation_probe(model, layer_path: str, input_shape: tuple[int, int, int], fix: str):
    """(probe returning the input of ``layer_path`` for images of ``input_shape``, the layer without its
    activation): together they give the layer's pre-activation response at any size the conv
    layers before it accept. ``fix`` tells the user what to change when the size is refused."""
    layer = find_layer(model, layer_path)
    try:
        probe = build_probe(model, [], None, inputs_of=(layer_path,), input_shape=tuple(input_shape))
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(
            f"the layers before {layer_path!r} do not accept {input_shape[0]}x{input_shape[1]} input ({exc}); {fix}"
        ) from exc
    return probe, linear_copy(layer) if getattr(layer, "activation", None) is not None else layer

"""Where each layer's pixels sit in the input image (``transforms.Grid`` per layer)."""

from __future__ import annotations

from convlens.core.graph import trace
from convlens.core.layers import conv_types, pool_types
from convlens.errors import InputError
from convlens.transforms import Grid


def axis_grid(n_in: int, n_out: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[float, float]:
    """(a, b) with output pixel u centred on input coordinate a*u + b, for one axis of a conv/pool."""
    span = dilation * (kernel - 1) + 1
    offset = (span - 1) / 2.0
    if padding == "same":  # TensorFlow pads the extra pixel at the end
        offset -= max((n_out - 1) * stride + span - n_in, 0) // 2
    return float(stride), offset


def own_grid(layer, in_hw: tuple[int, int], out_hw: tuple[int, int]):
    """The grid a single layer lays over its own input (see transforms.Grid)."""
    import keras

    def pair(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value, value)

    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return Grid.even(in_hw, out_hw)
    if isinstance(layer, conv_types() + pool_types()):
        kernel = pair(getattr(layer, "kernel_size", None) or layer.pool_size)
        strides = pair(layer.strides or kernel)
        dilation = pair(getattr(layer, "dilation_rate", 1))
        ay, by = axis_grid(in_hw[0], out_hw[0], kernel[0], strides[0], dilation[0], layer.padding)
        ax, bx = axis_grid(in_hw[1], out_hw[1], kernel[1], strides[1], dilation[1], layer.padding)
        return Grid(ay, by, ax, bx, *out_hw)
    if isinstance(layer, keras.layers.ZeroPadding2D):
        (top, _), (left, _) = layer.padding
        return Grid(1.0, -float(top), 1.0, -float(left), *out_hw)
    if isinstance(layer, keras.layers.Cropping2D):
        (top, _), (left, _) = layer.cropping
        return Grid(1.0, float(top), 1.0, float(left), *out_hw)
    if tuple(in_hw) == tuple(out_hw):
        return Grid(1.0, 0.0, 1.0, 0.0, *out_hw)
    return Grid.even(in_hw, out_hw)  # upsampling, resizing and the like: spread evenly


def layer_grids(model, layer_paths: list[str]) -> dict:
    """Where each layer's map sits in the input image: {path: transforms.Grid}.

    Follows the graph from the input through every layer (nested models included), composing each
    layer's stride, kernel and padding, so 'valid' layers and floor-divided sizes get the exact
    sub-pixel offsets a warp at the layer's resolution needs.
    """
    import keras

    shape = tuple(model.inputs[0].shape[1:])
    inp = keras.Input(shape=shape)
    grids = {id(inp): (inp, Grid(1.0, 0.0, 1.0, 0.0, shape[0], shape[1]))}
    by_path = {}

    def on_call(path, layer, arg, out):
        first = arg[0] if isinstance(arg, (list, tuple)) else arg
        parent = grids.get(id(first))
        if parent is None or len(getattr(out, "shape", ())) != 4:
            return
        grid = parent[1].then(own_grid(layer, tuple(first.shape[1:3]), tuple(out.shape[1:3])))
        grids[id(out)] = (out, grid)
        by_path[path] = grid

    trace(model, inp, set(), {}, on_call=on_call)
    missing = [p for p in layer_paths if p not in by_path]
    if missing:
        raise InputError(f"layer(s) {', '.join(missing)} have no spatial map to place in the input")
    return {p: by_path[p] for p in layer_paths}

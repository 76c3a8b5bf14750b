"""The one place that touches TensorFlow-specific APIs (GradientTape, tf.function, devices).

Everything that runs a model goes through here: a *probe* is a Keras model that returns, in one
forward pass, the outputs of the chosen layers, the Grad-CAM layer and the input of the
classification head; a compiled step runs the probe and the Grad-CAM gradient for a whole batch.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from convlens.errors import InputError  # noqa: E402


def configure(threads: int | None = None) -> list[str]:
    """Set up TensorFlow for a job: GPU memory growth, CPU threads from Snakemake's ``threads``.

    Returns the names of the devices TensorFlow sees, for the run summary.
    """
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialized in this process
            pass
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        except RuntimeError:
            pass
    return [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()]


MIXED_POLICY = "mixed_float16"


def use_mixed_precision(model) -> int:
    """Switch a loaded model to Keras' ``mixed_float16`` policy: layers compute in float16 and
    keep float32 weights (GPU tensor cores). The layer that makes the model's output stays float32,
    so logits and probabilities keep their precision. Returns how many layers changed.

    On CPU float16 is slower, not faster; the switch is for GPUs (config ``mixed_precision``).
    """
    import keras

    last = _output_operation(model)
    while isinstance(last, keras.Model):  # a nested model at the end: its own output layer
        last = _output_operation(last)
    changed = 0
    for _, layer in iter_layers(model):
        if layer is last or isinstance(layer, keras.layers.InputLayer):
            continue
        layer.dtype_policy = MIXED_POLICY
        changed += 1
    return changed


# ---------------------------------------------------------------------------------------------
# layers


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


def conv_layers(model) -> list[str]:
    return [p for p, layer in iter_layers(model) if isinstance(layer, conv_types())]


def last_conv_layer(model) -> str:
    convs = conv_layers(model)
    if not convs:
        raise InputError("the model has no convolution layer; Grad-CAM needs one (set heatmaps.layer)")
    return convs[-1]


def check_spatial(model, path: str, key: str) -> None:
    """Raise InputError unless layer ``path`` outputs (B, h, w, c) maps."""
    shape = find_layer(model, path).output.shape
    if len(shape) != 4:
        raise InputError(f"{key}: layer {path!r} outputs shape {tuple(shape)}; it needs spatial maps (B, h, w, c)")


def find_layer(model, path: str):
    for p, layer in iter_layers(model):
        if p == path:
            return layer
    known = ", ".join(p for p, _ in iter_layers(model))
    raise InputError(f"layer {path!r} is not in the model; layers: {known}")


# ---------------------------------------------------------------------------------------------
# where each layer's pixels sit in the input


def _axis_grid(n_in: int, n_out: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[float, float]:
    """(a, b) with output pixel u centred on input coordinate a*u + b, for one axis of a conv/pool."""
    span = dilation * (kernel - 1) + 1
    offset = (span - 1) / 2.0
    if padding == "same":  # TensorFlow pads the extra pixel at the end
        offset -= max((n_out - 1) * stride + span - n_in, 0) // 2
    return float(stride), offset


def _own_grid(layer, in_hw: tuple[int, int], out_hw: tuple[int, int]):
    """The grid a single layer lays over its own input (see transforms.Grid)."""
    import keras

    from convlens.transforms import Grid

    def pair(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value, value)

    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return Grid.even(in_hw, out_hw)
    if isinstance(layer, conv_types() + pool_types()):
        kernel = pair(getattr(layer, "kernel_size", None) or layer.pool_size)
        strides = pair(layer.strides or kernel)
        dilation = pair(getattr(layer, "dilation_rate", 1))
        ay, by = _axis_grid(in_hw[0], out_hw[0], kernel[0], strides[0], dilation[0], layer.padding)
        ax, bx = _axis_grid(in_hw[1], out_hw[1], kernel[1], strides[1], dilation[1], layer.padding)
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

    from convlens.transforms import Grid

    shape = tuple(model.inputs[0].shape[1:])
    inp = keras.Input(shape=shape)
    grids = {id(inp): (inp, Grid(1.0, 0.0, 1.0, 0.0, shape[0], shape[1]))}
    by_path = {}

    def on_call(path, layer, arg, out):
        first = arg[0] if isinstance(arg, (list, tuple)) else arg
        parent = grids.get(id(first))
        if parent is None or len(getattr(out, "shape", ())) != 4:
            return
        grid = parent[1].then(_own_grid(layer, tuple(first.shape[1:3]), tuple(out.shape[1:3])))
        grids[id(out)] = (out, grid)
        by_path[path] = grid

    _trace(model, inp, set(), {}, on_call=on_call)
    missing = [p for p in layer_paths if p not in by_path]
    if missing:
        raise InputError(f"layer(s) {', '.join(missing)} have no spatial map to place in the input")
    return {p: by_path[p] for p in layer_paths}


# ---------------------------------------------------------------------------------------------
# probe


def _output_operation(model):
    import keras

    if isinstance(model, keras.Sequential):
        return model.layers[-1]
    return model.outputs[0]._keras_history.operation


INPUT_SUFFIX = "#input"  # a wanted path with this suffix asks for the tensor going into that layer


class _AllFound(Exception):
    """Stops a trace once every wanted tensor is found (the rest of the model is never called)."""


def _trace(model, x, wanted: set[str], found: dict, prefix: str = "", stop_when_found: bool = False,
           on_call=None, call=None):
    """Run ``model`` on symbolic ``x``, filling ``found`` with the wanted tensors.

    Returns (final output, input of the last layer). A wanted path ``layer`` asks for the layer's
    output, ``layer#input`` for what goes into it. Nested models are descended into wherever they
    sit, so layers of a base model inside a classifier (the transfer-learning case) can be probed.
    Sequential models are walked layer by layer; functional graphs are replayed node by node. With
    ``stop_when_found`` the walk ends (raising _AllFound) as soon as everything wanted is there.
    ``on_call(path, layer, input, output)``, when given, sees every layer call; ``call(path, layer,
    input, *args, **kwargs)``, when given, makes it (to run a layer differently, e.g. with another
    gradient).
    """
    import keras

    def record(path, tensor):
        if path in wanted:
            found[path] = tensor
            if stop_when_found and wanted <= set(found):
                raise _AllFound

    def apply(op, arg, args=(), kwargs=None):
        """Call one operation; returns (output, input of its last layer)."""
        path = prefix + op.name
        if isinstance(op, keras.Model):
            return _trace(op, arg, wanted, found, path + "/", stop_when_found, on_call, call)
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
    head = _output_operation(model)
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

        self.layer = _output_operation_of_full(model)
        activation = getattr(self.layer, "activation", None)
        name = getattr(activation, "__name__", "linear" if activation is None else str(activation))
        units = int(model.outputs[0].shape[-1])
        if isinstance(self.layer, keras.layers.Softmax) or (
                isinstance(self.layer, keras.layers.Activation) and name == "softmax"):
            self.kind = "softmax-layer"
        elif name == "softmax":
            self.kind = "softmax"
        elif name == "linear":
            self.kind = "logits"
        elif name == "sigmoid" and units == 1:
            self.kind = "sigmoid"
        else:
            raise InputError(f"model {model.name!r}: last layer {self.layer.name!r} has activation {name!r} "
                             f"with {units} outputs; supported: softmax, linear (logits), or one sigmoid unit")
        if self.kind in ("softmax", "sigmoid"):
            self.linear = linear_copy(self.layer)

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


def linear_copy(layer):
    """The same layer (same weights) without its activation: its pre-activation output."""
    config = layer.get_config()
    config["activation"] = "linear"
    config["name"] = layer.name + "_linear"
    copy = layer.__class__.from_config(config)
    copy.build(layer.input.shape)
    copy.set_weights(layer.get_weights())
    return copy


def _output_operation_of_full(model):
    """The layer producing the final output, descending into a nested model at the end."""
    import keras

    op = _output_operation(model)
    while isinstance(op, keras.Model):
        op = _output_operation(op)
    return op


def build_probe(model, layer_paths: list[str], cam_layer: str | None, inputs_of: tuple[str, ...] = (),
                input_shape: tuple[int, int, int] | None = None):
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
        out, pre = _trace(model, inp, wanted, found, stop_when_found=resized)
    except _AllFound:
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


# ---------------------------------------------------------------------------------------------
# preprocessing (pixels in [0, 1] -> model input), in keras.ops so it runs inside the compiled step

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


# ---------------------------------------------------------------------------------------------
# the compiled analysis step

TARGET_REFERENCE = -1
TARGET_PREDICTED = -2


def equivariance_sums(acts, samplers, group: int):
    """Inside a compiled step: what the layer metrics need of image-major maps (B = images × group).

    acts: per layer (B, h, w, c) tensors, row 0 of each group the reference; samplers: per layer,
    per transform, ``transforms.Sampler`` (T_l as gathers over the valid pixels). Returns per layer
    num (B,) = ‖V⊙(φ(Tx) − T_l φ(x))‖², den (B,) = ‖V⊙T_l φ(x)‖² and pooled (B, c), the global
    average. Only the valid pixels are read, and warps that keep pixel centres on pixel centres
    are exact single gathers (the identity row gives num = 0 exactly).
    """
    import tensorflow as tf

    def read(values, index):  # values[:, index]; every pixel in order needs no gather
        if len(index) == values.shape[1] and np.array_equal(index, np.arange(len(index))):
            return values
        return tf.gather(values, index, axis=1)

    def weighted(values, weights):
        return values if np.all(weights == 1) else values * weights[None, :, None]

    nums, dens, pools = [], [], []
    for a, layer_samplers in zip(acts, samplers):
        h, w, c = a.shape[1], a.shape[2], a.shape[3]
        flat = tf.reshape(tf.cast(a, tf.float32), (-1, group, h * w, c))
        reference = flat[:, 0]
        num, den = [], []
        for t, s in enumerate(layer_samplers):
            expected = tf.add_n([weighted(read(reference, index), weights) for index, weights in zip(s.index, s.weights)])
            got = read(flat[:, t], s.positions)
            num.append(tf.reduce_sum(tf.square(got - expected), axis=[1, 2]))
            den.append(tf.reduce_sum(tf.square(expected), axis=[1, 2]))
        nums.append(tf.reshape(tf.stack(num, axis=1), (-1,)))
        dens.append(tf.reshape(tf.stack(den, axis=1), (-1,)))
        pools.append(tf.reduce_mean(tf.cast(a, tf.float32), axis=[1, 2]))
    return nums, dens, pools


class Analyzer:
    """Activations of chosen layers, class probabilities and Grad-CAM for a batch, in one call.

    The batch is laid out image-major: ``group`` consecutive rows are the transforms of one image,
    the first being the untransformed reference.
    """

    def __init__(self, model, layer_paths: list[str], cam_layer: str, preprocess_mode: str,
                 score: str = "logit", reference_cam: bool = False, samplers: list | None = None):
        import tensorflow as tf

        from convlens import attribution

        self.layer_paths = list(layer_paths)
        self.cam_layer = cam_layer
        self.probe = build_probe(model, self.layer_paths, cam_layer)
        self.head = Head(model)
        self.preprocess_mode = preprocess_mode
        self.score = score
        self._gradcam = attribution.gradcam_from_gradients

        def step(x, targets, group):
            import keras

            with tf.GradientTape(persistent=reference_cam) as tape:
                outs = self.probe(preprocess(x, self.preprocess_mode), training=False)
                acts, cam_act, pre, out = outs[:-3], outs[-3], outs[-2], outs[-1]
                logits, probs = self.head.logits_and_probs(pre, out)
                n_classes = keras.ops.shape(logits)[-1]
                reference = keras.ops.argmax(keras.ops.reshape(logits, (-1, group, n_classes))[:, 0], axis=-1)
                reference = keras.ops.repeat(reference, group)
                own = keras.ops.argmax(logits, axis=-1)
                target = keras.ops.where(targets == TARGET_REFERENCE, reference,
                                         keras.ops.where(targets == TARGET_PREDICTED, own,
                                                         keras.ops.cast(targets, own.dtype)))
                scores = logits if self.score == "logit" else probs
                chosen = tf.gather(scores, target, batch_dims=1)
                if reference_cam:
                    chosen_reference = tf.gather(scores, reference, batch_dims=1)

            def gradcam(score):  # in float32 also under mixed precision (a float16 sum could overflow)
                cam = self._gradcam(tf.cast(cam_act, tf.float32), tf.cast(tape.gradient(score, cam_act), tf.float32))
                return cam, keras.ops.image.resize(cam[..., None], keras.ops.shape(x)[1:3], interpolation="bilinear")[..., 0]

            cam, cam_up = gradcam(chosen)
            out = {"activations": [tf.cast(a, tf.float32) for a in acts], "probs": tf.cast(probs, tf.float32),
                   "target": target, "cam": cam, "cam_up": cam_up}
            if reference_cam:
                out["cam_reference_up"] = gradcam(chosen_reference)[1]
            if samplers is not None:
                out["num"], out["den"], out["pooled"] = equivariance_sums(acts, samplers, group)
            return out

        self._step = tf.function(step, reduce_retracing=True)

    def run(self, x: np.ndarray, targets: np.ndarray, group: int) -> dict:
        """x: (B, H, W, C) float32 pixels in [0, 1]; targets: (B,) int (class, or the TARGET_ codes).

        Returns numpy arrays: activations (list of (B, h, w, c)), probs (B, K), target (B,),
        cam (B, h, w) at the Grad-CAM layer, cam_up (B, H, W) at input resolution; with
        ``reference_cam`` also cam_reference_up, the map for each image's reference class; with
        ``samplers`` also num, den and pooled (see ``equivariance_sums``).
        """
        out = self._step(x.astype("float32"), np.asarray(targets, dtype="int64"), int(group))
        return {k: ([np.asarray(a) for a in v] if isinstance(v, list) else np.asarray(v)) for k, v in out.items()}


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
        raise InputError(f"the layers before {layer_path!r} do not accept {input_shape[0]}x{input_shape[1]} "
                         f"input ({exc}); {fix}") from exc
    return probe, linear_copy(layer) if getattr(layer, "activation", None) is not None else layer


def filter_patterns(model, layer_path: str, filters: list[int], input_shape: tuple[int, int, int],
                    preprocess_mode: str, steps: int, step_size: float, seed: int) -> dict:
    """Gradient ascent on the mean pre-activation of each filter, all filters as one batch.

    The objective is the filter's response before its activation function, so a ReLU filter that is
    silent on the starting image still has a gradient (Olah et al. 2017 optimize pre-ReLU too).
    Starts from seeded grey noise; each step moves every image along its gradient normalized to
    unit RMS. Returns images (N, H, W, C) and the objective per filter before and after.
    """
    import keras
    import tensorflow as tf

    probe, response = pre_activation_probe(model, layer_path, input_shape,
                                           "set config.filters.image_size to the model's input size")
    index = tf.constant(filters, dtype=tf.int32)

    def objective(x):
        outs = probe(preprocess(x, preprocess_mode), training=False)
        act = response(outs[-1] if isinstance(outs, (list, tuple)) else outs)
        if act.shape[1] > 8 and act.shape[2] > 8:  # leave out the border, where padding dominates
            act = act[:, 2:-2, 2:-2, :]
        per_channel = keras.ops.mean(act, axis=(1, 2))  # (N, C)
        return tf.gather(per_channel, index, batch_dims=1)  # (N,)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = objective(x)
            total = keras.ops.sum(value)  # filters are independent: d(total)/d(x_i) = d(value_i)/d(x_i)
        grad = tape.gradient(total, x)
        rms = keras.ops.sqrt(keras.ops.mean(keras.ops.square(grad), axis=(1, 2, 3), keepdims=True))
        return x + step_size * grad / (rms + 1e-8), value

    rng = np.random.default_rng(seed)
    start = (0.5 + 0.05 * rng.standard_normal((len(filters),) + tuple(input_shape))).astype("float32")
    x = tf.constant(start)
    first = None
    for _ in range(steps):
        x, value = step(x)
        if first is None:
            first = np.asarray(value)
    final = np.asarray(objective(x))
    return {"images": np.asarray(x), "start": start, "objective_start": first, "objective_end": final}

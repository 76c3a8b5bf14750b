"""Attribution maps (where the network looks): twelve methods behind one interface, plus checks.

Usage::

    explainer = Explainer(model, ["saliency", "gradcam", "scorecam"], preprocess_mode="caffe",
                          cam_layer=None, score="logit", params={"scorecam": {"channel_batch": 16}},
                          max_batch=32)
    results = explainer.explain(x, targets)       # dict: method name -> MethodResult
    results["gradcam"].maps                       # (B, H, W) float32 at input resolution
    results["gradcam"].raw                        # (B, h, w) at the CAM layer's resolution

``x`` is (B, H, W, C) float32 pixels in [0, 1]; the model's preprocessing (``backend.preprocess``)
runs inside, so every gradient is taken with respect to the pixels. ``targets`` is (B,) int: class
indices, or the ``backend.TARGET_PREDICTED`` / ``TARGET_REFERENCE`` codes (resolved as
``backend.Analyzer`` does, ``group`` rows per image). ``score`` is what is explained: "logit" (the
pre-softmax logit, found by ``backend.Head`` whatever the last layer is) or "probability".

Methods (``METHODS``; each class docstring gives the paper), their parameters and defaults:

=====================  ==========================================================  =========
name                   parameters (defaults)                                        maps
=====================  ==========================================================  =========
saliency               reduce="abs_max"                                             >= 0
smoothgrad             samples=25, noise=0.15, seed=0, reduce="abs_max"             >= 0
integrated_gradients   steps=32, baseline="black", blur_sigma=5.0, seed=0,          signed
                       reduce="sum"
occlusion              patch=None (min(H, W) // 8), stride=None (patch // 2),       signed
                       fill=0.5
deconvnet              reduce="abs_max"                                             >= 0
guided_backprop        reduce="abs_max"                                             >= 0
cam                    (none; needs CAM layer -> global average pooling -> dense)   >= 0
gradcam                (none)                                                       >= 0
gradcam_pp             (none)                                                       >= 0
scorecam               channel_batch=None (the Explainer's max_batch)               >= 0
layercam               (none)                                                       >= 0
guided_gradcam         reduce="abs_max"                                             >= 0
=====================  ==========================================================  =========

``reduce`` turns a (B, H, W, C) pixel attribution into a map: "abs_max" (largest absolute value
over channels, Simonyan et al.), "abs_sum", or "sum" (signed; for Integrated Gradients the map
then sums to f(x) - f(baseline)). ``raw`` is the (B, H, W, C) attribution for the gradient
methods, the (B, h, w) map at the CAM layer for the CAM family, and the (B, rows, cols) score
drops for occlusion. A signed map says so in ``MethodResult.signed``.

The family, and what each variant states:

- gradient methods: the gradient of the score w.r.t. the pixels, averaged over perturbed copies of
  the image. Variants state how ReLU gradients are treated (``rule``: normal, guided, deconvnet),
  what is perturbed (nothing; noise for SmoothGrad; the path from a baseline for Integrated
  Gradients) and how the averaged gradient becomes the attribution.
- CAM methods: ReLU(sum_k w_k A_k) at the CAM layer, bilinearly upsampled. Variants state only the
  weights w (per channel, or per position for Layer-CAM): the dense layer's class weights (CAM),
  functions of the gradient (Grad-CAM, Grad-CAM++, Layer-CAM), or the score of the image masked by
  each channel (Score-CAM).
- occlusion: the drop of the score when a patch is covered.
- guided Grad-CAM: guided backpropagation times the Grad-CAM map.

Everything that runs the model is compiled once per Explainer (``tf.function``,
``reduce_retracing=True``) and batched: the perturbed copies of all images (SmoothGrad samples, IG
steps, occlusion patches, Score-CAM masks) go through the model at most ``max_batch`` rows at a
time, so memory is bounded and the answer does not depend on the chunking.

Guided backpropagation and deconvnet replay the model layer by layer (Sequential, functional and
nested models alike, as ``backend._trace`` does) and run every ReLU through ``tf.custom_gradient``:
``keras.layers.ReLU`` layers, ``Activation("relu" / "relu6")`` layers and layers with a ReLU
activation (run as ``backend.linear_copy`` followed by the overridden ReLU). Other activations keep
their gradient. The Explainer copies those layers' weights (as ``backend.Head`` does): build a new
one after the weights change.

Checks for the report: ``cascading_randomization`` (do the maps depend on the weights?) and
``deletion_insertion`` (do the maps rank the pixels the model uses?), with ``spearman`` and a
numpy ``ssim``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convlens import backend
from convlens.errors import InputError


def gradcam_from_gradients(activations, gradients):
    """Grad-CAM (Selvaraju et al. 2017) from a layer's activations and the class score's gradient.

    activations, gradients: (B, h, w, c). Channel weight alpha_c = spatial mean of the gradient;
    map = ReLU(sum_c alpha_c * A_c). Returns (B, h, w).
    """
    return weighted_map(GradCAM.weights(activations, gradients, None), activations)


def weighted_map(weights, activations):
    """ReLU(sum_k w_k A_k): the map every CAM method makes. weights broadcast to (B, h, w, c)."""
    import keras

    return keras.ops.relu(keras.ops.sum(weights * activations, axis=-1))


def normalize_map(heatmap: np.ndarray) -> tuple[np.ndarray, bool]:
    """Scale a (H, W) map to [0, 1] by its maximum; an all-zero map stays zero and is flagged.

    Returns (map, is_all_zero). Never divides by zero, never produces NaN.
    """
    heatmap = np.nan_to_num(np.asarray(heatmap, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(heatmap.max()) if heatmap.size else 0.0
    if peak <= 0.0:
        return np.zeros_like(heatmap), True
    return np.clip(heatmap / peak, 0.0, 1.0), False


def upsample(maps, size):
    """(B, h, w) maps -> (B, H, W) tensor, bilinear (the resize ``backend.Analyzer`` uses for cam_up)."""
    import keras

    return keras.ops.image.resize(maps[..., None], size, interpolation="bilinear")[..., 0]


# ---------------------------------------------------------------------------------------------
# results and the method family


@dataclass
class MethodResult:
    """One method's answer for a batch: maps (B, H, W) float32 at input resolution, raw form."""

    maps: np.ndarray
    raw: np.ndarray
    signed: bool = False
    info: dict = field(default_factory=dict)  # method-specific diagnostics (IG: completeness delta)


CHANNEL_REDUCTIONS = {
    "abs_max": lambda a: np.abs(a).max(axis=-1),
    "abs_sum": lambda a: np.abs(a).sum(axis=-1),
    "sum": lambda a: a.sum(axis=-1),
}


def _pixel_result(raw: np.ndarray, reduce: str, info: dict | None = None) -> MethodResult:
    if reduce not in CHANNEL_REDUCTIONS:
        raise InputError(f"reduce: {reduce!r} is not one of {', '.join(CHANNEL_REDUCTIONS)}")
    maps = CHANNEL_REDUCTIONS[reduce](raw).astype(np.float32)
    return MethodResult(maps, raw.astype(np.float32), signed=reduce == "sum", info=info or {})


class Method:
    """An attribution method: ``run(context)`` returns a MethodResult for ``context``'s batch.

    Subclass it for a method of your own (``name``, ``defaults``, ``run``); an Explainer takes
    instances as well as registry names. ``requires`` names the methods whose results it reuses;
    ``uses_cam_layer`` says it needs the CAM layer.
    """

    name = ""
    defaults: dict = {}
    requires: tuple[str, ...] = ()
    uses_cam_layer = False

    def run(self, context: "Context") -> MethodResult:
        raise NotImplementedError


class Gradient(Method):
    """Vanilla gradients, saliency (Simonyan, Vedaldi & Zisserman 2014, "Deep inside convolutional
    networks"): d score / d pixels. Map: largest absolute value over the colour channels."""

    name = "saliency"
    rule = "normal"  # how the backward pass treats ReLUs: normal, guided, deconvnet
    defaults = {"reduce": "abs_max"}

    def perturbation(self, x: np.ndarray, params: dict) -> "Perturbation":
        """The copies of x whose gradients are averaged."""
        return Stack([x])

    def attribution(self, perturbation: "Perturbation", mean_gradient: np.ndarray) -> np.ndarray:
        """The (B, H, W, C) attribution from the averaged gradient."""
        return mean_gradient

    def info(self, context: "Context", perturbation: "Perturbation", raw: np.ndarray) -> dict:
        """Diagnostics for MethodResult.info."""
        return {}

    def run(self, context):
        params = context.params(self)
        perturbation = self.perturbation(context.x, params)
        gradient = context.explainer.mean_gradient(perturbation, context.targets, self.rule)
        raw = self.attribution(perturbation, gradient)
        return _pixel_result(raw, params["reduce"], self.info(context, perturbation, raw))


class SmoothGrad(Gradient):
    """SmoothGrad (Smilkov et al. 2017): the gradient averaged over ``samples`` noisy copies.

    The noise is Gaussian with standard deviation ``noise`` times the image's own range
    (max - min), as in the paper; sample i's noise comes from seed (``seed``, i), so the answer does
    not depend on the batching.
    """

    name = "smoothgrad"
    defaults = {**Gradient.defaults, "samples": 25, "noise": 0.15, "seed": 0}

    def perturbation(self, x, params):
        return Noise(x, params["noise"], params["samples"], params["seed"])


class IntegratedGradients(Gradient):
    """Integrated Gradients (Sundararajan, Taly & Yan 2017): (x - x') times the gradient averaged
    along the straight path from the baseline x' to x (midpoint rule, ``steps`` points).

    ``baseline``: "black", "white", "blur" (Gaussian, ``blur_sigma`` pixels), "noise" (uniform,
    ``seed``) or a number (a grey level). Signed; the default map sums the channels, so it sums to
    f(x) - f(x') up to the quadrature error, which ``info["delta"]`` reports per image.
    """

    name = "integrated_gradients"
    defaults = {"steps": 32, "baseline": "black", "blur_sigma": 5.0, "seed": 0, "reduce": "sum"}

    def perturbation(self, x, params):
        return Path(x, baseline_image(x, params["baseline"], params["blur_sigma"], params["seed"]),
                    params["steps"])

    def attribution(self, perturbation, mean_gradient):
        return (perturbation.x - perturbation.baseline) * mean_gradient

    def info(self, context, perturbation, raw):
        ends = context.explainer.scores(Stack([context.x, perturbation.baseline]), context.targets)
        return {"delta": raw.sum(axis=(1, 2, 3)) - (ends[:, 0] - ends[:, 1])}


class Deconvnet(Gradient):
    """Deconvnet (Zeiler & Fergus 2014): the backward pass through each ReLU keeps only the
    positive part of the incoming signal, whatever the forward input was."""

    name = "deconvnet"
    rule = "deconvnet"


class GuidedBackprop(Gradient):
    """Guided backpropagation (Springenberg et al. 2015): through each ReLU, only where the forward
    input was positive (the gradient) and the incoming signal is positive (deconvnet)."""

    name = "guided_backprop"
    rule = "guided"


class Occlusion(Method):
    """Occlusion (Zeiler & Fergus 2014): the drop of the score when a ``patch`` x ``patch`` square,
    moved by ``stride`` pixels, is filled with ``fill``. A pixel's value is the mean drop of the
    patches covering it (signed: a patch can raise the score). raw: the (B, rows, cols) drops.
    """

    name = "occlusion"
    defaults = {"patch": None, "stride": None, "fill": 0.5}

    def run(self, context):
        params = context.params(self)
        x = context.x
        patch = params["patch"] or max(1, min(x.shape[1:3]) // 8)
        patches = Patches(x, patch, params["stride"] or max(1, patch // 2), params["fill"])
        scores = context.explainer.scores(Stack([x]), context.targets)
        drops = scores - context.explainer.scores(patches, context.targets)  # (B, n)
        total = np.zeros(x.shape[:3])
        covered = np.zeros(x.shape[1:3])
        for j, (r, c) in enumerate(patches.corners):
            total[:, r:r + patches.size[0], c:c + patches.size[1]] += drops[:, j, None, None]
            covered[r:r + patches.size[0], c:c + patches.size[1]] += 1
        maps = (total / np.maximum(covered, 1)).astype(np.float32)
        raw = drops.reshape(len(x), len(patches.rows), len(patches.cols)).astype(np.float32)
        return MethodResult(maps, raw, signed=True)


class ClassActivationMap(Method):
    """CAM (Zhou et al. 2016): the class's weights in the dense layer that follows global average
    pooling of the CAM layer. Needs CAM layer -> global average pooling -> dense (the CAM layer
    must be the one that is pooled). Uses the logit whatever ``score`` says."""

    name = "cam"
    uses_cam_layer = True

    @staticmethod
    def weights(activations, gradients, class_weights):
        """(B, 1, 1, c) or (B, h, w, c) weights for ReLU(sum_k w_k A_k)."""
        return class_weights[:, None, None, :]

    def run(self, context):
        raw, maps = context.cams()[self.name]
        return MethodResult(maps, raw)


class GradCAM(ClassActivationMap):
    """Grad-CAM (Selvaraju et al. 2017): channel weight = spatial mean of d score / d A_k. The same
    map as ``backend.Analyzer``'s cam_up."""

    name = "gradcam"

    @staticmethod
    def weights(activations, gradients, class_weights):
        import keras

        return keras.ops.mean(gradients, axis=(1, 2), keepdims=True)


class GradCAMPlusPlus(ClassActivationMap):
    """Grad-CAM++ (Chattopadhay et al. 2018): w_k = sum_ij alpha_kij ReLU(g_kij) with
    alpha = g^2 / (2 g^2 + sum_ab A_kab g^3), g = d score / d A: the paper's closed form for an
    exponential of the score (its positive factor exp(S) is left out; it does not change the map).
    """

    name = "gradcam_pp"

    @staticmethod
    def weights(activations, gradients, class_weights):
        import keras

        ops = keras.ops
        g2 = ops.square(gradients)
        denominator = 2.0 * g2 + ops.sum(activations, axis=(1, 2), keepdims=True) * g2 * gradients
        alpha = g2 / ops.where(denominator != 0.0, denominator, ops.ones_like(denominator))
        return ops.sum(alpha * ops.relu(gradients), axis=(1, 2), keepdims=True)


class LayerCAM(ClassActivationMap):
    """Layer-CAM (Jiang et al. 2021): a weight per position and channel, ReLU(d score / d A)."""

    name = "layercam"

    @staticmethod
    def weights(activations, gradients, class_weights):
        import keras

        return keras.ops.relu(gradients)


class ScoreCAM(ClassActivationMap):
    """Score-CAM (Wang et al. 2020): channel weight = p_c(x * H_k) - p_c(black), where H_k is
    channel k upsampled and scaled to [0, 1] and p_c the class probability (the paper's "increase
    of confidence"). One forward pass per channel that is not constant: at most ``channel_batch``
    masked images per pass.
    """

    name = "scorecam"
    defaults = {"channel_batch": None}
    weights = None  # from forward passes, not from the gradient

    def run(self, context):
        explainer, x, targets = context.explainer, context.x, context.targets
        activations = context.cams()["activations"]
        # a constant channel masks the image to black: its weight is exactly 0, no pass needed
        varies = activations.max(axis=(1, 2)) > activations.min(axis=(1, 2))  # (B, c)
        channels = np.flatnonzero(varies.any(axis=0))
        weights = np.zeros(varies.shape, np.float32)
        if channels.size:
            masked = explainer.scores(ChannelMasks(x, activations[..., channels]), targets, "probability",
                                      max_rows=context.params(self)["channel_batch"])
            black = explainer.scores(Stack([np.zeros_like(x)]), targets, "probability")
            weights[:, channels] = np.where(varies[:, channels], masked - black, 0.0)
        raw = np.asarray(weighted_map(weights[:, None, None, :], activations))
        return MethodResult(np.asarray(upsample(raw, x.shape[1:3])), raw)


class GuidedGradCAM(Method):
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backpropagation times the upsampled Grad-CAM
    map, pixel by pixel. raw: (B, H, W, C)."""

    name = "guided_gradcam"
    defaults = {"reduce": "abs_max"}
    requires = ("gradcam", "guided_backprop")
    uses_cam_layer = True

    def run(self, context):
        raw = context.result("guided_backprop").raw * context.result("gradcam").maps[..., None]
        return _pixel_result(raw, context.params(self)["reduce"])


METHODS: dict[str, Method] = {m.name: m for m in (
    Gradient(), SmoothGrad(), IntegratedGradients(), Occlusion(), Deconvnet(), GuidedBackprop(),
    ClassActivationMap(), GradCAM(), GradCAMPlusPlus(), ScoreCAM(), LayerCAM(), GuidedGradCAM())}


# ---------------------------------------------------------------------------------------------
# perturbations: what the batched passes feed the model


class Perturbation:
    """``count`` perturbed copies of every image of ``x``; ``inputs(images, index)`` builds the
    copies ``index`` of the images ``images`` as (b, k, H, W, C), so they can be made in chunks."""

    def __init__(self, x: np.ndarray, count: int):
        self.x, self.count = x, int(count)

    def inputs(self, images: slice, index: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Stack(Perturbation):
    """Given images: copy i of image b is ``arrays[i][b]``."""

    def __init__(self, arrays: list[np.ndarray]):
        super().__init__(arrays[0], len(arrays))
        self.arrays = arrays

    def inputs(self, images, index):
        return np.stack([self.arrays[i][images] for i in index], axis=1)


class Noise(Perturbation):
    """Copy i: x plus Gaussian noise of std ``level`` times the image's range, seeded by (seed, i)."""

    def __init__(self, x, level: float, samples: int, seed: int):
        super().__init__(x, samples)
        self.sigma = level * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
        self.seed = seed

    def inputs(self, images, index):
        noise = np.stack([np.random.default_rng([self.seed, i]).standard_normal(self.x.shape[1:]) for i in index])
        return self.x[images, None] + self.sigma[images, None, None, None, None] * noise[None]


class Path(Perturbation):
    """Copy i: baseline + alpha_i (x - baseline), alpha at the midpoints of ``steps`` intervals."""

    def __init__(self, x, baseline: np.ndarray, steps: int):
        super().__init__(x, steps)
        self.baseline = baseline
        self.alphas = (np.arange(steps) + 0.5) / steps

    def inputs(self, images, index):
        a = self.alphas[index][None, :, None, None, None]
        start = self.baseline[images, None]
        return start + a * (self.x[images, None] - start)


class Patches(Perturbation):
    """A patch filled with ``fill`` at every stride; the last row and column reach the border."""

    def __init__(self, x, patch: int, stride: int, fill: float):
        self.size = (min(patch, x.shape[1]), min(patch, x.shape[2]))
        self.rows, self.cols = (_starts(n, p, stride) for n, p in zip(x.shape[1:3], self.size))
        self.corners = [(r, c) for r in self.rows for c in self.cols]
        super().__init__(x, len(self.corners))
        self.fill = fill

    def inputs(self, images, index):
        out = np.repeat(self.x[images, None], len(index), axis=1)
        for j, i in enumerate(index):
            r, c = self.corners[i]
            out[:, j, r:r + self.size[0], c:c + self.size[1], :] = self.fill
        return out


def _starts(size: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, size - patch + 1, stride))
    return starts if starts[-1] == size - patch else starts + [size - patch]


class ChannelMasks(Perturbation):
    """The image times each channel of the CAM layer, upsampled and scaled to [0, 1] (Score-CAM).
    A constant channel gives an all-zero mask."""

    def __init__(self, x, activations: np.ndarray):
        super().__init__(x, activations.shape[-1])
        self.activations = activations

    def inputs(self, images, index):
        up = np.asarray(upsample(np.moveaxis(self.activations[images][..., index], -1, 1).reshape(
            (-1,) + self.activations.shape[1:3]), self.x.shape[1:3]))
        up = up.reshape((-1, len(index)) + up.shape[1:])  # (b, k, H, W)
        low, high = up.min(axis=(2, 3), keepdims=True), up.max(axis=(2, 3), keepdims=True)
        masks = np.where(high > low, (up - low) / np.where(high > low, high - low, 1.0), 0.0)
        return self.x[images, None] * masks[..., None]


class Ordered(Perturbation):
    """Step s replaces, in ``start``, the pixels ranked below ``counts[s]`` by ``end``'s."""

    def __init__(self, start, end, ranks: np.ndarray, counts: np.ndarray):
        super().__init__(start, len(counts))
        self.end, self.ranks, self.counts = end, ranks, counts

    def inputs(self, images, index):
        chosen = self.ranks[images, None] < self.counts[index][None, :, None, None]
        return np.where(chosen[..., None], self.end[images, None], self.x[images, None])


def baseline_image(x: np.ndarray, kind, blur_sigma: float = 5.0, seed: int = 0) -> np.ndarray:
    """A reference image per image of x: "black", "white", "blur", "noise" (uniform) or a number."""
    if isinstance(kind, (int, float)) and not isinstance(kind, bool):
        return np.full_like(x, kind)
    if kind == "black":
        return np.zeros_like(x)
    if kind == "white":
        return np.ones_like(x)
    if kind == "blur":
        return gaussian_blur(x, blur_sigma, axes=(1, 2)).astype(x.dtype)
    if kind == "noise":
        return np.random.default_rng(seed).random(x.shape).astype(x.dtype)
    raise InputError(f"baseline: {kind!r} is not black, white, blur, noise or a number")


def gaussian_blur(a: np.ndarray, sigma: float, axes=(0, 1), truncate: float = 4.0, radius: int | None = None,
                  mode: str = "symmetric") -> np.ndarray:
    """Separable Gaussian filter over ``axes``. Taps out to ``radius`` (default ``truncate`` sigmas);
    edges padded by ``np.pad`` ``mode`` ("symmetric" is scipy.ndimage's "reflect")."""
    out = np.asarray(a, dtype=np.float64)
    if sigma <= 0:
        return out
    radius = int(truncate * sigma + 0.5) if radius is None else radius
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis in axes:
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode=mode)
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(taps))
    return out


# ---------------------------------------------------------------------------------------------
# running the model with ReLU gradients overridden


def _relu_family():
    import keras

    return (keras.activations.relu, keras.activations.relu6)


def _rectified(fn, rule: str):
    """``fn`` (an element-wise ReLU) with its backward pass replaced.

    guided: f'(z) * ReLU(upstream) (Springenberg et al.); deconvnet: ReLU(upstream) (Zeiler & Fergus).
    """
    import tensorflow as tf

    @tf.custom_gradient
    def op(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            y = fn(z)
        slope = tape.gradient(y, z)  # element-wise function: the sum's gradient is f'(z)

        def grad(upstream):
            passed = tf.nn.relu(upstream)
            return passed if rule == "deconvnet" else slope * passed

        return y, grad

    return op


def _replay(model, x, call):
    """Run ``model`` on ``x``, every layer through ``call(path, layer, input, *args, **kwargs)``.

    Returns (final output, input of the last layer), descending into nested models
    (``backend._trace`` with the layer call left to the caller).
    """
    return backend._trace(model, x, set(), {}, call=call)


def _cam_dense(model, cam_layer: str):
    """CAM's dense layer (its kernel holds the class weights); InputError unless CAM layer -> GAP -> dense."""
    import keras

    layers = list(backend.iter_layers(model))
    after = [layer for _, layer in layers[[p for p, _ in layers].index(cam_layer) + 1:]]
    pools = [layer for layer in after if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    dense = [layer for layer in after if isinstance(layer, keras.layers.Dense)]
    neutral = (keras.layers.GlobalAveragePooling2D, keras.layers.Dense, keras.layers.Dropout, keras.layers.Softmax)
    others = [layer for layer in after if not isinstance(layer, neutral) and not (
        isinstance(layer, keras.layers.Activation) and layer.activation in (keras.activations.softmax,
                                                                           keras.activations.linear))]
    channels = backend.find_layer(model, cam_layer).output.shape[-1]
    if len(pools) != 1 or len(dense) != 1 or others or dense[0].kernel.shape[0] != channels:
        raise InputError(f"cam: CAM (Zhou et al. 2016) needs the CAM layer {cam_layer!r} followed only by global "
                         f"average pooling and one dense layer; set the CAM layer to the pooled one or drop 'cam'")
    return dense[0]


# ---------------------------------------------------------------------------------------------
# the explainer


class Explainer:
    """Compiled attribution methods for one model (see the module docstring).

    methods: registry names (``METHODS``) or Method instances. cam_layer: layer path for the CAM
    family (default: the last convolution). params: {method name: {parameter: value}} over the
    defaults. max_batch: the most images one forward/backward pass gets.
    """

    def __init__(self, model, methods: list, preprocess_mode: str = "unit", cam_layer: str | None = None,
                 score: str = "logit", params: dict | None = None, max_batch: int = 32):
        import tensorflow as tf

        if score not in ("logit", "probability"):
            raise InputError(f"score: {score!r} is not 'logit' or 'probability'")
        self.model, self.preprocess_mode, self.score = model, preprocess_mode, score
        self.max_batch = max(1, int(max_batch))
        self.methods = [m if isinstance(m, Method) else self._registered(m) for m in methods]
        self._params = self._check_params(params or {})
        self.head = backend.Head(model)
        needed = self._with_requirements(self.methods)
        self.cam_layer = None
        if any(m.uses_cam_layer for m in needed):
            self.cam_layer = cam_layer or backend.last_conv_layer(model)
            backend.check_spatial(model, self.cam_layer, "cam_layer")
        self._cam_weighting = {m.name: m.weights for m in needed
                               if isinstance(m, ClassActivationMap) and m.weights is not None}
        self._cam_dense = _cam_dense(model, self.cam_layer) if "cam" in self._cam_weighting else None
        self._linear = None  # linear copies of ReLU-activated layers, made when a rule needs them
        self._predict_fn = tf.function(self._predict_graph, reduce_retracing=True)
        self._gradient_fn = tf.function(self._gradient_graph, reduce_retracing=True)
        self._cam_fn = tf.function(self._cam_graph, reduce_retracing=True)

    # -- set-up

    @staticmethod
    def _registered(name: str) -> Method:
        if name not in METHODS:
            raise InputError(f"attribution method {name!r} is unknown; known: {', '.join(METHODS)}")
        return METHODS[name]

    def _method(self, name: str) -> Method:
        return next((m for m in self.methods if m.name == name), None) or self._registered(name)

    def _with_requirements(self, methods) -> list[Method]:
        out, todo = {}, list(methods)
        while todo:
            m = todo.pop()
            if m.name not in out:
                out[m.name] = m
                todo += [self._method(r) for r in m.requires]
        return list(out.values())

    def _check_params(self, params: dict) -> dict:
        out = {}
        for name, given in params.items():
            defaults = self._method(name).defaults
            unknown = set(given) - set(defaults)
            if unknown:
                raise InputError(f"{name}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(defaults) or 'none'}")
            out[name] = given
        return out

    def params(self, method: Method) -> dict:
        """The method's parameters: its defaults updated with the Explainer's params."""
        return {**method.defaults, **self._params.get(method.name, {})}

    # -- the compiled graphs

    def _forward(self, x, rule: str = "normal"):
        """(logits, probs, CAM layer output or None) with ReLU gradients treated by ``rule``."""
        found = {}

        def call(path, layer, arg, *args, **kwargs):
            if rule == "normal" or not self._is_relu(path, layer):
                out = layer(arg, *args, **kwargs)
            elif path in self._linear:  # a layer with a ReLU activation: its linear copy, then the ReLU
                out = _rectified(layer.activation, rule)(self._linear[path](arg, *args, **kwargs))
            else:  # a ReLU or Activation("relu") layer
                out = _rectified(lambda t: layer(t, *args, **kwargs), rule)(arg)
            if path == self.cam_layer:
                found["cam"] = out
            return out

        out, pre = _replay(self.model, backend.preprocess(x, self.preprocess_mode), call)
        logits, probs = self.head.logits_and_probs(pre, out)
        return logits, probs, found.get("cam")

    def _make_linear_copies(self) -> None:
        """Linear copies of the layers with a ReLU activation (made outside the compiled graphs)."""
        import keras

        if self._linear is None:
            self._linear = {p: backend.linear_copy(layer) for p, layer in backend.iter_layers(self.model)
                            if not isinstance(layer, keras.layers.Activation)
                            and getattr(layer, "activation", None) in _relu_family()}

    def _is_relu(self, path, layer) -> bool:
        import keras

        return path in self._linear or isinstance(layer, keras.layers.ReLU) or (
            isinstance(layer, keras.layers.Activation) and layer.activation in _relu_family())

    def _chosen(self, logits, probs, targets):
        import tensorflow as tf

        return tf.gather(logits if self.score == "logit" else probs, targets, batch_dims=1)

    def _predict_graph(self, x):
        logits, probs, _ = self._forward(x)
        return logits, probs

    def _gradient_graph(self, x, targets, rule):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            logits, probs, _ = self._forward(x, rule)
            chosen = self._chosen(logits, probs, targets)
        return tape.gradient(chosen, x)  # rows are independent: each row gets its own gradient

    def _cam_graph(self, x, targets):
        import keras
        import tensorflow as tf

        with tf.GradientTape() as tape:
            logits, probs, acts = self._forward(x)
            chosen = self._chosen(logits, probs, targets)
        # float32 from here on, also when the model computes in mixed precision
        grads = tf.cast(tape.gradient(chosen, acts), tf.float32)
        acts = tf.cast(acts, tf.float32)
        class_weights = None
        if self._cam_dense is not None:
            kernel = self._cam_dense.kernel  # (c, K) variable, read live
            if self.head.kind == "sigmoid":  # logits [0, z]: class 0 has no weights
                kernel = keras.ops.concatenate([keras.ops.zeros_like(kernel), kernel], axis=-1)
            class_weights = tf.gather(tf.transpose(kernel), targets)  # (B, c)
        maps = {}
        for name, weights in self._cam_weighting.items():
            raw = weighted_map(weights(acts, grads, class_weights), acts)
            maps[name] = (raw, upsample(raw, keras.ops.shape(x)[1:3]))
        return acts, maps

    # -- batched primitives (numpy in, numpy out)

    def _chunks(self, n: int, rows: int):
        return [slice(s, min(s + rows, n)) for s in range(0, n, rows)]

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, probs), each (B, K), at most max_batch images per pass."""
        parts = [self._predict_fn(np.asarray(x[s], np.float32)) for s in self._chunks(len(x), self.max_batch)]
        return tuple(np.concatenate([np.asarray(p[i]) for p in parts]) for i in (0, 1))

    def _evaluate(self, perturbation: Perturbation, targets: np.ndarray, fn, max_rows: int | None = None):
        """Yield (images, index, fn's values (b, k, ...)) over all copies, at most max_rows per call."""
        rows = int(max_rows or self.max_batch)
        per_pass = min(len(perturbation.x), rows)
        k = max(1, rows // per_pass)
        for images in self._chunks(len(perturbation.x), per_pass):
            for first in range(0, perturbation.count, k):
                index = np.arange(first, min(first + k, perturbation.count))
                batch = perturbation.inputs(images, index)
                b, kk = batch.shape[:2]
                values = np.asarray(fn(batch.reshape((b * kk,) + batch.shape[2:]).astype(np.float32),
                                       np.repeat(targets[images], kk).astype(np.int64)))
                yield images, index, values.reshape((b, kk) + values.shape[1:])

    def scores(self, perturbation: Perturbation, targets: np.ndarray, kind: str | None = None,
               max_rows: int | None = None) -> np.ndarray:
        """(B, count): the target's score ("logit" or "probability"; default: the Explainer's)."""
        column = 0 if (kind or self.score) == "logit" else 1

        def fn(x, t):
            return np.asarray(self._predict_fn(x)[column])[np.arange(len(t)), t]

        out = np.zeros((len(perturbation.x), perturbation.count), np.float32)
        for images, index, values in self._evaluate(perturbation, targets, fn, max_rows):
            out[images, index[0]:index[-1] + 1] = values
        return out

    def mean_gradient(self, perturbation: Perturbation, targets: np.ndarray, rule: str = "normal") -> np.ndarray:
        """(B, H, W, C): d score / d pixels averaged over the copies, ReLUs treated by ``rule``."""
        if rule not in ("normal", "guided", "deconvnet"):
            raise ValueError(f"unknown ReLU rule {rule!r}")
        if rule != "normal":
            self._make_linear_copies()
        total = np.zeros(perturbation.x.shape, np.float64)
        for images, _, grads in self._evaluate(perturbation, targets, lambda x, t: self._gradient_fn(x, t, rule)):
            total[images] += grads.sum(axis=1)
        return (total / perturbation.count).astype(np.float32)

    # -- the public entry points

    def resolve_targets(self, x: np.ndarray, targets, group: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Class indices for the TARGET_ codes (as backend.Analyzer): returns (targets, probs)."""
        targets = np.asarray(targets, dtype=np.int64)
        logits, probs = self.predict(np.asarray(x, np.float32))
        own = logits.argmax(axis=-1)
        reference = np.repeat(own.reshape(-1, group)[:, 0], group)
        resolved = np.where(targets == backend.TARGET_REFERENCE, reference,
                            np.where(targets == backend.TARGET_PREDICTED, own, targets))
        if resolved.shape != (len(x),) or resolved.min() < 0 or resolved.max() >= logits.shape[-1]:
            raise InputError(f"targets {targets.tolist()}: need one class index (0 to {logits.shape[-1] - 1}) "
                             f"or TARGET_ code per image")
        return resolved, probs

    def explain(self, x: np.ndarray, targets, group: int = 1) -> dict[str, MethodResult]:
        """Every method's MethodResult for the batch x (B, H, W, C) in [0, 1] and targets (B,)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise InputError(f"explain: x has shape {x.shape}; it needs (B, H, W, C)")
        targets = np.asarray(targets, dtype=np.int64)
        if targets.shape != (len(x),) or (targets < 0).any():
            targets = self.resolve_targets(x, targets, group)[0]
        context = Context(self, x, targets)
        return {m.name: context.result(m.name) for m in self.methods}


class Context:
    """One explain() call: the batch, its targets, and the results methods share."""

    def __init__(self, explainer: Explainer, x: np.ndarray, targets: np.ndarray):
        self.explainer, self.x, self.targets = explainer, x, targets
        self._results: dict[str, MethodResult] = {}
        self._cams = None

    def params(self, method: Method) -> dict:
        return self.explainer.params(method)

    def result(self, name: str) -> MethodResult:
        """A method's result for this batch, computed once."""
        if name not in self._results:
            self._results[name] = self.explainer._method(name).run(self)
        return self._results[name]

    def cams(self) -> dict:
        """One compiled pass: {"activations": (B, h, w, c), name: (raw, maps) per gradient CAM}."""
        if self._cams is None:
            ex = self.explainer
            parts = [ex._cam_fn(self.x[s], self.targets[s]) for s in ex._chunks(len(self.x), ex.max_batch)]
            self._cams = {"activations": np.concatenate([np.asarray(p[0]) for p in parts])}
            for name in ex._cam_weighting:
                self._cams[name] = tuple(np.concatenate([np.asarray(p[1][name][i]) for p in parts]) for i in (0, 1))
        return self._cams


# ---------------------------------------------------------------------------------------------
# sanity and faithfulness checks


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks of the flattened array, ties given their average rank."""
    a = np.asarray(a, dtype=np.float64).ravel()
    order = np.argsort(a, kind="stable")
    _, first, counts = np.unique(a[order], return_index=True, return_counts=True)
    ranks = np.empty(a.size)
    ranks[order] = np.repeat(first + (counts - 1) / 2.0, counts)
    return ranks


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two flattened arrays; NaN if either is constant."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 0 else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps (ties averaged); NaN if either map is constant."""
    return pearson(_ranks(a), _ranks(b))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Structural similarity of two 2-D maps (Wang et al. 2004): Gaussian window (sigma 1.5,
    truncated at 3.5 sigma), K1 0.01, K2 0.03, mean over the interior where the window fits, as
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, use_sample_covariance=False)``.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)

    def smooth(v):
        return gaussian_blur(v, sigma, truncate=3.5)

    ma, mb = smooth(a), smooth(b)
    va, vb, cov = smooth(a * a) - ma * ma, smooth(b * b) - mb * mb, smooth(a * b) - ma * mb
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
    pad = int(3.5 * sigma + 0.5)
    inner = s[pad:-pad, pad:-pad] if min(s.shape) > 2 * pad else s
    return float(inner.mean())


def _randomize(layer, rng: np.random.Generator) -> None:
    """Redraw each trainable weight from a Gaussian with that weight's own mean and std."""
    for variable in layer.trainable_weights:
        value = np.asarray(variable)
        variable.assign(rng.normal(value.mean(), value.std(), value.shape).astype(value.dtype))


def cascading_randomization(model, x: np.ndarray, targets, methods: list, layers_from_top: list[str] | None = None,
                            *, preprocess_mode: str = "unit", cam_layer: str | None = None, score: str = "logit",
                            params: dict | None = None, max_batch: int = 32, seed: int = 0,
                            threshold: float = 0.9, original: dict | None = None) -> dict:
    """Model-parameter randomization test (Adebayo et al. 2018, "Sanity checks for saliency maps").

    Re-initializes the layers in ``layers_from_top`` (default: every layer with trainable weights,
    output first) one more at a time, seeded, and compares each method's maps with the original
    ones. A weight is redrawn from a Gaussian with its own mean and standard deviation (one with no
    spread, such as an untrained zero bias, stays). The targets are resolved once, on the original
    model. The model's weights are restored on return.

    Returns {"layers": the randomized layers in order, "spearman": {method: (steps, B)},
    "ssim": {method: (steps, B)}, "insensitive": {method: bool}}: row i is after randomizing
    layers[:i + 1]. Both are computed on |map| (SSIM after scaling each map to [0, 1] by its
    maximum). A method is insensitive when its mean Spearman after the last step exceeds
    ``threshold``: its maps do not depend on what the model learned. ``original``: the unrandomized
    |maps| per method when the caller already has them (for the same targets and settings).
    """
    if layers_from_top is None:
        layers_from_top = [p for p, layer in reversed(list(backend.iter_layers(model))) if layer.trainable_weights]
    x = np.asarray(x, np.float32)

    def maps_now():
        explainer = Explainer(model, methods, preprocess_mode, cam_layer, score, params, max_batch)
        return {name: np.abs(r.maps) for name, r in explainer.explain(x, resolved).items()}

    resolved = Explainer(model, [], preprocess_mode, max_batch=max_batch).resolve_targets(x, targets)[0]
    saved = model.get_weights()
    rng = np.random.default_rng(seed)
    try:
        original = original if original is not None else maps_now()
        names = list(original)
        rho = {n: np.zeros((len(layers_from_top), len(x))) for n in names}
        sim = {n: np.zeros((len(layers_from_top), len(x))) for n in names}
        for step, path in enumerate(layers_from_top):
            _randomize(backend.find_layer(model, path), rng)
            current = maps_now()
            for n in names:
                for b in range(len(x)):
                    rho[n][step, b] = spearman(original[n][b], current[n][b])
                    sim[n][step, b] = ssim(normalize_map(original[n][b])[0], normalize_map(current[n][b])[0])
    finally:
        model.set_weights(saved)
    # all-NaN (maps that became constant have no rank order) counts as changed, without a warning
    last = {n: rho[n][-1][np.isfinite(rho[n][-1])] for n in names}
    return {"layers": list(layers_from_top), "spearman": rho, "ssim": sim,
            "insensitive": {n: bool(last[n].size and last[n].mean() > threshold) for n in names}}


def deletion_insertion(model, x: np.ndarray, targets, maps: np.ndarray, steps: int = 20, *,
                       preprocess_mode: str = "unit", deletion_baseline="black", insertion_baseline="blur",
                       blur_sigma: float = 5.0, seed: int = 0, max_batch: int = 32,
                       explainer: "Explainer | None" = None) -> dict:
    """Deletion and insertion curves (Petsiuk et al. 2018, RISE) of maps (B, H, W).

    Pixels are taken in decreasing order of the map, (H * W) / steps more at each step. Deletion
    replaces them in x by ``deletion_baseline``; insertion puts them from x into
    ``insertion_baseline`` (either: black, white, blur, noise or a number; see ``baseline_image``).
    The curve is the target class's probability at each step; its area is the trapezoid over the
    fraction of pixels. A good map has a small deletion area and a large insertion area. The same
    is computed for a random order (seeded) as a baseline. Pass ``explainer`` (any Explainer of this
    model) to reuse its compiled forward pass across calls.

    Returns {"fractions": (steps + 1,), "deletion", "insertion": (B, steps + 1) curves,
    "deletion_auc", "insertion_auc": (B,), "random": the same four for the random order}.
    """
    x = np.asarray(x, np.float32)
    if np.shape(maps) != x.shape[:3]:
        raise InputError(f"deletion_insertion: maps have shape {np.shape(maps)}; the images need {x.shape[:3]}")
    explainer = explainer or Explainer(model, [], preprocess_mode, max_batch=max_batch)
    targets = explainer.resolve_targets(x, targets)[0]
    n_pixels = x.shape[1] * x.shape[2]
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.round(fractions * n_pixels).astype(np.int64)
    removed = baseline_image(x, deletion_baseline, blur_sigma, seed)
    start = baseline_image(x, insertion_baseline, blur_sigma, seed)

    def curves(ranks):
        deletion = explainer.scores(Ordered(x, removed, ranks, counts), targets, "probability")
        insertion = explainer.scores(Ordered(start, x, ranks, counts), targets, "probability")
        return {"deletion": deletion, "insertion": insertion,
                "deletion_auc": np.trapezoid(deletion, fractions, axis=1),
                "insertion_auc": np.trapezoid(insertion, fractions, axis=1)}

    def ranks_of(order):  # order: (B, H*W) pixel indices, first taken first
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(n_pixels)[None].repeat(len(order), 0), axis=1)
        return ranks.reshape(x.shape[:3])

    flat = np.asarray(maps, np.float64).reshape(len(x), -1)
    rng = np.random.default_rng(seed)
    random_order = np.stack([rng.permutation(n_pixels) for _ in range(len(x))])
    return {"fractions": fractions, **curves(ranks_of(np.argsort(-flat, axis=1, kind="stable"))),
            "random": curves(ranks_of(random_order))}

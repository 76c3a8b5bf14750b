"""Attribution maps (where the network looks): twelve methods behind one interface, plus checks.

Usage::

    names = [GradCAM.name, SmoothGrad.name]       # config names, as in heatmaps.methods
    explainer = Explainer(model, names, preprocess_mode="caffe", cam_layer=None, score="logit",
                          params={SmoothGrad.name: {"samples": 16}}, max_batch=32)
    results = explainer.explain(x, targets)       # dict: method name -> MethodResult
    results[GradCAM.name].maps                    # (B, H, W) float32 at input resolution
    results[GradCAM.name].raw                     # (B, h, w) at the CAM layer's resolution

``x`` is (B, H, W, C) float32 pixels in [0, 1]; the model's preprocessing (``preprocess``)
runs inside, so every gradient is taken with respect to the pixels. ``targets`` is (B,) int: class
indices, or the ``core.head.TARGET_PREDICTED`` / ``TARGET_REFERENCE`` codes (``core.head.resolve_targets``,
``group`` rows per image). ``score`` is what is explained: "logit" (the
pre-softmax logit, found by ``Head`` whatever the last layer is) or "probability".

Methods (``METHODS``, ``registry.CLASSES``): each is one ``Method`` subclass in its family's module
that declares its name, paper (docstring), parameters with defaults and allowed values, display name,
colour and which models it applies to; config validation, the Explainer and the table of
config/README.md (``registry.docs_table``) read them from there.

``reduce`` turns a (B, H, W, C) pixel attribution into a map: "abs_max" (largest absolute value
over channels, Simonyan et al.), "abs_sum", or "sum" (signed; for Integrated Gradients the map
then sums to f(x) - f(baseline)). ``raw`` is the (B, H, W, C) attribution for the gradient
methods, the (B, h, w) map at the CAM layer for the CAM family, and the (B, rows, cols) score
drops for Occlusion. A signed map says so in ``MethodResult.signed``.

The family, and what each variant states:

- gradient methods: the gradient of the score w.r.t. the pixels, averaged over perturbed copies of
  the image. Variants state how ReLU gradients are treated (``relu.RULES``),
  what is perturbed (nothing; noise for SmoothGrad; the path from a baseline for Integrated
  Gradients) and how the averaged gradient becomes the attribution.
- CAM methods: ReLU(sum_k w_k A_k) at the CAM layer, bilinearly upsampled. Variants state only the
  weights w (per channel, or per position for Layer-CAM): the dense layer's class weights (CAM),
  functions of the gradient (Grad-CAM, Grad-CAM++, Layer-CAM), or the score of the image masked by
  each channel (Score-CAM).
- Occlusion: the drop of the score when a patch is covered.
- guided Grad-CAM: guided backpropagation times the Grad-CAM map.

Everything that runs the model is compiled once per Explainer (``tf.function``,
``reduce_retracing=True``) and batched: the perturbed copies of all images (SmoothGrad samples, IG
steps, Occlusion patches, Score-CAM masks) go through the model at most ``max_batch`` rows at a
time, so memory is bounded and the answer does not depend on the chunking.

Guided backpropagation and Deconvnet replay the model layer by layer (Sequential, functional and
nested models alike, as ``trace`` does) and run every ReLU through ``tf.custom_gradient``:
``keras.layers.ReLU`` layers, ``Activation("relu" / "relu6")`` layers and layers with a ReLU
activation (run as ``linear_copy`` followed by the overridden ReLU). Other activations keep
their gradient. The Explainer copies those layers' weights (as ``Head`` does): build a new
one after the weights change.

Checks for the report: ``cascading_randomization`` (do the maps depend on the weights?) and
``deletion_insertion`` (do the maps rank the pixels the model uses?) with ``against_random`` (do
they beat a random order?), with ``spearman`` and a numpy ``ssim``.
"""

from convlens.attribution.base import Method, MethodResult, normalize_map
from convlens.attribution.explainer import Explainer
from convlens.attribution.quality import against_random, cascading_randomization, deletion_insertion, is_constant
from convlens.attribution.registry import METHODS

__all__ = [
    "METHODS",
    "Explainer",
    "Method",
    "MethodResult",
    "against_random",
    "cascading_randomization",
    "deletion_insertion",
    "is_constant",
    "normalize_map",
]

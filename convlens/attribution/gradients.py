"""Gradient methods: the gradient of the score w.r.t. the pixels, averaged over perturbed copies.

Variants state how ReLU gradients are treated (``rule``), what is perturbed and how the averaged
gradient becomes the attribution.
"""

from __future__ import annotations

import numpy as np

from convlens.attribution.base import REDUCE, SEED, Diagnostics, Look, Method, Param, number, pixel_result, whole, words
from convlens.attribution.perturbations import Noise, Path, Perturbation, Stack, baseline_image


class Gradient(Method):
    """Vanilla gradients, saliency (Simonyan, Vedaldi & Zisserman 2014, "Deep inside convolutional
    networks"): d score / d pixels. Map: largest absolute value over the colour channels."""

    name = "saliency"
    rule = "normal"  # how the backward pass treats ReLUs: normal, guided, deconvnet
    params = {"reduce": Param("abs_max", REDUCE)}
    look = Look("Saliency", "#56B4E9")
    reference = "Simonyan et al. 2014"
    cost = "1 backward pass"

    def perturbation(self, x: np.ndarray, params: dict) -> "Perturbation":
        """The copies of x whose gradients are averaged."""
        return Stack([x])

    def copies(self, params: dict) -> int:
        """How many copies' gradients are averaged (``perturbation``'s count)."""
        return 1

    def passes(self, params: dict, side: int) -> float:
        return 3.0 * self.copies(params)  # a forward and a backward to the pixels per copy

    def attribution(self, perturbation: "Perturbation", mean_gradient: np.ndarray) -> np.ndarray:
        """The (B, H, W, C) attribution from the averaged gradient."""
        return mean_gradient

    def info(self, context, perturbation: "Perturbation", raw: np.ndarray) -> dict:
        """Diagnostics for MethodResult.info."""
        return {}

    def run(self, context):
        params = context.params(self)
        perturbation = self.perturbation(context.x, params)
        gradient = context.explainer.mean_gradient(perturbation, context.targets, self.rule)
        raw = self.attribution(perturbation, gradient)
        return pixel_result(raw, params["reduce"], self.info(context, perturbation, raw))


class SmoothGrad(Gradient):
    """SmoothGrad (Smilkov et al. 2017): the gradient averaged over ``samples`` noisy copies.

    The noise is Gaussian with standard deviation ``noise`` times the image's own range
    (max - min), as in the paper; sample i's noise comes from seed (``seed``, i), so the answer does
    not depend on the batching.
    """

    name = "smoothgrad"
    params = {
        **Gradient.params,
        "samples": Param(25, whole(1)),
        "noise": Param(0.15, number(0)),  # times the image's range; 0: the plain gradient
        "seed": Param(0, SEED),
    }
    look = Look("SmoothGrad", "#0072B2")
    reference = "Smilkov et al. 2017"
    cost = "`samples` passes"

    def perturbation(self, x, params):
        return Noise(x, params["noise"], params["samples"], params["seed"])

    def copies(self, params):
        return params["samples"]


class IntegratedGradients(Gradient):
    """Integrated Gradients (Sundararajan, Taly & Yan 2017): (x - x') times the gradient averaged
    along the straight path from the baseline x' to x (midpoint rule, ``steps`` points).

    ``baseline``: "black", "white", "blur" (Gaussian, ``blur_sigma`` pixels), "noise" (uniform,
    ``seed``) or a number (a grey level). Signed; the default map sums the channels, so it sums to
    f(x) - f(x') up to the quadrature error, which ``info["delta"]`` reports per image.
    """

    name = "integrated_gradients"
    params = {
        "steps": Param(32, whole(1)),
        "baseline": Param("black", words("black", "white", "blur", "noise", also=number(0, 1))),
        "blur_sigma": Param(5.0, number(0, low_open=True)),
        "seed": Param(0, SEED),
        "reduce": Param("sum", REDUCE),  # signed: the map sums to f(x) - f(baseline)
    }
    look = Look("Integrated Gradients", "#332288")
    reference = "Sundararajan et al. 2017"
    cost = "`steps` passes"

    def perturbation(self, x, params):
        return Path(x, baseline_image(x, params["baseline"], params["blur_sigma"], params["seed"]), params["steps"])

    def copies(self, params):
        return params["steps"]

    def attribution(self, perturbation, mean_gradient):
        return (perturbation.x - perturbation.baseline) * mean_gradient

    def info(self, context, perturbation, raw):
        def delta():
            ends = context.explainer.scores(Stack([context.x, perturbation.baseline]), context.targets)
            return raw.sum(axis=(1, 2, 3)) - (ends[:, 0] - ends[:, 1])

        # two more passes per image, only when read, with the model's weights at that moment: read it
        # before changing them (the cascading randomization does not read it)
        return Diagnostics({"delta": delta})


class Deconvnet(Gradient):
    """Deconvnet (Zeiler & Fergus 2014): the backward pass through each ReLU keeps only the
    positive part of the incoming signal, whatever the forward input was."""

    name = "deconvnet"
    rule = "deconvnet"
    look = Look("Deconvnet", "#117733")
    reference = "Zeiler & Fergus 2014"
    cost = "1 backward pass (ReLU gradient overridden)"


class GuidedBackprop(Gradient):
    """Guided backpropagation (Springenberg et al. 2015): through each ReLU, only where the forward
    input was positive (the gradient) and the incoming signal is positive (deconvnet)."""

    name = "guided_backprop"
    rule = "guided"
    look = Look("Guided backprop", "#009E73")
    reference = "Springenberg et al. 2015"
    cost = "1 backward pass (ReLU gradient overridden)"

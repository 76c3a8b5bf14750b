"""Every attribution method by name: what config ``heatmaps.methods`` and the Explainer accept.

A new method is a Method subclass in its family's module plus one entry here (and its test).
"""

from __future__ import annotations

from convlens.attribution.base import Method
from convlens.attribution.cams import (ClassActivationMap, GradCAM, GradCAMPlusPlus, GuidedGradCAM, LayerCAM,
                                       ScoreCAM)
from convlens.attribution.gradients import Deconvnet, Gradient, GuidedBackprop, IntegratedGradients, SmoothGrad
from convlens.attribution.occlusion import Occlusion
from convlens.errors import InputError


METHODS: dict[str, Method] = {m.name: m for m in (
    Gradient(), SmoothGrad(), IntegratedGradients(), Occlusion(), Deconvnet(), GuidedBackprop(),
    ClassActivationMap(), GradCAM(), GradCAMPlusPlus(), ScoreCAM(), LayerCAM(), GuidedGradCAM())}


def method(name: str) -> Method:
    """The registered method called ``name``; InputError listing the known names otherwise."""
    if name not in METHODS:
        raise InputError(f"attribution method {name!r} is unknown; known: {', '.join(METHODS)}")
    return METHODS[name]

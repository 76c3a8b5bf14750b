"""Every attribution method by name: what config ``heatmaps.methods`` and the Explainer accept, and
how every figure and table shows it (a display name and one fixed colour per method).

A new method is a Method subclass in its family's module plus one entry here (and its test).
"""

from __future__ import annotations

from dataclasses import dataclass

from convlens.attribution.base import Method
from convlens.attribution.cams import (ClassActivationMap, GradCAM, GradCAMPlusPlus, GuidedGradCAM, LayerCAM,
                                       ScoreCAM)
from convlens.attribution.gradients import Deconvnet, Gradient, GuidedBackprop, IntegratedGradients, SmoothGrad
from convlens.attribution.occlusion import Occlusion
from convlens.errors import InputError


@dataclass(frozen=True)
class Look:
    """How a method appears in the report: its human name and its colour in every plot."""

    display: str
    colour: str  # "#rrggbb"


# Each method with its look. The colours come from the Okabe-Ito and Paul Tol (muted) colour-blind-safe
# palettes, at least 22 CIELAB units apart from each other (tests/attribution/test_registry.py): blues
# and greens for the gradient family, warm colours and purples for the CAM family.
ENTRIES: tuple[tuple[Method, Look], ...] = (
    (Gradient(), Look("Saliency", "#56B4E9")),
    (SmoothGrad(), Look("SmoothGrad", "#0072B2")),
    (IntegratedGradients(), Look("Integrated Gradients", "#332288")),
    (Occlusion(), Look("Occlusion", "#999933")),
    (Deconvnet(), Look("Deconvnet", "#117733")),
    (GuidedBackprop(), Look("Guided backprop", "#009E73")),
    (ClassActivationMap(), Look("CAM", "#CC79A7")),
    (GradCAM(), Look("Grad-CAM", "#D55E00")),
    (GradCAMPlusPlus(), Look("Grad-CAM++", "#E69F00")),
    (ScoreCAM(), Look("Score-CAM", "#882255")),
    (LayerCAM(), Look("Layer-CAM", "#AA4499")),
    (GuidedGradCAM(), Look("Guided Grad-CAM", "#000000")),
)

METHODS: dict[str, Method] = {m.name: m for m, _ in ENTRIES}
LOOKS: dict[str, Look] = {m.name: look for m, look in ENTRIES}
UNREGISTERED_COLOUR = "#777777"  # a method of your own (an Explainer takes Method instances)


def method(name: str) -> Method:
    """The registered method called ``name``; InputError listing the known names otherwise."""
    if name not in METHODS:
        raise InputError(f"attribution method {name!r} is unknown; known: {', '.join(METHODS)}")
    return METHODS[name]


def display_name(name: str) -> str:
    """The human name of a method ("guided_backprop" -> "Guided backprop"); other names unchanged."""
    look = LOOKS.get(name)
    return look.display if look else name


def method_colour(name: str) -> str:
    """The method's fixed colour in every figure; grey for a method that is not registered."""
    look = LOOKS.get(name)
    return look.colour if look else UNREGISTERED_COLOUR

"""Every attribution method by name: what config ``heatmaps.methods`` and the Explainer accept, and
what each method's parameters may be (``PARAMS``: config validation and the Explainer both check
values against it, so a parameter that would give NaN or all-zero maps stops the run naming it), and
how every figure and table shows it (a display name and one fixed colour per method).

A new method is a Method subclass in its family's module plus one entry in ``METHODS`` and one in
``PARAMS`` (and its test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from convlens.attribution.base import CHANNEL_REDUCTIONS, Method
from convlens.attribution.cams import ClassActivationMap, GradCAM, GradCAMPlusPlus, GuidedGradCAM, LayerCAM, ScoreCAM
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


@dataclass(frozen=True)
class Allowed:
    """What one parameter may be: ``text`` for the error message, ``test`` for a value."""

    text: str
    test: Callable[[object], bool]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def whole(low: int, nullable: str = "") -> Allowed:
    """An integer >= low; ``nullable``: what null means, when null is allowed."""
    text = f"an integer >= {low}" + (f", or null ({nullable})" if nullable else "")
    return Allowed(text, lambda v: (v is None and bool(nullable)) or (_is_int(v) and v >= low))


def number(low: float, high: float = math.inf, low_open: bool = False) -> Allowed:
    """A finite number in [low, high] (or (low, high] with ``low_open``)."""
    text = f"a number {'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high < math.inf else "")
    return Allowed(text, lambda v: _is_number(v) and (v > low if low_open else v >= low) and v <= high)


def words(*choices: str, also: Allowed | None = None) -> Allowed:
    """One of ``choices`` (or what ``also`` allows)."""
    text = ", ".join(choices) + (f" or {also.text}" if also else "")
    return Allowed(text, lambda v: v in choices or (also is not None and also.test(v)))


REDUCE = words(*CHANNEL_REDUCTIONS)
SEED = whole(0)

# Each method's parameters, next to its name: what values are allowed (every key of its defaults).
PARAMS: dict[str, dict[str, Allowed]] = {
    "saliency": {"reduce": REDUCE},
    "smoothgrad": {"reduce": REDUCE, "samples": whole(1), "noise": number(0), "seed": SEED},
    "integrated_gradients": {
        "steps": whole(1),
        "baseline": words("black", "white", "blur", "noise", also=number(0, 1)),
        "blur_sigma": number(0, low_open=True),
        "seed": SEED,
        "reduce": REDUCE,
    },
    "occlusion": {"patch": whole(1, "side // 8"), "stride": whole(1, "patch // 2"), "fill": number(0, 1)},
    "deconvnet": {"reduce": REDUCE},
    "guided_backprop": {"reduce": REDUCE},
    "cam": {},
    "gradcam": {},
    "gradcam_pp": {},
    "scorecam": {"channel_batch": whole(1, "batch_size")},
    "layercam": {},
    "guided_gradcam": {"reduce": REDUCE},
}


def method(name: str) -> Method:
    """The registered method called ``name``; InputError listing the known names otherwise."""
    if name not in METHODS:
        raise InputError(f"attribution method {name!r} is unknown; known: {', '.join(METHODS)}")
    return METHODS[name]


def check_params(name: str, given: dict, where: str) -> None:
    """InputError naming ``where.<parameter>`` unless every parameter of ``given`` is one the method
    has and its value is allowed (``PARAMS``). A method that is not registered is not checked."""
    if name not in METHODS:
        return
    known = METHODS[name].defaults
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(known) or 'none'}")
    for key, value in given.items():
        allowed = PARAMS[name][key]
        if not allowed.test(value):
            raise InputError(f"{where}.{key}: {value!r} is not allowed; allowed: {allowed.text}")


def display_name(name: str) -> str:
    """The human name of a method ("guided_backprop" -> "Guided backprop"); other names unchanged."""
    look = LOOKS.get(name)
    return look.display if look else name


def method_colour(name: str) -> str:
    """The method's fixed colour in every figure; grey for a method that is not registered."""
    look = LOOKS.get(name)
    return look.colour if look else UNREGISTERED_COLOUR

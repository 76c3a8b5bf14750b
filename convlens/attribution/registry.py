"""Every attribution method by name, read from the method classes: what config ``heatmaps.methods``
and the Explainer accept, what each method's parameters may be (``Method.params``: config
validation and the Explainer check values against them, so a parameter that would give NaN or
all-zero maps stops the run naming it), how every figure and table shows it (``Method.look``) and
the docs table of config/README.md (``docs_table``).

A new method is a Method subclass in its family's module, its class in ``CLASSES`` (and its test).
"""

from __future__ import annotations

from convlens.attribution.base import Method, check_params
from convlens.attribution.cams import ClassActivationMap, GradCAM, GradCAMPlusPlus, GuidedGradCAM, LayerCAM, ScoreCAM
from convlens.attribution.gradients import Deconvnet, Gradient, GuidedBackprop, IntegratedGradients, SmoothGrad
from convlens.attribution.occlusion import Occlusion
from convlens.errors import InputError

# Every method, in the order of every list, table and legend. The colours (``Method.look``) come
# from the Okabe-Ito and Paul Tol (muted) colour-blind-safe palettes, at least 22 CIELAB units apart
# from each other (tests/attribution/test_registry.py): blues and greens for the gradient family,
# warm colours and purples for the CAM family.
CLASSES: tuple[type[Method], ...] = (
    Gradient,
    SmoothGrad,
    IntegratedGradients,
    Occlusion,
    Deconvnet,
    GuidedBackprop,
    ClassActivationMap,
    GradCAM,
    GradCAMPlusPlus,
    ScoreCAM,
    LayerCAM,
    GuidedGradCAM,
)

METHODS: dict[str, Method] = {cls.name: cls() for cls in CLASSES}
DEFAULT_METHODS = (GradCAM.name,)  # config heatmaps.methods when not given
UNREGISTERED_COLOUR = "#777777"  # a method of your own (an Explainer takes Method instances)


def register(cls: type[Method]) -> Method:
    """Add a method class after the built-in ones (a plug-in, or a test's); returns its instance."""
    if not cls.name or cls.name in METHODS or cls.name == "all":
        raise InputError(f"attribution method {cls.name!r}: needs a name that is not taken")
    METHODS[cls.name] = cls()
    return METHODS[cls.name]


def unregister(name: str) -> None:
    """Remove a method ``register`` added."""
    if name in {cls.name for cls in CLASSES}:
        raise InputError(f"attribution method {name!r} is built in")
    METHODS.pop(name, None)


def method(name: str) -> Method:
    """The registered method called ``name``; InputError listing the known names otherwise."""
    if name not in METHODS:
        raise InputError(f"attribution method {name!r} is unknown; known: {', '.join(METHODS)}")
    return METHODS[name]


def check_method_params(name: str, given: dict, where: str) -> None:
    """InputError naming ``where.<parameter>`` unless the registered method ``name`` has every
    parameter of ``given`` and allows its value (``Method.params``)."""
    check_params(method(name), given, where)


def display_name(name: str) -> str:
    """The human name of a registered method (its ``look``); other names unchanged."""
    look = METHODS[name].look if name in METHODS else None
    return look.display if look else name


def method_colour(name: str) -> str:
    """The method's fixed colour in every figure; grey for a method that is not registered."""
    look = METHODS[name].look if name in METHODS else None
    return look.colour if look else UNREGISTERED_COLOUR


DOCS_BEGIN = "<!-- methods table: generated from convlens/attribution/registry.py (docs_table) -->"
DOCS_END = "<!-- end of the methods table -->"


def _param_text(key: str, param) -> str:
    default = "null" if param.default is None else param.default
    return f"`{key}` = `{default}` ({param.allowed.text})"


def docs_table() -> str:
    """The config/README.md table of every registered method: name, display name, paper,
    parameters with defaults and allowed values, the models it applies to, cost."""
    lines = [
        "| method | shown as | reference | parameters: default (allowed) | applies to | cost per image row |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in METHODS.items():
        params = "; ".join(_param_text(key, p) for key, p in m.params.items()) or "—"
        lines.append(f"| `{name}` | {display_name(name)} | {m.reference} | {params} | {m.applies_to} | {m.cost} |")
    return "\n".join(lines)


def with_docs_table(text: str) -> str:
    """``text`` (config/README.md) with the part between DOCS_BEGIN and DOCS_END made ``docs_table()``."""
    start, end = text.index(DOCS_BEGIN) + len(DOCS_BEGIN), text.index(DOCS_END)
    return text[:start] + "\n" + docs_table() + "\n" + text[end:]

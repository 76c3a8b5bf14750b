"""What every attribution method is: a ``Method`` that turns a batch into a ``MethodResult``, and
declares on its class everything else about it: its name, its parameters with their defaults and
allowed values, how the report shows it and which models it applies to."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from convlens.errors import InputError, did_you_mean


def normalize_map(heatmap: np.ndarray) -> tuple[np.ndarray, bool]:
    """Scale a (H, W) map to [0, 1] by its maximum; an all-zero map stays zero and is flagged.

    Returns (map, is_all_zero). Never divides by zero, never produces NaN.
    """
    heatmap = np.nan_to_num(np.asarray(heatmap, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(heatmap.max()) if heatmap.size else 0.0
    if peak <= 0.0:
        return np.zeros_like(heatmap), True
    return np.clip(heatmap / peak, 0.0, 1.0), False


@dataclass
class MethodResult:
    """One method's answer for a batch: maps (B, H, W) float32 at input resolution, raw form."""

    maps: np.ndarray
    raw: np.ndarray
    signed: bool = False
    info: Mapping = field(default_factory=dict)  # method-specific diagnostics (IG: completeness delta)


class Diagnostics(Mapping):
    """A method's diagnostics, each computed when first read: ``{name: function of no arguments}``.
    IG's completeness delta costs two more forward passes per image, which the study (every
    transform of every image) never reads; the tests and a caller who asks do."""

    def __init__(self, compute: dict[str, Callable[[], object]]):
        self._compute, self._values = dict(compute), {}

    def __getitem__(self, name):
        if name not in self._values:
            self._values[name] = self._compute[name]()
        return self._values[name]

    def __iter__(self):
        return iter(self._compute)

    def __len__(self):
        return len(self._compute)


CHANNEL_REDUCTIONS = {
    "abs_max": lambda a: np.abs(a).max(axis=-1),
    "abs_sum": lambda a: np.abs(a).sum(axis=-1),
    "sum": lambda a: a.sum(axis=-1),
}


def pixel_result(raw: np.ndarray, reduce: str, info: Mapping | None = None) -> MethodResult:
    if reduce not in CHANNEL_REDUCTIONS:
        raise InputError(f"reduce: {reduce!r} is not one of {', '.join(CHANNEL_REDUCTIONS)}")
    maps = CHANNEL_REDUCTIONS[reduce](raw).astype(np.float32)
    return MethodResult(maps, raw.astype(np.float32), signed=reduce == "sum", info=info or {})


@dataclass(frozen=True)
class Allowed:
    """What one parameter may be: ``text`` for the error message and the docs, ``test`` for a value."""

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


ANYTHING = Allowed("any value", lambda v: True)  # a parameter declared only by a default (``Method.defaults``)
REDUCE = words(*CHANNEL_REDUCTIONS)
SEED = whole(0)


@dataclass(frozen=True)
class Param:
    """One parameter of a method: its default and what values are allowed."""

    default: object
    allowed: Allowed = ANYTHING


@dataclass(frozen=True)
class Look:
    """How a method appears in the report: its human name and its colour in every plot."""

    display: str
    colour: str  # "#rrggbb"


class Method:
    """An attribution method: ``run(context)`` returns a MethodResult for ``context``'s batch.

    Everything about a method is declared on its class, and the registry (``registry.CLASSES``),
    config validation, the docs table and the Explainer read it from there:

    - ``name``: the name in config ``heatmaps.methods`` and in every file;
    - ``params``: {parameter: Param(default, allowed values)} (``defaults`` is derived from it; a
      subclass of your own may give ``defaults`` alone, its values then unchecked);
    - ``look``: display name and colour in the report (None: the name, in grey);
    - ``reference``, ``cost``, ``applies_to``: the docs table's columns; ``passes``: the cost in numbers;
    - ``requires``: the methods whose results it reuses; ``uses_cam_layer``: it needs the CAM layer;
    - ``prepare(model, cam_layer)``: what it needs of the model, or InputError when it does not apply.

    An Explainer takes instances as well as registry names.
    """

    name = ""
    params: dict[str, Param] = {}
    defaults: dict = {}
    look: Look | None = None
    reference = ""
    cost = ""
    applies_to = "any model"
    requires: tuple[str, ...] = ()
    uses_cam_layer = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "defaults" in cls.__dict__ and "params" not in cls.__dict__:
            cls.params = {key: Param(value) for key, value in cls.defaults.items()}
        cls.defaults = {key: p.default for key, p in cls.params.items()}

    def passes(self, params: dict, side: int) -> float:
        """Model passes per explained image, in forward-pass units (a backward pass to the pixels is
        about two): what ``images_per_job: auto`` counts (``convlens.model_cost``). ``params`` are
        the method's parameters (defaults included), ``side`` the input's side in pixels. 0 for a
        method that reuses the study's own pass (the gradient-CAM family)."""
        return 0.0

    def prepare(self, model, cam_layer: str | None):
        """What the method takes from the model, worked out once per Explainer (None for most; CAM:
        the dense layer holding the class weights). InputError saying why when it does not apply."""
        return None

    def run(self, context) -> MethodResult:
        raise NotImplementedError


def check_params(method: Method, given: dict, where: str) -> None:
    """InputError naming ``where`` (or ``where.<parameter>``) unless every parameter in ``given`` is
    one the method has (``Method.params``) and its value is allowed."""
    unknown = sorted(set(given) - set(method.params))
    if unknown:
        known = ", ".join(method.params) or "none"
        hint = did_you_mean(unknown, method.params)
        raise InputError(f"{where}: unknown parameter(s) {', '.join(unknown)}{hint}; known: {known}")
    for key, value in given.items():
        allowed = method.params[key].allowed
        if not allowed.test(value):
            raise InputError(f"{where}.{key}: {value!r} is not allowed; allowed: {allowed.text}")

"""The transform kinds: everything that differs from one kind of transform to another, in one place.

Each kind is one ``Kind`` entry of ``REGISTRY`` below. It declares

- its parameters (``Param``: a parameter without a default is required; a kind whose parameters all
  have defaults needs at least one of them) and what a ``range`` entry sweeps (``sweep``, with the
  extra keys such an entry may have in ``range_options``);
- its core matrix (``core``: 3x3, float64) about the image centre, or, with ``centred=False``, the
  whole forward matrix (identity and translations are the same about any point; used as they are,
  they stay exact);
- where a transform sits on a sweep curve (``axis``) and the curves themselves (``Curve``: name,
  neutral magnitude, axis label of the sweep plot);
- its unit (a format of one magnitude: ``{:g} px``, ``{:g}°``, ``×{:g}``) and whether magnitudes are
  factors (``multiplicative``: the size of a magnitude is then ``|log m|``, not ``|m|``);
- its words in the study's sentences (``shifts``, ``the horizontal flip``);
- its colour in the plots: a colour-map ``Family`` (darker for a larger magnitude) or a fixed
  ``Line`` colour and style;
- whether it is ``photometric``: a pixel operation (blur, noise, brightness, contrast, JPEG) rather
  than a warp. Its matrix is the identity, so warps, inverse warps and valid masks are identities
  and heatmaps compare without warping; the operation itself (``pixels``: the name of its function in
  ``convlens.sensitivity.photometric``, which needs TensorFlow) runs in the study's model step;
- whether equivariance applies to it (``equivariant``: not to a pixel operation) and whether its
  operation draws random numbers (``seeded``: a noise field per image from the run's seed);
- what it refuses that its parameters' bounds cannot say: a model input it cannot run on
  (``shape_problem``: a blur kernel wider than the image, JPEG on 4 channels) and a range it cannot
  sweep (``range_problem``: scale factors that reach 0);
- its Lie derivative generators (``lie``, ``convlens.core.lie.GENERATORS``) and a shift sweep's ``mode``
  (``fill``: the study's fill_mode; ``circular``: rolled), carried in the parameters and the name;
- its group in the comparison of models (``group``: by default the kind; shifts split into whole
  odd, whole even and sub-pixel offsets) and the magnitude the user's groups bound (``magnitude``:
  by default its only parameter; a shift's is max(|dx|, |dy|); config ``comparison.groups``).

A parameter may declare the values it allows (``Param.low``/``high``, ``integer``); a config entry
or range outside them is a one-line error (``transforms.check_spec``).

Names and parameter texts follow one rule for every kind: no parameters gives the kind
(``hflip``), one gives kind_value (``rotate_-15``, text ``-15``), several give kind_pvalue_qvalue
(``shift_dx4_dy0``, text ``dx=4,dy=0``).

``convlens.transforms`` (names, matrices, config entries, sweeps) and ``convlens.sensitivity`` (sentences,
colours, sweep plots, pixel operations, comparison groups) read this module, and so does the config
check: ``convlens.config.load_schema`` fills the transform entries' ``kind`` enum, parameters and range
options into ``workflow/schemas/config.schema.yaml``, which names no kind itself. ``config/README.md``
holds the kinds table ``transform_docs.doc_table`` makes (tests/test_registries.py checks it is current).

Adding a kind: one entry here plus its test (its matrix against an exact answer in
tests/test_transforms.py; a photometric kind's operation in tests/sensitivity/test_photometric.py), then
the kinds table in config/README.md regenerated (``python -m convlens.transform_docs``) and its
parameters described in the keys table there.

Pure numpy: no TensorFlow/Keras, no other convlens module but ``convlens.shift_modes`` (the shift's
sweeps, curves and groups with its ``mode``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from convlens.shift_modes import SHIFT_MODES, crop_frame, shift_axis, shift_group, shift_sweep


def fmt(value: float) -> str:
    """A magnitude as it appears in names and tables: ``4``, ``-15``, ``1.2``, never ``-0``."""
    text = f"{value:.10g}"
    return "0" if text == "-0" else text


@dataclass(frozen=True)
class Param:
    """One parameter of a config entry; ``default`` None means the entry must give it."""

    name: str
    default: float | None = None
    low: float | None = None  # smallest allowed value (inclusive unless ``above``), None: no bound
    high: float | None = None  # largest allowed value (inclusive)
    integer: bool = False
    above: bool = False  # ``low`` itself is not allowed

    def check(self, value: float) -> str | None:
        """Why ``value`` is not allowed ('' words for an error message), or None when it is."""
        if self.integer and float(value) != int(value):
            return f"{self.name} must be a whole number, not {fmt(value)}"
        too_low = self.low is not None and (value <= self.low if self.above else value < self.low)
        if too_low or (self.high is not None and value > self.high):
            low = fmt(self.low) if self.low is not None else "-inf"
            high = fmt(self.high) if self.high is not None else "inf"
            return f"{self.name} must be in {'(' if self.above else '['}{low}, {high}], not {fmt(value)}"
        return None

    def allowed(self) -> str:
        """The values allowed, in words for the docs: ``> 0``, ``in [0, 1]``, ``a whole number in [1, 100]``."""
        whole = "a whole number " if self.integer else ""
        if self.low is not None and self.high is not None:
            return f"{whole}in {'(' if self.above else '['}{fmt(self.low)}, {fmt(self.high)}]"
        if self.low is not None:
            return f"{whole}{'>' if self.above else '≥'} {fmt(self.low)}"
        if self.high is not None:
            return f"{whole}≤ {fmt(self.high)}"
        return whole.strip()


@dataclass(frozen=True)
class Option:
    """An extra key a ``range`` entry may have: the values it allows and the one meant when it is absent."""

    name: str
    values: tuple[str, ...]
    default: str


@dataclass(frozen=True)
class Curve:
    """A sweep curve: transforms of one kind and direction, over a magnitude."""

    name: str  # e.g. "shift x"; also the sweep plot's file name with spaces as underscores
    neutral: float | None  # the magnitude at which the transform is the identity; None: none (JPEG)
    label: str  # x-axis label of the sweep plot


@dataclass(frozen=True)
class Family:
    """A colour-map family (a matplotlib colormap name): darker for a larger magnitude."""

    cmap: str


@dataclass(frozen=True)
class Line:
    """A fixed colour and matplotlib line style."""

    colour: str
    style: str


def _no_axis(params: dict) -> None:
    return None


def _no_group(params: dict) -> None:
    return None


@dataclass(frozen=True)
class Kind:
    """One kind of transform (see the module docstring)."""

    name: str
    core: Callable[[dict], np.ndarray]
    params: tuple[Param, ...] = ()
    centred: bool = True
    sweep: Callable[[float, dict], dict] | None = None  # (range value, config entry) -> params; None: no range
    range_options: tuple[Option, ...] = ()
    axis: Callable[[dict], tuple[str, float] | None] = _no_axis
    curves: tuple[Curve, ...] = ()
    unit: str = ""
    multiplicative: bool = False
    words: str = ""
    colour: Family | Line | None = None
    photometric: bool = False
    operation: str = ""  # a photometric kind's pixel operation in words, formatted with its parameters
    pixels: str = ""  # a photometric kind's operation: the name of its function in convlens.sensitivity.photometric
    seeded: bool = False  # its operation needs each image's noise field (photometric.noise_field of the image seeds)
    equivariant: bool = True  # equivariance applies: it moves pixels (a warp), so a feature map can follow it
    strength: Callable[[float], float] | None = None  # how far a magnitude is from neutral, when not |m| or |log m|
    group: Callable[[dict], str | None] | None = None  # its group in the model comparison; None: the kind's name
    shape_problem: Callable[[dict, tuple], str | None] | None = None  # (params, model input (H, W, C)) -> why not
    range_problem: Callable[[float, float, float], str | None] | None = None  # (start, stop, step) -> why not
    lie: tuple[str, ...] = ()  # its one-parameter generators for the Lie derivative (convlens.core.lie.GENERATORS)
    frame: Callable[[dict, int, int], np.ndarray] | None = (
        None  # (params, H, W) -> a core applied first, about the centre
    )
    magnitude: Callable[[dict], float] | None = None  # what comparison.groups bounds; None: the only parameter

    @property
    def required(self) -> set[str]:
        return {p.name for p in self.params if p.default is None}

    def name_of(self, params: dict) -> str:
        """The transform's stable name: ``hflip``, ``rotate_-15``, ``shift_dx4_dy0``, ``shift_dx4_dy0_circular``."""
        if not self.params:
            return self.name
        options = "".join(
            f"_{params[o.name]}" for o in self.range_options if params.get(o.name, o.default) != o.default
        )
        if len(self.params) == 1:
            return f"{self.name}_{fmt(params[self.params[0].name])}" + options
        return self.name + "".join(f"_{p.name}{fmt(params[p.name])}" for p in self.params) + options

    def param_text(self, params: dict) -> str:
        """The magnitude as text for the tidy tables: ``''``, ``-15``, ``dx=4,dy=0``."""
        if len(self.params) == 1:
            return fmt(params[self.params[0].name])
        return ",".join(f"{p.name}={fmt(params[p.name])}" for p in self.params)

    def label(self, params: dict) -> str:
        """The transform as a reader reads it in figures, tables and sentences: ``shift (0, −4) px``,
        ``rotate 90°``, ``scale ×1.25``, ``hflip``, ``blur σ 1.5 px``; a shift sweep's mode after it
        (``shift (2, 0) px circular``). Ids (``shift_dx0_dy-4``) stay in the CSV files."""
        if not self.params:
            return self.name
        values = [fmt(params[p.name]).replace("-", "\u2212") for p in self.params]  # the minus sign
        number = values[0] if len(values) == 1 else f"({', '.join(values)})"
        text = f"{self.name} {self.unit.replace('{:g}', number)}" if self.unit else f"{self.name} {number}"
        mode = params.get("mode")
        return text + (f" {mode}" if mode and mode != "fill" else "")

    def entry_params(self, given: dict) -> dict:
        """The parameters of a single (not range) config entry: defaults filled in where the kind has them."""
        if not any(p.default is not None for p in self.params):
            return dict(given)
        return {p.name: given.get(p.name, p.default) for p in self.params}

    def group_of(self, params: dict) -> str | None:
        """The group a transform of this kind is pooled into when models are compared; None: in none."""
        return self.group(params) if self.group is not None else self.name

    def magnitude_of(self, params: dict) -> float | None:
        """The transform's magnitude in the kind's unit (what a user group's ``min`` and ``max`` bound): the
        kind's own ``magnitude``, else its only parameter; None for a kind without parameters."""
        if self.magnitude is not None:
            return float(self.magnitude(params))
        return float(params[self.params[0].name]) if len(self.params) == 1 else None

    def problem(self, params: dict, shape: tuple) -> str | None:
        """Why a transform of this kind cannot run on model inputs of ``shape`` (H, W, C), or None."""
        return self.shape_problem(params, shape) if self.shape_problem is not None else None

    def size(self, magnitude: float):
        """How far a magnitude is from neutral: ``|log m|`` for factors, ``|m|`` otherwise (or the kind's own
        ``strength``: JPEG's 100 − quality)."""
        if self.strength is not None:
            return self.strength(magnitude)
        return abs(np.log(magnitude)) if self.multiplicative else abs(magnitude)

    def largest(self, magnitudes: list[float]) -> str:
        """The largest of some magnitudes as text in the kind's unit (``6 px``, ``90°``, ``×1.4``); '' for none."""
        if not magnitudes or not self.unit:
            return ""
        if self.multiplicative or self.strength is not None:
            return self.unit.format(max(magnitudes, key=self.size))
        return self.unit.format(max(abs(m) for m in magnitudes))


# ---------------------------------------------------------------------------------------------
# the kinds' matrices, curves and sweeps


def _translation(p: dict) -> np.ndarray:
    return np.array([[1, 0, p["dx"]], [0, 1, p["dy"]], [0, 0, 1]], dtype=np.float64)


def _rotation(p: dict) -> np.ndarray:
    theta = math.radians(p["angle_deg"])
    c, s = math.cos(theta), math.sin(theta)
    # y points down, so a counter-clockwise turn on screen has +s in the x row.
    core = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], dtype=np.float64)
    core[np.abs(core) < 1e-15] = 0.0  # exact zeros for multiples of 90 degrees
    return core


def _scaling(p: dict) -> np.ndarray:
    f = float(p["factor"])
    return np.diag([f, f, 1.0])


def _scale_range_problem(start: float, stop: float, step: float) -> str | None:
    return "must keep scale factors > 0" if start <= 0 else None


TRUNCATE = 4.0  # a Gaussian blur's kernel radius in standard deviations, as scipy.ndimage.gaussian_filter


def blur_radius(sigma_px: float) -> int:
    """The radius of the blur's kernel, as ``scipy.ndimage.gaussian_filter``: ``int(4 σ + 0.5)``."""
    return int(TRUNCATE * float(sigma_px) + 0.5)


def _blur_problem(p: dict, shape: tuple) -> str | None:
    h, w, _ = shape
    r = blur_radius(p["sigma_px"])
    if r < min(h, w):
        return None
    return (
        f"blur sigma_px {p['sigma_px']:g} needs a kernel radius of {r} px; the model's {h}x{w} "
        f"input allows at most {min(h, w) - 1} (sigma_px up to about {(min(h, w) - 1.5) / TRUNCATE:.2g})"
    )


def _jpeg_problem(p: dict, shape: tuple) -> str | None:
    c = shape[2]
    return None if c in (1, 3) else f"jpeg needs images with 1 or 3 channels; the model's input has {c}"


def _identity(p: dict) -> np.ndarray:
    return np.eye(3)


def _photometric(
    name: str, param: Param, curve: Curve, unit: str, words: str, cmap: str, operation: str, **extra
) -> Kind:
    """A pixel operation with one swept parameter: the identity matrix, one curve over the parameter,
    equivariance does not apply; its operation is the function of ``convlens.sensitivity.photometric``
    named like the kind."""
    return Kind(
        name,
        core=_identity,
        centred=False,
        params=(param,),
        sweep=_sweeps(param.name),
        axis=_along(curve.name, param.name),
        curves=(curve,),
        unit=unit,
        words=words,
        colour=Family(cmap),
        photometric=True,
        operation=operation,
        pixels=name,
        equivariant=False,
        **extra,
    )


def _along(curve: str, param: str) -> Callable[[dict], tuple[str, float]]:
    """The axis of a one-parameter kind: its only curve, at the parameter's value."""
    return lambda p: (curve, float(p[param]))


def _sweeps(param: str) -> Callable[[float, dict], dict]:
    """The sweep of a one-parameter kind: each range value is that parameter."""
    return lambda v, spec: {param: v}


# ---------------------------------------------------------------------------------------------
# the registry; its order is the order of KINDS, the schema enum and error messages


REGISTRY: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("identity", core=lambda p: np.eye(3), centred=False, group=_no_group),  # the reference: in no group
        Kind(
            "shift",
            core=_translation,
            centred=False,
            params=(Param("dx", 0), Param("dy", 0)),
            sweep=shift_sweep,
            range_options=(Option("direction", ("x", "y", "xy"), "xy"), Option("mode", SHIFT_MODES, "fill")),
            axis=shift_axis,
            curves=tuple(  # a crop sweep's offset 0 is the centred crop, not the reference: no neutral point
                Curve(
                    f"shift {d}{' ' * (m != 'fill')}{m * (m != 'fill')}", None if m == "crop" else 0.0, "shift (pixels)"
                )
                for m in SHIFT_MODES
                for d in ("x", "y", "diagonal")
            ),
            unit="{:g} px",
            words="shifts",
            colour=Family("Blues"),
            group=shift_group,
            magnitude=lambda p: max(abs(float(p["dx"])), abs(float(p["dy"]))),
            lie=("shift_x", "shift_y"),
            frame=crop_frame,
        ),
        Kind(
            "rotate",
            core=_rotation,
            params=(Param("angle_deg"),),
            sweep=_sweeps("angle_deg"),
            axis=_along("rotate", "angle_deg"),
            curves=(Curve("rotate", 0.0, "angle (degrees)"),),
            unit="{:g}°",
            words="rotations",
            colour=Family("Reds"),
            lie=("rotate",),
        ),
        Kind(
            "hflip", core=lambda p: np.diag([-1.0, 1.0, 1.0]), words="the horizontal flip", colour=Line("black", "--")
        ),
        Kind("vflip", core=lambda p: np.diag([1.0, -1.0, 1.0]), words="the vertical flip", colour=Line("dimgrey", ":")),
        Kind(
            "scale",
            core=_scaling,
            params=(Param("factor", low=0, above=True),),
            sweep=_sweeps("factor"),
            axis=_along("scale", "factor"),
            curves=(Curve("scale", 1.0, "scale factor"),),
            unit="×{:g}",
            multiplicative=True,
            words="scalings",
            colour=Family("Greens"),
            range_problem=_scale_range_problem,
            lie=("scale",),
        ),
        # photometric kinds: pixel operations in [0, 1] pixel units (convlens/sensitivity/photometric.py)
        _photometric(
            "blur",
            Param("sigma_px", low=0),
            Curve("blur", 0.0, "Gaussian blur σ (pixels)"),
            "σ {:g} px",
            "Gaussian blurs",
            "Purples",
            "Gaussian blur, σ = {sigma_px:g} px, edges mirrored",
            shape_problem=_blur_problem,
        ),
        _photometric(
            "noise",
            Param("std", low=0, high=1),
            Curve("noise", 0.0, "noise standard deviation (pixel units)"),
            "std {:g}",
            "Gaussian noise",
            "Greys",
            "clip(x + {std:g} z), z standard normal, seeded per image",
            seeded=True,
        ),
        _photometric(
            "brightness",
            Param("delta", low=-1, high=1),
            Curve("brightness", 0.0, "brightness change (pixel units)"),
            "{:g}",
            "brightness changes",
            "RdPu",
            "clip(x + δ), δ = {delta:g}",
        ),
        _photometric(
            "contrast",
            Param("factor", low=0, above=True),
            Curve("contrast", 1.0, "contrast factor"),
            "×{:g}",
            "contrast changes",
            "YlOrBr",
            "clip(m + {factor:g} (x − m)), m each channel's mean",
            multiplicative=True,
        ),
        # JPEG at quality 100 is still lossy: no quality is the identity, so the curve has no neutral point
        _photometric(
            "jpeg",
            Param("quality", low=1, high=100, integer=True),
            Curve("jpeg", None, "JPEG quality"),
            "quality {:g}",
            "JPEG compression",
            "PuBuGn",
            "JPEG encode and decode at quality {quality:g}",
            strength=lambda q: 100.0 - q,
            shape_problem=_jpeg_problem,
        ),
    )
}

NAMES = tuple(REGISTRY)  # every kind, in registry order


CURVES: dict[str, Curve] = {c.name: c for k in REGISTRY.values() for c in k.curves}
PHOTOMETRIC = tuple(k.name for k in REGISTRY.values() if k.photometric)  # pixel operations, not warps
# the order in which the study's sentences go through the kinds: those with a magnitude first, then the
# others, each in registry order; identity (no words) is the reference and has none
FINDINGS_ORDER = tuple(sorted((k.name for k in REGISTRY.values() if k.words), key=lambda n: not REGISTRY[n].curves))

# the study a config without ``transforms`` runs (``convlens.config.load_schema`` makes it the default)
DEFAULT_TRANSFORMS = (
    {"kind": "shift", "range": [-6, 6, 2], "direction": "x"},
    {"kind": "rotate", "range": [-90, 90, 15]},
    {"kind": "scale", "range": [0.6, 1.4, 0.1]},
    {"kind": "hflip"},
    {"kind": "vflip"},
)

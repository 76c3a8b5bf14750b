"""Canvas-preserving affine transforms about the image centre, kept as 3x3 matrices.

Coordinates are pixel centres: pixel (row i, column j) sits at (x=j, y=i); y grows downwards.
A transform's *forward* matrix maps a point of the input image to where it lands in the output
image. Warping samples the input at ``inverse(M) @ output_point``.

Conventions (checked in tests): ``rotate(90)`` equals ``np.rot90(image)`` (counter-clockwise as
seen on screen); ``shift(dx, dy)`` moves content right by dx and down by dy pixels;
``scale(2)`` doubles the size of content about the centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from convlens.errors import InputError, did_you_mean
from convlens.transform_kinds import CURVES, NAMES, REGISTRY

KINDS = NAMES  # every transform kind; each is defined in convlens/transform_kinds.py
FILL_MODES = ("constant", "nearest", "reflect", "wrap")


@dataclass(frozen=True)
class Transform:
    """One transform of the study: its kind, parameters and a short stable name."""

    kind: str
    params: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """A name usable in file names and tables, e.g. ``shift_dx4_dy0`` or ``rotate_-15``."""
        kind = REGISTRY.get(self.kind)
        return kind.name_of(self.params) if kind else self.kind

    @property
    def param(self) -> str:
        """The magnitude as text, for the tidy tables (``dx=4,dy=0``, ``-15``, ``1.2``, ``''``)."""
        kind = REGISTRY.get(self.kind)
        return kind.param_text(self.params) if kind else ""

    @property
    def photometric(self) -> bool:
        """A pixel operation (blur, noise, ...), not a warp: its matrix is the identity."""
        kind = REGISTRY.get(self.kind)
        return bool(kind and kind.photometric)

    @property
    def equivariant(self) -> bool:
        """Equivariance applies to it (a warp; not a pixel operation)."""
        kind = REGISTRY.get(self.kind)
        return bool(kind and kind.equivariant)

    @property
    def wraps(self) -> bool:
        """Its warp is circular (a shift sweep's ``mode: circular``): read with ``wrap`` whatever the
        study's fill_mode, and every output pixel is valid."""
        return self.params.get("mode") == "circular"

    def fill_mode(self, study_fill: str) -> str:
        """The fill mode its warps use: ``wrap`` for a circular one, the study's otherwise."""
        return "wrap" if self.wraps else study_fill

    def problem(self, shape: tuple) -> str | None:
        """Why the transform cannot run on model inputs of ``shape`` (H, W, C), or None (its kind's check)."""
        return REGISTRY[self.kind].problem(self.params, shape)

    def matrix(self, height: int, width: int) -> np.ndarray:
        """The forward 3x3 matrix for an image of ``height`` x ``width`` pixels."""
        return forward_matrix(self.kind, self.params, height, width)

    @property
    def axis(self) -> tuple[str, float] | None:
        """Where the transform sits on a magnitude curve: (curve, magnitude), or None.

        Curves: ``shift x`` (dy = 0, magnitude dx), ``shift y`` (dx = 0, magnitude dy),
        ``shift diagonal`` (dx = dy), ``rotate`` (degrees), ``scale`` (factor). Flips and other
        shifts are single points. Identity lies on every curve at its neutral magnitude.
        """
        kind = REGISTRY.get(self.kind)
        return kind.axis(self.params) if kind else None


# the magnitude at which each curve passes through the identity
NEUTRAL = {name: curve.neutral for name, curve in CURVES.items()}


def centre_frame(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(to_centre, from_centre): 3x3 float64 translations taking pixel coordinates to coordinates
    about the image centre and back."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    to_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=np.float64)
    from_centre = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]], dtype=np.float64)
    return to_centre, from_centre


def forward_matrix(kind: str, params: dict, height: int, width: int) -> np.ndarray:
    """Forward matrix (input point -> output point) of one transform, shape (3, 3), float64.

    The kind's core matrix (``convlens.transform_kinds``) taken about the image centre, after the kind's
    ``frame`` when it has one (a crop-mode shift's enlargement about the centre).
    """
    if kind not in REGISTRY:
        raise ValueError(f"unknown transform kind {kind!r}; allowed: {', '.join(REGISTRY)}")
    core = REGISTRY[kind].core(params)
    to_centre, from_centre = centre_frame(height, width)
    if REGISTRY[kind].centred:
        core = from_centre @ core @ to_centre
    frame = REGISTRY[kind].frame(params, height, width) if REGISTRY[kind].frame is not None else None
    return core if frame is None else core @ from_centre @ frame @ to_centre  # the frame first (a crop's enlargement)


def expand_spec(spec: dict) -> list[Transform]:
    """Turn one config entry into transforms; a ``range`` entry gives a sweep.

    ``{kind: rotate, angle_deg: 15}`` gives one transform; ``{kind: rotate, range: [-30, 30, 15]}``
    gives -30, -15, identity, 15, 30 (start, stop inclusive, step): a magnitude that changes
    nothing (shift 0, angle 0, factor 1) is the identity, which every study has anyway. For shift a
    range sweeps ``dx`` and ``dy`` together unless ``direction`` is ``x`` or ``y``. What a range sweeps
    is each kind's ``sweep`` in ``convlens.transform_kinds``.
    """
    kind = spec["kind"]
    registered = REGISTRY.get(kind)
    if "range" not in spec:
        params = {k: v for k, v in spec.items() if k != "kind"}
        if registered:
            params = registered.entry_params(params)
        return [Transform(kind, params)]
    start, stop, step = spec["range"]
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    values = [round(start + i * step, 10) for i in range(count)]
    if registered is None or registered.sweep is None:
        raise InputError(f"config.transforms: kind {kind!r} takes no range; ranges are for {', '.join(ranged())}")
    neutral = {c.name: c.neutral for c in registered.curves}
    out = []
    for v in values:
        t = Transform(kind, registered.sweep(v, spec))
        out.append(Transform("identity") if t.axis and t.axis[1] == neutral[t.axis[0]] else t)
    return out


def ranged() -> tuple[str, ...]:
    """The kinds a range entry may sweep, in registry order (read when asked, so a kind added to the
    registry later counts)."""
    return tuple(k.name for k in REGISTRY.values() if k.sweep is not None)


def check_spec(spec: dict, where: str) -> None:
    """Raise InputError unless a transform entry has the parameters its kind needs and no others."""
    kind = spec["kind"]
    if kind not in REGISTRY:
        hint = did_you_mean(str(kind), REGISTRY)
        raise InputError(f"{where}.kind: {kind!r} is not allowed{hint}; allowed: {', '.join(map(repr, REGISTRY))}")
    registered = REGISTRY[kind]
    given = set(spec) - {"kind"}
    if "range" in spec:
        if registered.sweep is None:
            raise InputError(f"{where}.range: kind {kind!r} takes no range; ranges are for {', '.join(ranged())}")
        allowed = {"range", *(o.name for o in registered.range_options)}
    else:
        allowed = {p.name for p in registered.params}
        missing = registered.required - given
        if missing:
            raise InputError(f"{where}: {kind} needs {', '.join(sorted(missing))} (or a range)")
        if allowed and not registered.required and not given & allowed:  # all optional: at least one
            names = " and/or ".join(p.name for p in registered.params)
            raise InputError(f"{where}: {kind} needs {names} (or a range)")
    extra = given - allowed
    if extra:
        raise InputError(
            f"{where}: {kind} takes {', '.join(sorted(allowed)) or 'no parameters'}, not {', '.join(sorted(extra))}"
        )
    _check_values(spec, where)


def _check_values(spec: dict, where: str) -> None:
    """Raise InputError when a parameter, or a value a range sweeps, is outside what its kind allows."""
    kind = REGISTRY[spec["kind"]]
    bounds = {p.name: p for p in kind.params}
    for option in kind.range_options if "range" in spec else ():  # first: the sweep below reads them
        value = spec.get(option.name, option.default)
        if value not in option.values:
            allowed = ", ".join(map(repr, option.values))
            raise InputError(f"{where}.{option.name}: {value!r} is not allowed; allowed: {allowed}")
    if "range" in spec:
        checks = [
            (f"{where}.range", name, v)
            for t in expand_spec(spec)
            for name, v in t.params.items()
            if t.kind == kind.name and name in bounds
        ]
    else:
        checks = [(f"{where}.{name}", name, v) for name, v in spec.items() if name in bounds]
    for key, name, value in checks:
        problem = bounds[name].check(value)
        if problem:
            raise InputError(f"{key}: {kind.name} {problem}")


def build_transforms(specs: list[dict]) -> list[Transform]:
    """All transforms of a study, identity first (the reference every row is compared with).

    A transform listed twice is kept once; two different parameter sets that would share a name
    are an error.
    """
    result = [Transform("identity")]
    seen = {"identity": result[0]}
    for i, spec in enumerate(specs):
        check_spec(spec, f"config.transforms[{i}]")
        for t in expand_spec(spec):
            other = seen.get(t.name)
            if other is None:
                seen[t.name] = t
                result.append(t)
            elif _numbers(other.params) != _numbers(t.params):
                raise InputError(
                    f"config.transforms[{i}]: {t.params} and {other.params} would both be named {t.name!r}"
                )
    return result


def _numbers(params: dict) -> dict:
    """Parameters compared by value: numbers as floats (4 and 4.0 are the same), options as they are."""
    return {k: v if isinstance(v, str) else float(v) for k, v in params.items()}


def sheet_selection(specs: list[dict], chosen: list[str] | None) -> list[str]:
    """Names of the transforms drawn in the per-image sheets, in study order.

    ``chosen`` names them; None picks identity, every single transform and both ends of every range
    (a sweep's inner steps are measured in the study but not drawn).
    """
    names = [t.name for t in build_transforms(specs)]
    if chosen is not None:
        unknown = [c for c in chosen if c not in names]
        if unknown:
            raise InputError(
                f"config.report.sheet_transforms: {', '.join(unknown)} not in the study; transforms: {', '.join(names)}"
            )
        wanted = set(chosen) | {"identity"}
    else:
        wanted = {"identity"}
        for spec in specs:
            expanded = expand_spec(spec)
            wanted |= {expanded[0].name, expanded[-1].name}
    return [n for n in names if n in wanted]


def keras_transform_vector(forward: np.ndarray) -> np.ndarray:
    """The 8-vector ``keras.ops.image.affine_transform`` wants: the *inverse* map, output -> input.

    ``forward`` is one (3, 3) matrix or a stack (..., 3, 3); the result is (8,) or (..., 8).
    """
    inv = np.linalg.inv(np.asarray(forward, dtype=np.float64))
    inv = inv / inv[..., 2:3, 2:3]
    return inv.reshape(*inv.shape[:-2], 9)[..., :8]


@dataclass(frozen=True)
class Grid:
    """Where a feature map's pixels sit in the input: pixel (u, v) of the map is centred on input
    point ``x = ax * u + bx``, ``y = ay * v + by``; the map is ``height`` x ``width``.

    ``backend.layer_grids`` derives it from each layer's strides, kernel sizes and padding.
    """

    ay: float
    by: float
    ax: float
    bx: float
    height: int
    width: int

    @classmethod
    def even(cls, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> "Grid":
        """A grid that covers the input evenly (stride-s 'same' layers on sizes divisible by s)."""
        ay, ax = from_hw[0] / to_hw[0], from_hw[1] / to_hw[1]
        return cls(ay, 0.5 * ay - 0.5, ax, 0.5 * ax - 0.5, int(to_hw[0]), int(to_hw[1]))

    def then(self, inner: "Grid") -> "Grid":
        """The grid of a map computed from this one by a layer whose own grid is ``inner``."""
        return Grid(
            self.ay * inner.ay,
            self.ay * inner.by + self.by,
            self.ax * inner.ax,
            self.ax * inner.bx + self.bx,
            inner.height,
            inner.width,
        )

    def to_input(self) -> np.ndarray:
        """3x3 matrix taking map coordinates (u, v, 1) to input coordinates (x, y, 1)."""
        return np.array([[self.ax, 0, self.bx], [0, self.ay, self.by], [0, 0, 1]], dtype=np.float64)


def rescale_matrix(forward: np.ndarray, grid: Grid) -> np.ndarray:
    """The same geometric transform expressed on a feature map's grid: ``G^-1 M G``."""
    if np.array_equal(forward, np.eye(3)):
        return np.eye(3)  # exactly, so the identity row warps nothing
    g = grid.to_input()
    return np.linalg.inv(g) @ forward @ g


def warp(
    images, forward_matrices, fill_mode: str = "constant", fill_value: float = 0.0, interpolation: str = "bilinear"
):
    """Warp a batch with one matrix per image.

    images: (B, H, W, C) float array or tensor, any channel count.
    forward_matrices: (B, 3, 3) forward matrices in the images' pixel grid.
    Returns a (B, H, W, C) tensor of the backend in use.
    """
    import keras

    if fill_mode not in FILL_MODES:
        raise ValueError(f"fill_mode {fill_mode!r} is not allowed; allowed: {', '.join(FILL_MODES)}")
    vectors = keras_transform_vector(np.asarray(forward_matrices)).astype("float32")
    return keras.ops.image.affine_transform(
        images,
        vectors,
        interpolation=interpolation,
        fill_mode=fill_mode,
        fill_value=fill_value,
        data_format="channels_last",
    )


def warp_rows(images, forward_matrices, fill_modes: list[str], fill_value: float = 0.0) -> np.ndarray:
    """``warp`` with a fill mode per row (a circular shift wraps, the others fill): one call per mode.
    Returns a numpy array."""
    images = np.asarray(images, np.float32)
    out = np.empty_like(images)
    modes = np.asarray(fill_modes)
    for mode in dict.fromkeys(fill_modes):
        rows = np.flatnonzero(modes == mode)
        out[rows] = np.asarray(warp(images[rows], np.asarray(forward_matrices)[rows], mode, fill_value))
    return out


def valid_mask(forward_matrices, height: int, width: int, fill_mode: str = "constant"):
    """Which output pixels come from inside the input (not from fill): (B, H, W) bool numpy array.

    Only ``constant`` fill invents pixels; for the other modes the mask is all true, but a pixel that
    ``nearest``/``reflect``/``wrap`` copied from elsewhere is also not the transformed content, so the
    mask is computed geometrically for every mode: the sampled input point must lie within the
    input's pixel-centre hull, so a bilinear read never mixes in a filled neighbour.
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    masks = []
    for m in np.asarray(forward_matrices):
        src = np.linalg.inv(m) @ points
        sx, sy = src[0] / src[2], src[1] / src[2]
        tol = 1e-6
        inside = (sx >= -tol) & (sx <= width - 1 + tol) & (sy >= -tol) & (sy <= height - 1 + tol)
        masks.append(inside.reshape(height, width))
    return np.stack(masks)


@dataclass(frozen=True)
class Sampler:
    """A bilinear warp of one (h, w, c) map, restricted to its valid output pixels, as gathers.

    Valid output pixel ``positions[i]`` (a flat index ``row * w + col``) of the warped map equals
    ``sum_k weights[k, i] * map_flat[index[k, i]]``: the bilinear read of ``keras.ops.image.
    affine_transform`` at the same point. Corners whose weight is zero for every pixel are left out,
    so a warp that maps pixel centres onto pixel centres (identity, flips, 90° turns, whole-pixel
    shifts) is a single exact gather.
    """

    positions: np.ndarray  # (n,) int32
    index: np.ndarray  # (K, n) int32, K <= 4
    weights: np.ndarray  # (K, n) float32


SNAP = 1e-6  # sample points this close to a pixel centre are read from it exactly


def sampler(forward: np.ndarray, valid: np.ndarray, wrap: bool = False) -> Sampler:
    """The gathers of ``forward`` (3x3, on the map's grid) over the ``valid`` (h, w) output pixels.

    Valid pixels sample inside the pixel-centre hull (``valid_mask``), so no corner reads fill. With
    ``wrap`` (a circular shift) every pixel is valid and reads wrap around the edges (``wrap`` fill).
    """
    h, w = valid.shape
    positions = np.flatnonzero(valid)
    rows, cols = np.divmod(positions, w)
    src = np.linalg.inv(forward) @ np.stack([cols, rows, np.ones(len(positions))]).astype(np.float64)
    axes = []
    for value, size in ((src[0] / src[2], w), (src[1] / src[2], h)):
        nearest = np.round(value)
        value = np.where(np.abs(value - nearest) < SNAP, nearest, value)
        value = np.mod(value, size) if wrap else np.clip(value, 0, size - 1)
        low = np.floor(value)
        # (index, weight) of the lower and upper neighbour; on the last pixel the upper one has weight 0
        # (wrapping: the first pixel)
        upper = np.mod(low + 1, size) if wrap else np.minimum(low + 1, size - 1)
        axes.append(((low.astype(np.int64), 1 - (value - low)), (upper.astype(np.int64), value - low)))
    corners = [(y * w + x, wy * wx) for y, wy in axes[1] for x, wx in axes[0]]
    kept = [(i, wt) for i, wt in corners if np.any(wt != 0)] or corners[:1]
    return Sampler(
        positions.astype(np.int32),
        np.stack([i for i, _ in kept]).astype(np.int32),
        np.stack([wt for _, wt in kept]).astype(np.float32),
    )

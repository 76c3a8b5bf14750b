"""Transform groups the user names (config ``comparison.groups``), beside the built-in ones.

A group selects the transforms of one kind whose magnitude (``Kind.magnitude_of``: a shift's is
max(|dx|, |dy|) in pixels, a rotation's its angle in degrees, a scaling's its factor, a photometric
kind's its parameter) is no farther from the identity than ``max`` and no nearer than ``min``, both in
the kind's unit and compared by ``Kind.size`` (|m|; |log m| for factors, so ``max: 1.25`` holds the
factors 0.8 to 1.25; 100 − quality for JPEG); a shift group holds shifts of every mode (fill,
circular, crop). A kind without parameters (hflip) takes no bounds. Example::

    comparison:
      groups:
        small_shift: {kind: shift, max: 2}        # |dx|, |dy| <= 2 px
        large_rotation: {kind: rotate, min: 45}   # |angle| >= 45 degrees

A transform is in its built-in group (``Kind.group_of``) and in every user group that selects it;
the comparison's group values are per-image means over each group's transforms, so a transform in
two groups counts in both. Pure Python: no TensorFlow, no pandas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from convlens.errors import InputError, did_you_mean
from convlens.transform_kinds import REGISTRY, fmt
from convlens.transforms import Transform

BOUNDS = ("min", "max")
TOLERANCE = 1e-9  # a factor and its inverse, or a bound given as the sweep's own value, compare as equal
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
CLEAN = "clean"  # the comparison's group of the untransformed images (their accuracy: clean accuracy)


@dataclass(frozen=True)
class Group:
    """One user group: a kind and optional bounds on its magnitude."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None

    def holds(self, t: Transform) -> bool:
        """Whether the transform belongs to the group."""
        if t.kind != self.kind:
            return False
        kind = REGISTRY[self.kind]
        m = kind.magnitude_of(t.params)
        if m is None:
            return True
        size = kind.size(m)
        low_ok = self.low is None or size >= kind.size(self.low) - TOLERANCE
        return low_ok and (self.high is None or size <= kind.size(self.high) + TOLERANCE)

    def describe(self) -> str:
        """The selector in words, for the report: ``shift, magnitude ≤ 2 px``."""
        unit = REGISTRY[self.kind].unit or "{:g}"
        bounds = [f"≥ {unit.format(self.low)}" if self.low is not None else ""]
        bounds.append(f"≤ {unit.format(self.high)}" if self.high is not None else "")
        words = " and ".join(b for b in bounds if b)
        return self.kind + (f", magnitude {words}" if words else "")


def parse_groups(spec: dict | None, where: str = "config.comparison.groups") -> list[Group]:
    """The user's groups from the config mapping name -> selector; a one-line InputError naming the key
    for an unknown kind or key, a bound on a kind without magnitude, or a name that is not allowed."""
    groups = []
    for name, selector in (spec or {}).items():
        at = f"{where}.{name}"
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise InputError(f"{where}: group name {name!r} must be a letter then letters, digits or '_'")
        if name in REGISTRY or name == CLEAN:
            raise InputError(f"{where}: group name {name!r} is a built-in group's name; choose another")
        if not isinstance(selector, dict) or "kind" not in selector:
            raise InputError(f"{at}: needs a mapping with kind (and optionally min, max), not {selector!r}")
        kind = REGISTRY.get(selector["kind"])
        if kind is None or kind.name == "identity":
            allowed = [k for k in REGISTRY if k != "identity"]
            raise InputError(
                f"{at}.kind: {selector['kind']!r} is not allowed{did_you_mean(str(selector['kind']), allowed)}; "
                f"allowed: {', '.join(allowed)}"
            )
        groups.append(_group(name, kind, selector, at))
    return groups


def _group(name: str, kind, selector: dict, at: str) -> Group:
    allowed = ["kind", *(BOUNDS if kind.params else ())]
    unknown = [k for k in selector if k not in allowed]
    if unknown:
        key = str(unknown[0])
        hint = did_you_mean(key, allowed)
        if not hint and key[:4] in ("min_", "max_") and kind.params:  # max_px, max_deg: the bound is in the kind's unit
            hint = f" (did you mean {key[:3]!r}? it is in the kind's unit)"
        raise InputError(f"{at}: unknown key {key!r}{hint} for kind {kind.name}; allowed: {', '.join(allowed)}")
    bounds = {}
    for key in BOUNDS:
        value = selector.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InputError(f"{at}.{key}: must be a number (a {kind.name} magnitude), not {value!r}")
        if value is not None and kind.multiplicative and value <= 0:
            raise InputError(f"{at}.{key}: must be a factor > 0, not {fmt(value)}")
        bounds[key] = None if value is None else float(value)
    low, high = bounds["min"], bounds["max"]
    if low is not None and high is not None and kind.size(low) > kind.size(high) + TOLERANCE:
        raise InputError(f"{at}: min {fmt(low)} is farther from the identity than max {fmt(high)}; no transform fits")
    return Group(name, kind.name, low, high)


def user_groups_of(t: Transform, groups: list[Group]) -> list[str]:
    """The names of the user groups that hold the transform, in config order."""
    return [g.name for g in groups if g.holds(t)]

"""Layers of two models paired by structure, not by name alone.

A layer's structure is its output map (height, width, channels) and its stride in input pixels (the
grid step, ``core.grids``). Pairing, each layer used at most once:

1. an explicit mapping (config ``comparison.layers``: model -> {its layer: reference layer}) wins;
2. same-named layers pair when their resolution (height, width) and stride agree;
3. the rest pair by resolution and relative depth: a layer at the same resolution and stride whose
   relative depth (index / (layers − 1)) is closest, within ``MAX_DEPTH_GAP``.

Whatever stays unpaired is named in a warning; a same-named layer left unpaired says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

MAX_DEPTH_GAP = 0.25  # relative depths farther apart than this do not pair
STRUCTURE_COLUMNS = ["layer", "height", "width", "channels", "stride"]


@dataclass(frozen=True)
class Layer:
    name: str
    height: int
    width: int
    channels: int
    stride: float

    @property
    def grid(self) -> tuple:
        return (self.height, self.width, round(self.stride, 6))

    def describe(self) -> str:
        return f"{self.height}×{self.width}×{self.channels}, stride {self.stride:g}"


def layers_of(table: pd.DataFrame) -> list[Layer]:
    """Layers from a structure table (``STRUCTURE_COLUMNS``, in depth order)."""
    return [
        Layer(str(r.layer), int(r.height), int(r.width), int(r.channels), float(r.stride))
        for r in table.itertuples(index=False)
    ]


def depth(i: int, n: int) -> float:
    return i / (n - 1) if n > 1 else 0.0


def pair_layers(
    reference: list[Layer], other: list[Layer], explicit: dict[str, str] | None = None, model: str = "model"
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Pair ``other``'s layers with ``reference``'s.

    Returns (pairs: other layer -> reference layer, how: other layer -> "explicit" | "name" |
    "resolution and depth", warnings). ``explicit`` names must exist (ValueError naming the key)."""
    ref_by_name = {la.name: la for la in reference}
    other_by_name = {la.name: la for la in other}
    pairs: dict[str, str] = {}
    how: dict[str, str] = {}
    taken = [theirs for theirs in (explicit or {}).values()]
    twice = sorted({t for t in taken if taken.count(t) > 1})
    if twice:
        raise ValueError(f"config.comparison.layers.{model}: {', '.join(twice)} named as the partner of two layers")
    for mine, theirs in (explicit or {}).items():
        if mine not in other_by_name or theirs not in ref_by_name:
            missing = mine if mine not in other_by_name else theirs
            raise ValueError(f"config.comparison.layers.{model}: {missing} is not a probed layer of its model")
        pairs[mine], how[mine] = theirs, "explicit"
    used = set(pairs.values())
    warnings = []
    for la in other:
        ref = ref_by_name.get(la.name)
        if la.name in pairs or ref is None:
            continue
        if ref.name in used:  # the reference's same-named layer is someone's explicit partner
            partner = next(mine for mine, theirs in pairs.items() if theirs == ref.name)
            warnings.append(
                f"{model}: layer {la.name} not paired by name: config.comparison.layers.{model} pairs the "
                f"reference's {ref.name} with {partner}"
            )
            continue
        if ref.grid == la.grid:
            pairs[la.name], how[la.name] = ref.name, "name"
            used.add(ref.name)
        else:
            warnings.append(
                f"{model}: layer {la.name} ({la.describe()}) not paired by name with the reference's "
                f"{ref.name} ({ref.describe()}): different resolution or stride"
            )
    for i, la in enumerate(other):
        if la.name in pairs:
            continue
        d = depth(i, len(other))
        candidates = [
            (abs(depth(j, len(reference)) - d), j, r)
            for j, r in enumerate(reference)
            if r.name not in used and r.grid == la.grid and abs(depth(j, len(reference)) - d) <= MAX_DEPTH_GAP
        ]
        if candidates:
            r = min(candidates, key=lambda c: (c[0], c[1]))[2]
            pairs[la.name], how[la.name] = r.name, "resolution and depth"
            used.add(r.name)
    lone = [la.name for la in other if la.name not in pairs]
    lone_ref = [r.name for r in reference if r.name not in used]
    if lone:
        warnings.append(f"{model}: layers without a partner in the reference: {', '.join(lone)}")
    if lone_ref:
        warnings.append(f"{model}: reference layers without a partner in {model}: {', '.join(lone_ref)}")
    return pairs, how, warnings


def renamed(order: list[str], pairs: dict[str, str], reference: list[str], model: str) -> dict[str, str]:
    """Each of a model's layers under the name the comparison uses: its reference partner's name, or
    for an unpaired layer its own name (``name (model)`` when the reference has a layer of that name,
    so the two never meet in a table or on a line)."""
    return {la: pairs.get(la, f"{la} ({model})" if la in reference else la) for la in order}

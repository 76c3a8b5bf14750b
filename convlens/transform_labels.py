"""A transform as a reader reads it: its label from the stable id the CSV files keep (``shift_dx0_dy-4``
-> ``shift (0, −4) px``; ``Kind.label`` in ``convlens.transform_kinds`` makes it from the parameters).
Figures, tables, sentences and the report's ``transform`` filter call ``label_of``. Pure Python."""

from __future__ import annotations

import re

from convlens.transform_kinds import REGISTRY, Kind


def parse_name(name: str) -> tuple[Kind, dict] | None:
    """A transform's kind and parameters from its stable name (``Kind.name_of``'s inverse, as far as the
    name carries them: a crop shift's margin is not in it); None for a name no kind makes."""
    for kind in sorted(REGISTRY.values(), key=lambda k: -len(k.name)):  # the longest kind name first
        if name == kind.name and not kind.params:
            return kind, {}
        if not kind.params or not name.startswith(kind.name + "_"):
            continue
        rest, params = name[len(kind.name) :], {}
        single = len(kind.params) == 1
        for p in kind.params:
            found = re.match(rf"_{'' if single else p.name}(-?[0-9.]+(?:e[-+]?[0-9]+)?)", rest)
            if found is None:
                break
            params[p.name] = float(found.group(1))
            rest = rest[found.end() :]
        else:
            for word in filter(None, rest.split("_")):
                option = next((o for o in kind.range_options if word in o.values), None)
                if option is None:
                    break
                params[option.name] = word
            else:
                return kind, params
    return None


def label_of(name: str) -> str:
    """A transform's reader label from its stable name (``shift_dx0_dy-4`` -> ``shift (0, −4) px``); a name
    no kind makes (a group's, "worst case over all") unchanged."""
    parsed = parse_name(str(name))
    return parsed[0].label(parsed[1]) if parsed else str(name)


def label_ascii(name: str) -> str:
    """``label_of`` for text drawn with Pillow's fonts, which lack some signs: a hyphen for the minus
    (``rotate -90°``), "x" for the times sign (``scale x0.6``), "sigma" for σ (``blur sigma 0.5 px``)."""
    return label_of(name).replace("\u2212", "-").replace("\u00d7", "x").replace("\u03c3", "sigma")

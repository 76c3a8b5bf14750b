"""The transform kinds' table in config/README.md, made from the registry (``transform_kinds.REGISTRY``):
``python -m convlens.transform_docs`` prints it; tests/test_registries.py checks the page holds it."""

from __future__ import annotations

import re

from convlens.transform_kinds import REGISTRY, Param, fmt


def _param_doc(p: Param) -> str:
    text = f"`{p.name}`"
    if p.default is not None:
        text += f" (default {fmt(p.default)})"
    return text + (f" {p.allowed()}" if p.allowed() else "")


def doc_table() -> str:
    """The kinds table of config/README.md, one row per kind of ``REGISTRY`` (tests/test_registries.py
    checks that the page holds it; ``python -m convlens.transform_docs`` prints it)."""
    rows = [
        "| kind | what it does | parameters and the values they allow | `range` | equivariance |",
        "|---|---|---|---|---|",
    ]
    for k in REGISTRY.values():
        if k.photometric:
            does = "pixels: " + re.sub(r"\{(\w+)(:[^}]*)?\}", r"`\1`", k.operation)
        else:
            does = f"warp ({k.words})" if k.words else "nothing: the reference, always added first"
        params = ", ".join(_param_doc(p) for p in k.params) or "none"
        if k.params and not k.required:
            params += " (at least one)"
        sweep = "no"
        if k.sweep is not None:
            sweep = "yes" + "".join(
                f"; `{o.name}`: {', '.join(f'`{v}`' for v in o.values)} (default `{o.default}`)"
                for o in k.range_options
            )
        rows.append(f"| `{k.name}` | {does} | {params} | {sweep} | {'yes' if k.equivariant else 'no'} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(doc_table(), end="")

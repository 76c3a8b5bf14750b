"""Stage of rule transform_table."""

from __future__ import annotations

from convlens.models import ModelInfo
from convlens.stages.files import write_csv
from convlens.transform_kinds import REGISTRY
from convlens.transforms import build_transforms


def transform_table(transform_specs: list[dict], info_json: str, out_csv: str) -> None:
    """The study's transforms with their forward matrices at the model's input size; a photometric
    transform (its matrix the identity) also has its pixel operation in words."""
    h, w = ModelInfo.load(info_json).input_shape[:2]
    rows = []
    for t in build_transforms(transform_specs):
        m = t.matrix(h, w)
        rows.append(
            {
                "transform": t.name,
                "kind": t.kind,
                "param": t.param,
                "matrix": ";".join(" ".join(f"{v:.6g}" for v in row) for row in m),
                "operation": REGISTRY[t.kind].operation.format(**t.params) if t.photometric else "",
            }
        )
    write_csv(out_csv, rows)

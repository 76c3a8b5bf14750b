"""The transform table (stages.transform_table): forward matrices, and photometric pixel operations."""

import csv

import numpy as np

from convlens.models import ModelInfo
from convlens.stages.transform_table import transform_table


def test_geometric_rows_have_their_matrix_and_photometric_rows_the_identity_and_their_operation(tmp_path):
    ModelInfo("m", "load", [10, 12, 3], ["a", "b"], "unit").save(tmp_path / "info.json")
    specs = [{"kind": "shift", "dx": 2, "dy": -1}, {"kind": "blur", "sigma_px": 1.5}, {"kind": "jpeg", "quality": 30}]
    transform_table(specs, str(tmp_path / "info.json"), str(tmp_path / "transforms.csv"))
    with open(tmp_path / "transforms.csv") as fh:
        rows = {r["transform"]: r for r in csv.DictReader(fh)}
    assert list(rows) == ["identity", "shift_dx2_dy-1", "blur_1.5", "jpeg_30"]

    def matrix(name):
        return np.array([[float(v) for v in row.split()] for row in rows[name]["matrix"].split(";")])

    assert np.array_equal(matrix("shift_dx2_dy-1"), [[1, 0, 2], [0, 1, -1], [0, 0, 1]])
    assert rows["shift_dx2_dy-1"]["operation"] == "" and rows["identity"]["operation"] == ""
    assert np.array_equal(matrix("blur_1.5"), np.eye(3)) and np.array_equal(matrix("jpeg_30"), np.eye(3))
    assert rows["blur_1.5"]["operation"] == "Gaussian blur, σ = 1.5 px, edges mirrored"
    assert rows["jpeg_30"]["operation"] == "JPEG encode and decode at quality 30"

"""The comparison's caption promises highlighted rows ("Highlighted: a difference the numbers support"):
a supported row of a text table (``table.grid tr.flipped``) prints on a coloured background in every cell,
while an image sheet's flipped row colours only its prediction cell."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CSS = (Path(__file__).resolve().parent.parent / "reports" / "templates" / "report.css").read_text()
HIGHLIGHT = tuple(int(h, 16) for h in re.findall(r"..", "fff1e0"))


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs pdftoppm (poppler-utils)")
def test_a_supported_row_prints_highlighted_in_every_cell(tmp_path):
    from weasyprint import HTML

    assert "tr.flipped td.pred { background: #fff1e0; }" in CSS
    cells = "".join(f"<td>{'x' * 20}</td>" for _ in range(4))
    html = (
        f"<html><head><style>{CSS}</style></head><body>"
        f'<table class="grid compact"><tbody><tr class="flipped">{cells}</tr><tr>{cells}</tr></tbody></table>'
        f'<table class="sheet-table"><tbody><tr class="flipped"><td>{"y" * 30}</td><td class="pred">z</td></tr>'
        "</tbody></table></body></html>"
    )
    HTML(string=html).write_pdf(tmp_path / "t.pdf")
    subprocess.run(
        ["pdftoppm", "-r", "50", "-png", "-singlefile", str(tmp_path / "t.pdf"), str(tmp_path / "t")], check=True
    )
    pixels = np.asarray(Image.open(tmp_path / "t.png").convert("RGB")).astype(int)
    tinted = np.abs(pixels - HIGHLIGHT).max(axis=-1) <= 2
    rows = np.flatnonzero(tinted.any(axis=1))
    assert rows.size  # the supported row is highlighted
    first_band = tinted[rows[0]]
    columns = np.flatnonzero(first_band)
    assert columns.max() - columns.min() > 0.45 * pixels.shape[1]  # across the table's cells, not one
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    assert len(bands) == 2  # the grid row, and the sheet's prediction cell; not the unflagged row
    sheet = np.flatnonzero(tinted[bands[1][0]])
    assert sheet.max() - sheet.min() < columns.max() - columns.min()  # only the prediction cell there

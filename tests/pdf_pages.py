"""What a reader sees on a report's pages: how far down each page the ink reaches (pdftoppm), where
the chapters start (the PDF outline's top level) and the text (pdftotext)."""

import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

MM_PER_INCH = 25.4
INK_BELOW = 200  # grey levels below this are ink (the page is white, 255)


def ink_heights(pdf: Path, out_dir: Path, dpi: int = 30, top_mm: float = 16, bottom_mm: float = 18) -> list[float]:
    """Per page, the share of its content height (inside the top and bottom margins: the footer's page
    number is left out) above the lowest row with ink; 0 for a blank page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", str(pdf), str(out_dir / "p")], check=True)
    shares = []
    for path in sorted(out_dir.glob("p-*.pgm"), key=lambda p: int(p.stem.split("-")[-1])):
        page = np.asarray(Image.open(path).convert("L"))
        top, bottom = (round(mm / MM_PER_INCH * dpi) for mm in (top_mm, bottom_mm))
        content = page[top : page.shape[0] - bottom]
        rows = np.flatnonzero((content < INK_BELOW).any(axis=1))
        shares.append(float((rows[-1] + 1) / content.shape[0]) if len(rows) else 0.0)
    return shares


def chapter_starts(pdf: Path) -> set[int]:
    """The 0-based pages on which a chapter (a top-level entry of the PDF outline: an h1) starts."""
    import pypdf

    reader = pypdf.PdfReader(pdf)
    return {reader.get_destination_page_number(item) for item in reader.outline if not isinstance(item, list)}


def underfilled_pages(pdf: Path, out_dir: Path, least: float = 0.5) -> list[tuple[int, float]]:
    """(1-based page, ink share) of every page with ink on less than ``least`` of its height that is not
    a chapter's last page (the page before a chapter starts, or the document's last)."""
    shares = ink_heights(pdf, out_dir)
    starts = chapter_starts(pdf)
    return [
        (i + 1, round(s, 2))
        for i, s in enumerate(shares)
        if s < least and i + 1 < len(shares) and (i + 1) not in starts
    ]


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout


def outline_titles(pdf: Path) -> list[str]:
    """Every entry of the PDF outline (the headings WeasyPrint bookmarks), depth first."""
    import pypdf

    def walk(items):
        for item in items:
            yield from walk(item) if isinstance(item, list) else [item.title]

    return list(walk(pypdf.PdfReader(pdf).outline))

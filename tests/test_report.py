"""The PDF's embedded images: the faster re-encoding keeps every pixel."""
import numpy as np
import pytest
from PIL import Image

from convlens import report


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_png_idat_is_the_image_and_the_pdf_holds_the_same_pixels(tmp_path, mode):
    pypdf = pytest.importorskip("pypdf")
    from weasyprint import HTML

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (37, 53, 3) if mode == "RGB" else (37, 53), dtype=np.uint8)
    pixels[:10] = 200  # flat rows too, where PNG filters differ most
    Image.fromarray(pixels).save(tmp_path / "picture.png")
    # the IDAT data inside a minimal PNG decodes to the same pixels
    source = Image.open(tmp_path / "picture.png")
    original = (tmp_path / "picture.png").read_bytes()
    ihdr_end = 8 + 12 + int.from_bytes(original[8:12], "big")
    import struct
    import zlib

    idat = report.png_idat(source)
    rebuilt = original[:ihdr_end] + struct.pack("!I", len(idat)) + b"IDAT" + idat + struct.pack(
        "!I", zlib.crc32(b"IDAT" + idat)) + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    (tmp_path / "rebuilt.png").write_bytes(rebuilt)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "rebuilt.png")), pixels)

    html = f'<img src="{(tmp_path / "picture.png").as_uri()}" style="width: 53px">'
    from weasyprint.images import RasterImage

    original = RasterImage._get_png_data
    with report.fast_pdf_images():
        assert RasterImage._get_png_data is report.png_idat
        HTML(string=html).write_pdf(tmp_path / "fast.pdf")
    assert RasterImage._get_png_data is original  # undone after the block
    HTML(string=html).write_pdf(tmp_path / "plain.pdf")
    for name in ("fast.pdf", "plain.pdf"):
        (embedded,) = pypdf.PdfReader(tmp_path / name).pages[0].images
        assert np.array_equal(np.asarray(embedded.image), pixels), name

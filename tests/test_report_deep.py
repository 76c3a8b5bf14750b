"""A report for a deep model with many classes (issue 16): every figure fits its page, the class list
is bounded, the self-contained HTML needs no other file, and the console stays quiet.

One workflow run: keras.applications MobileNetV2 (alpha 0.35, random weights, 64 px, 1000 classes),
saved as .keras and loaded like a user's file, two scikit-image photos, one transform, Grad-CAM only,
the method check off, a few filter steps; run with ``--directory`` as a study folder of its own."""

import re
from pathlib import Path

import pytest
import yaml

from tests.runs import ROOT, snakemake

MM = 72 / 25.4  # PDF points per millimetre

pytestmark = pytest.mark.integration


def drawn_images(page):
    """(width, height, x0, y0) in points of every image XObject drawn on the page, from the content
    stream's transformation matrices (q/Q/cm) at each ``Do``."""
    from pypdf.generic import ContentStream

    xobjects = page["/Resources"].get("/XObject") or {}
    ctm, stack, out = [1, 0, 0, 1, 0, 0], [], []
    for operands, op in ContentStream(page.get_contents(), page.pdf).operations:
        if op == b"q":
            stack.append(ctm)
        elif op == b"Q":
            ctm = stack.pop()
        elif op == b"cm":
            a, b, c, d, e, f = (float(v) for v in operands)
            A, B, C, D, E, F = ctm
            ctm = [a * A + b * C, a * B + b * D, c * A + d * C, c * B + d * D, e * A + f * C + E, e * B + f * D + F]
        elif op == b"Do" and xobjects[operands[0]].get_object()["/Subtype"] == "/Image":
            a, b, c, d, e, f = ctm  # the unit square's corners
            xs, ys = [e, e + a, e + c, e + a + c], [f, f + b, f + d, f + b + d]
            out.append((max(xs) - min(xs), max(ys) - min(ys), min(xs), min(ys)))
    return out


@pytest.fixture(scope="module")
def deep_study(tmp_path_factory):
    keras = pytest.importorskip("keras")
    from PIL import Image
    from skimage import data as skdata

    study = tmp_path_factory.mktemp("deep")
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, weights=None, classes=1000)
    model.save(study / "mobilenet.keras")
    (study / "photos").mkdir()
    Image.fromarray(skdata.astronaut()).save(study / "photos" / "astronaut.png")
    Image.fromarray(skdata.coffee()).save(study / "photos" / "coffee.png")
    cfg = {
        "seed": 3,
        "datasets": {},
        "models": {"mnv2": {"source": "load", "path": "mobilenet.keras"}},  # class_0 ... class_999
        "images": [{"folder": "photos"}],
        "transforms": [{"kind": "hflip"}],
        "heatmaps": {"methods": ["gradcam"], "quality_images": 0},
        "filters": {"layers": ["Conv1"], "n_filters": 2, "steps": 2, "image_size": 32, "regularized": {"steps": 0}},
        "report": {
            "title": "deep",
            "self_contained": True,
            "detail": "full",  # every chapter in the PDF: each figure is checked against its page
            "exemplars": {"sensitive": 1, "flipped": 0, "random": 0},
        },
    }
    (study / "config.yaml").write_text(yaml.safe_dump(cfg))
    # a study folder of its own, run from elsewhere: relative paths in the config and every output live under it
    result = snakemake(
        tmp_path_factory.mktemp("elsewhere"), "--directory", str(study), "--configfile", str(study / "config.yaml")
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return study, result


def test_every_figure_fits_its_page_and_the_class_list_is_bounded(deep_study):
    import pypdf

    study, _ = deep_study
    reader = pypdf.PdfReader(study / "results" / "report" / "report.pdf")
    images = 0
    for number, page in enumerate(reader.pages, 1):
        box = page.mediabox
        width, height = float(box.width), float(box.height)
        landscape = width > height
        # the report's @page margins: 16/18 mm top/bottom portrait, 12/16 mm on the landscape sheets
        content_height = height - (28 if landscape else 34) * MM
        for w, h, x0, y0 in drawn_images(page):
            images += 1
            assert h <= content_height + 0.5, f"page {number}: an image {h / MM:.0f} mm tall"
            assert x0 >= -0.5 and x0 + w <= width + 0.5, f"page {number}: an image runs off the page"
            assert y0 >= -0.5 and y0 + h <= height + 0.5, f"page {number}: an image runs off the page"
    assert images > 10
    text = "\n".join(page.extract_text() for page in reader.pages)
    model_pages = [page.extract_text() for page in reader.pages if "Model mnv2" in page.extract_text()]
    model_text = model_pages[-1]  # the chapter's first page (the contents page lists it too)
    names = set(re.findall(r"class_\d+", model_text))
    assert "1,000 classes: class_0, class_1" in model_text.replace("\n", " ")
    assert "class_999" in names and len(names) <= 5 + 2 + 20  # head, tail and at most 20 predicted classes
    assert len(set(re.findall(r"class_\d+", text))) <= 40  # nowhere a list of the 1000


def test_the_self_contained_html_needs_no_other_file(deep_study):
    study, _ = deep_study
    html = (study / "results" / "report" / "report.html").read_text()
    sources = re.findall(r'<img\b[^>]*\bsrc="([^"]*)"', html)
    links = re.findall(r'\bhref="([^"]*)"', html)
    assert len(sources) > 10
    assert all(s.startswith(("data:image/png;base64,", "data:image/svg+xml;base64,")) for s in sources)
    # in-page links, and each figure's SVG link embedded as well
    outside = [h for h in links if not h.startswith(("#", "data:image/svg+xml;base64,", "data:image/png;base64,"))]
    assert not outside, outside[:3]


def test_the_self_contained_html_and_the_pdf_hold_no_path_of_the_build_machine(deep_study):
    import pypdf

    study, _ = deep_study
    paths = {str(study), str(study.resolve()), str(ROOT), str(Path.home())}
    pdf = study / "results" / "report" / "report.pdf"
    reader = pypdf.PdfReader(pdf)
    uris = [
        str((annot.get_object().get("/A") or {}).get("/URI"))
        for page in reader.pages
        for annot in page.get("/Annots") or []
        if "/URI" in (annot.get_object().get("/A") or {})
    ]
    assert not uris, uris[:3]
    text = "\n".join([page.extract_text() for page in reader.pages] + [str(v) for v in reader.metadata.values()])
    for blob in (pdf.read_bytes(), (study / "results" / "report" / "report.html").read_bytes(), text.encode()):
        assert b"file:" not in blob
        assert not [p for p in paths if p.encode() in blob]


def test_the_console_has_no_library_chatter_and_the_logs_keep_it(deep_study):
    study, result = deep_study
    console = result.stdout + result.stderr
    chatter = [line for line in console.splitlines() if re.search(r"INFO (Step \d|glyf|Retaining|maxp)", line)]
    assert not chatter, chatter[:5]
    assert re.search(r"INFO report: \d+ PDF pages \(report.detail: full\) laid out", console)
    report_log = (study / "results" / "logs" / "report.log").read_text()
    assert "Step 1 - Fetching" in report_log  # WeasyPrint's INFO steps: in the rule's log
    assert not (ROOT / "results" / "mnv2").exists()  # nothing written into the repository


def test_a_study_folder_runs_the_default_config_and_a_changed_config_is_noted(deep_study, tmp_path):
    study, _ = deep_study
    # no --configfile: the embedded default, found beside the Snakefile, planned in an empty folder
    plan = snakemake(tmp_path, "--directory", str(tmp_path / "study"), "-n")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "results/report/report.pdf" in plan.stdout and "note:" not in plan.stderr
    # a config other than the one that made this folder's report: one line says it will be replaced
    cfg = yaml.safe_load((study / "config.yaml").read_text())
    cfg["report"]["title"] = "another study"
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(cfg))
    plan = snakemake(tmp_path, "--directory", str(study), "--configfile", str(tmp_path / "other.yaml"), "-n")
    assert plan.returncode == 0, plan.stderr[-3000:]
    notes = [line for line in plan.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "results/report/run.json was made with another config" in notes[0]
    assert "--directory studies/<name>" in notes[0]
    same = snakemake(tmp_path, "--directory", str(study), "--configfile", str(study / "config.yaml"), "-n")
    assert "note:" not in same.stderr and "Nothing to be done" in same.stdout + same.stderr

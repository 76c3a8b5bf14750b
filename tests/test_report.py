"""The report: the PDF's embedded images keep every pixel; the contents and the headings come from one list."""

import re
from html.parser import HTMLParser
from pathlib import Path

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
    rebuilt = (
        original[:ihdr_end]
        + struct.pack("!I", len(idat))
        + b"IDAT"
        + idat
        + struct.pack("!I", zlib.crc32(b"IDAT" + idat))
        + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )
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


# The report's outline: one list (report.SECTIONS) gives both the table of contents and the section headings.

TEMPLATES = Path(__file__).resolve().parent.parent / "reports" / "templates"


def walk_sections(sections=report.SECTIONS, depth=1):
    for sec in sections:
        yield sec, depth
        yield from walk_sections(sec.children, depth + 1)


def test_every_section_has_a_partial_that_opens_with_its_heading_from_the_list():
    used = set()
    for sec, depth in walk_sections():
        path = TEMPLATES / "sections" / sec.partial
        assert path.is_file(), f"{sec.partial} is in SECTIONS but not in {path.parent}"
        used.add(path.name)
        source = path.read_text()
        # the heading's id and text are the list's anchor and title, at the level of the section's depth
        assert f'<h{depth} id="{{{{ sec.anchor }}}}">{{{{ sec.title }}}}' in source, sec.partial
        assert source.count(f"<h{depth} ") == 1 and source.count("<h1") + source.count("<h2") == 1, sec.partial
    used.add("verdict.html.j2")  # the verdict page: before the contents, not in the outline (report.html.j2)
    assert used == {p.name for p in (TEMPLATES / "sections").glob("*.html.j2")}, "a partial no section includes"
    anchors = [sec.anchor for sec, _ in walk_sections()]
    assert len(anchors) == len(set(anchors))


class Outline(HTMLParser):
    """The contents' links (href, text) and the body's h1/h2 headings (id, text), in document order."""

    def __init__(self):
        super().__init__()
        self.toc, self.headings, self.in_toc, self.current = [], [], False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "nav":
            self.in_toc = True
        elif self.in_toc and tag == "a":
            self.current = (self.toc, attrs["href"].removeprefix("#"), [])
        elif not self.in_toc and tag in ("h1", "h2") and "id" in attrs and attrs["id"] != "top":
            self.current = (self.headings, attrs["id"], [])

    def handle_endtag(self, tag):
        if tag == "nav":
            self.in_toc = False
        elif self.current and tag in ("a", "h1", "h2"):
            target, key, text = self.current
            target.append((key, "".join(text)))
            self.current = None

    def handle_data(self, data):
        if self.current:
            self.current[2].append(data)


def fake_model(name, images, trained):
    return {
        "name": name,
        "metrics": {"x": 1} if trained else None,
        "evolution": {"x": 1} if trained else None,
        "transforms": [{}, {}],
        "images": [{"summary": {"image": i}} for i in images],
        "exemplars": {"measured": 10 * len(images)},
    }


def test_contents_and_headings_come_from_one_list_in_the_same_order(tmp_path):
    # the real main template; every partial replaced by just its heading, written from `sec` like the real ones
    (tmp_path / "report.html.j2").write_text((TEMPLATES / "report.html.j2").read_text())
    (tmp_path / "sections").mkdir()
    for sec, depth in walk_sections():
        (tmp_path / "sections" / sec.partial).write_text(
            f'<h{depth} id="{{{{ sec.anchor }}}}">{{{{ sec.title }}}}</h{depth}>\n<p>{sec.partial}</p>\n'
        )
    models = [
        fake_model("cnn", ["img-0", "img 1"], trained=True),
        fake_model('pre<b>&"x', ["img-0"], trained=False),
    ]  # loaded: no training, no evolution
    html = report.render_html(
        {"config": {"report": {"title": "t"}}, "run": {"date": "d"}, "css": "", "models": models}, tmp_path
    )
    parser = Outline()
    parser.feed(html)
    expected = [
        ("sensitivity", "Sensitivity to transforms"),
        ("sens-cnn", "cnn"),
        ("sens-pre-b---x", 'pre<b>&"x'),
        ("run-summary", "Run summary"),
        ("transforms", "Transforms"),
        ("model-cnn", "Model cnn"),
        ("arch-cnn", "Architecture"),
        ("train-cnn", "Training and test accuracy"),
        ("filters-cnn", "Filters"),
        ("evolution-cnn", "Training evolution"),
        ("embedding-cnn", "Embedding of the test set"),
        ("methods-cnn", "Heatmap methods: sanity and faithfulness"),
        ("sheet-cnn-img-0", "Image img-0"),
        ("sheet-cnn-img-1", "Image img 1"),
        ("model-pre-b---x", 'Model pre<b>&"x'),
        ("arch-pre-b---x", "Architecture"),
        ("filters-pre-b---x", "Filters"),
        ("methods-pre-b---x", "Heatmap methods: sanity and faithfulness"),
        ("sheet-pre-b---x-img-0", "Image img-0"),
    ]
    assert parser.headings == expected
    # the contents: the same entries in the same order, except the sections marked toc=False
    assert parser.toc == [entry for entry in expected if entry[0] != "transforms"]
    nodes = report.outline(models)
    flat = []

    def flatten(nodes):
        for node in nodes:
            flat.append((node["anchor"], node["title"]))
            flatten(node["children"])

    flatten(nodes)
    assert flat == expected
    # user strings escaped (autoescape stays on), the chapters and sheets wrapped as before
    assert "<b>" not in html and "pre&lt;b&gt;&amp;&#34;x" in html
    assert html.count('<section class="chapter">') == 2 + len(models) and html.count('<section class="sheet">') == 3
    assert html.count("<section") == html.count("</section>")


def test_run_summary_shows_the_resize_and_every_warning_in_one_block_escaped():
    import jinja2

    sections = [
        {
            "name": "cnn",
            "info": {"warnings": [{"kind": "preprocess", "message": "file <b>x</b> looks like VGG"}]},
            "study": {"warnings": [{"kind": "stretched", "message": "3 of 4 images were stretched"}]},
        },
        {"name": "old", "info": {}, "study": {}},
    ]  # results written before warnings existed
    warnings = report.run_warnings(sections)
    assert warnings == [
        {"model": "cnn", "kind": "preprocess", "message": "file <b>x</b> looks like VGG"},
        {"model": "cnn", "kind": "stretched", "message": "3 of 4 images were stretched"},
    ]
    config = {
        "resize": "stretch",
        "images": [{"file": "a.png"}, {"folder": "b", "resize": "pad"}],
        "fill_mode": "constant",
        "fill_value": 0,
        "images_per_job": 8,
    }
    assert report.resize_modes(config) == "stretch (some images entries: pad)"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=jinja2.StrictUndefined
    )
    html = env.get_template("sections/run_summary.html.j2").render(
        sec={"anchor": "run-summary", "title": "Run summary"},
        config=config,
        resize=report.resize_modes(config),
        warnings=warnings,
        run={"date": "d", "config_digest": "x", "seed": 1, "hardware": {}, "devices": [], "versions": {}},
    )
    assert "<td>stretch (some images entries: pad)</td>" in html
    block = html.split('<h3 id="warnings">Warnings</h3>')[1]
    assert "file &lt;b&gt;x&lt;/b&gt; looks like VGG" in block and "3 of 4 images were stretched" in block
    assert "Warnings" not in env.get_template("sections/run_summary.html.j2").render(
        sec={"anchor": "a", "title": "t"},
        config=config,
        resize="stretch",
        warnings=[],
        run={"date": "d", "config_digest": "x", "seed": 1, "hardware": {}, "devices": [], "versions": {}},
    )


def test_the_comparison_chapter_comes_first_and_only_with_a_comparison():
    models = [fake_model("a", ["img-0"], trained=True), fake_model("b", ["img-0"], trained=True)]
    with_it = report.outline(models, run={"comparison": {"reference": "a"}})
    assert [(n["anchor"], n["title"]) for n in with_it[:2]] == [
        ("comparison", "Comparison of models"),
        ("sensitivity", "Sensitivity to transforms"),
    ]
    assert report.outline(models, run={"comparison": None})[0]["anchor"] == "sensitivity"
    assert report.outline(models)[0]["anchor"] == "sensitivity"
    assert report.comparison(Path("/nonexistent"), 2) is None


def test_headers_wrap_between_name_parts_and_stay_escaped():
    from convlens.report import breakable

    assert str(breakable("block_16_project")) == "block_<wbr>16_<wbr>project"
    assert str(breakable("<b>_x")) == "&lt;b&gt;_<wbr>x"


def test_report_filters_give_method_names_and_vector_files(tmp_path):
    from convlens.report import render_html

    (tmp_path / "report.html.j2").write_text(
        "{{ 'guided_backprop' | method_name }}|{{ 'gradcam_pp' | method_name }}|{{ 'a/b/by_layer.png' | vector }}"
    )
    assert render_html({"models": []}, tmp_path) == "Guided backprop|Grad-CAM++|a/b/by_layer.svg"


def test_a_self_contained_report_holds_every_figure_as_a_data_uri(tmp_path):
    import base64

    results = tmp_path / "results"
    (results / "m" / "figures").mkdir(parents=True)
    (results / "report").mkdir()
    png = results / "m" / "figures" / "a b.png"
    Image.new("RGB", (3, 2), (200, 10, 10)).save(png)
    svg = results / "m" / "figures" / "plot.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    (results / "m" / "table.csv").write_text("a\n1\n")
    html = (
        '<p><img src="../m/figures/a%20b.png" alt="x"> <img class="c" src="../m/figures/plot.svg">'
        '<a href="#top">top</a> <a href="../m/figures/plot.svg">svg</a> <a href="../m/table.csv">csv</a></p>'
    )
    out = report.embed_figures(html, results / "report", results)
    sources = re.findall(r'src="([^"]*)"', out)
    assert base64.b64decode(sources[0].removeprefix("data:image/png;base64,")) == png.read_bytes()
    assert base64.b64decode(sources[1].removeprefix("data:image/svg+xml;base64,")) == svg.read_bytes()
    links = re.findall(r'href="([^"]*)"', out)
    assert links[0] == "#top" and links[1].startswith("data:image/svg+xml;base64,")
    assert links[2] == "../m/table.csv"  # not a figure: left as a link
    # only files under the run's results, and only images
    (tmp_path / "secret.png").write_bytes(png.read_bytes())
    with pytest.raises(ValueError, match="outside"):
        report.embed_figures('<img src="../../secret.png">', results / "report", results)
    with pytest.raises(FileNotFoundError):
        report.embed_figures('<img src="../m/figures/missing.png">', results / "report", results)


def test_a_long_class_list_is_summarized_with_the_predicted_classes():
    names = [f"class_{i}" for i in range(1000)]
    seen = {f"class_{i}": 1000 - i for i in range(0, 50, 2)}  # 25 predicted classes, most often first
    seen["not_a_class"] = 5
    summary = report.class_summary(names, seen)
    assert summary["count"] == 1000 and summary["all"] is None
    assert summary["head"] == names[:5] and summary["tail"] == ["class_998", "class_999"]
    assert [s["name"] for s in summary["seen"]] == [f"class_{i}" for i in range(0, 40, 2)]
    assert summary["seen"][0] == {"name": "class_0", "count": 1000} and summary["more_seen"] == 5
    short = report.class_summary(["cat", "dog"], {"cat": 2})
    assert short["all"] == ["cat", "dog"] and not short["seen"]


def test_predicted_classes_count_the_measured_images_and_the_drawn_rows(tmp_path):
    csv_path = tmp_path / "images.csv"
    csv_path.write_text("image,predicted\na,cat\nb,dog\nc,dog\nd,\n")
    drawn = [{"summary": {"transforms": [{"predicted_name": "cat"}, {"predicted_name": "cow"}]}}]
    seen = report.predicted_classes(csv_path, drawn)  # measured images per class; then sheet-only classes
    assert list(seen.items()) == [("dog", 2), ("cat", 1), ("cow", 0)]
    assert report.predicted_classes(tmp_path / "missing.csv", []) == {}


def test_a_long_table_with_an_unbreakable_name_breaks_across_pages_within_the_margins():
    """report.css on a 150-row table (a deep model's architecture) with one 100-character name: the
    table continues on the next pages with its header repeated, no row is split, and no text runs
    past the right margin (A4, 14 mm)."""
    import io

    pypdf = pytest.importorskip("pypdf")
    from weasyprint import HTML

    css = (TEMPLATES / "report.css").read_text()
    long_name = "block_16_depthwise_" + "x" * 81
    rows = "".join(
        f"<tr><td>{long_name if i == 3 else f'layer_{i:03d}'}</td><td>DepthwiseConv2D</td>"
        f"<td>(None, 7, 7, 1280)</td><td class='num'>{i * 1000:,}</td></tr>"
        for i in range(150)
    )
    html = (
        f"<html><head><style>{css}</style></head><body><table class='grid compact'><thead><tr><th>Layer</th>"
        f"<th>Type</th><th>Output shape</th><th class='num'>Parameters</th></tr></thead><tbody>{rows}</tbody>"
        "</table></body></html>"
    )
    reader = pypdf.PdfReader(io.BytesIO(HTML(string=html).write_pdf()))
    assert len(reader.pages) >= 3
    right_margin = float(reader.pages[0].mediabox.width) - 14 * 72 / 25.4
    texts = []
    for page in reader.pages:
        found = []

        def visit(text, cm, tm, font, size, found=found):
            if text.strip():
                x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
                found.append((text.strip(), x + 0.6 * size * cm[0] * len(text.strip())))  # about its right end

        page.extract_text(visitor_text=visit)
        assert found and found[0][0].startswith("Layer"), found[:3]  # the header on every page
        assert max(right for _, right in found) <= right_margin + 2, max(found, key=lambda f: f[1])
        texts.append(" ".join(t for t, _ in found))
    every = " ".join(texts)
    assert all(every.count(f"layer_{i:03d}") == 1 for i in range(150) if i != 3)  # each row once, whole


def test_the_summary_holds_the_overviews_and_the_method_check_and_full_adds_the_model_chapters():
    models = [fake_model("a", ["img-0"], trained=True), fake_model("b", ["img-1"], trained=False)]
    run = {"comparison": {"reference": "a"}}

    def anchors(nodes):
        return [a for n in nodes for a in [n["anchor"], *anchors(n["children"])]]

    summary = anchors(report.outline(models, run=run, detail="summary"))
    assert summary == [
        "comparison",
        "sensitivity",
        "sens-a",
        "sens-b",
        "run-summary",
        "method-check",
        "check-a",
        "check-b",
    ]
    full = anchors(report.outline(models, run=run, detail="full"))
    assert full[:6] == [*summary[:5], "transforms"] and "method-check" not in full  # the transforms table: full
    for model in ("a", "b"):
        assert {f"model-{model}", f"arch-{model}", f"filters-{model}", f"methods-{model}"} <= set(full)
    assert {"train-a", "sheet-a-img-0", "sheet-b-img-1"} <= set(full) and "train-b" not in full
    assert not any(a.startswith(("model-", "sheet-", "arch-")) for a in summary)
    assert anchors(report.outline(models, run=run)) == full  # full is the default (the HTML)


def test_figures_are_numbered_in_order_and_references_carry_their_numbers():
    from convlens.figure_numbers import figref, number_figures

    html = (
        f"<p>See {figref('fig-b')} and {figref('fig-gone')}.</p>"
        '<figure class="wide"><img src="a.png"><figcaption>first</figcaption></figure>'
        '<figure id="fig-b"><img src="b.png"><figcaption>second</figcaption></figure>'
        '<figure><img src="c.png"></figure>'
    )
    out = number_figures(html)
    assert '<a class="figref" href="#fig-b">Figure 2</a>' in out
    assert "a figure of the full report" in out and "Figure ?" not in out
    first = '<figure class="wide" id="figure-1"><img src="a.png"><figcaption><span class="figno">Figure 1.</span> first'
    assert first in out
    assert '<figure id="fig-b"><img src="b.png"><figcaption><span class="figno">Figure 2.</span> second' in out
    # no caption: one with just the number
    third = '<figure id="figure-3"><img src="c.png"><figcaption><span class="figno">Figure 3.</span> </figcaption>'
    assert third in out
    assert number_figures("<p>none</p>") == "<p>none</p>"

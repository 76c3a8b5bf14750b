"""The HTML report (Jinja2, every user string escaped) and its PDF (WeasyPrint, sandboxed reads)."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from weasyprint.urls import URLFetcher

from convlens import __version__
from convlens.attribution.cams import SHEET_METHOD
from convlens.attribution.registry import display_name
from convlens.figure_numbers import figref, number_figures
from convlens.plots import vector_path
from convlens.sensitivity.metrics import METRICS
from convlens.transform_labels import label_of

log = logging.getLogger("convlens")

PACKAGES = (
    "convlens",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "numpy",
    "pandas",
    "snakemake",
    "jinja2",
    "weasyprint",
    "matplotlib",
    "pillow",
    "jsonschema",
)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "convlens" not in out:
        out["convlens"] = __version__
    return out


def hardware() -> dict[str, str]:
    info = {"platform": platform.platform(), "cpu_cores": str(os.cpu_count())}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return info


def _read_csv(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _read_json(path: Path):
    return json.loads(path.read_text())


# The files the report reads per model (the report rule's named inputs); trained models have TRAINED_FILES too.
MODEL_FILES = (
    "info",
    "architecture",
    "transforms",
    "filters",
    "filter_figures",
    "study",
    "study_images",
    "study_figures",
    "quality",
    "quality_figures",
    "exemplars",
    "exemplar_folders",
)
TRAINED_FILES = ("metrics", "curves", "confusion", "evolution", "evolution_figures")


def collect(config: dict, files: dict[str, dict[str, str]], results: Path, comparison_json: str | None = None) -> dict:
    """Everything the template shows, read from the run's result files: ``files`` maps each model, in
    the report's order, to its paths by name (MODEL_FILES, and TRAINED_FILES for a trained model);
    ``comparison_json`` is the models' comparison. Figures are linked relative to ``results``."""
    results = Path(results).resolve()

    model_sections = []
    devices = None
    for name, paths in files.items():
        section = {
            "name": name,
            "spec": config["models"][name],
            "info": _read_json(Path(paths["info"])),
            "info_file": Path(paths["info"]).as_posix(),  # as the workflow names it: results/<model>/...
            "architecture": _read_csv(Path(paths["architecture"])),
            "transforms": _read_csv(Path(paths["transforms"])),
            "filters": _read_json(Path(paths["filters"])),
            "filters_dir": linked(paths["filter_figures"], results),
            "study": _read_json(Path(paths["study"])),
            "study_dir": linked(Path(paths["study_figures"]).parent, results),
            "quality": _read_json(Path(paths["quality"])),
            "quality_dir": linked(paths["quality_figures"], results),
            "metrics": None,
            "evolution": None,
            "images": [],
        }
        if "channel_maps" in paths:  # the equivariance ladder's figure (rule fit_channel_maps)
            section["channel_maps"] = linked(paths["channel_maps"], results)
        if "cka" in paths:  # the CKA invariance figure (rule cka)
            section["cka"] = linked(paths["cka"], results)
        if "metrics" in paths:
            section["metrics"] = _read_json(Path(paths["metrics"]))
            section["curves"] = linked(paths["curves"], results)
            section["evolution"] = _read_json(Path(paths["evolution"]))
            section["evolution_dir"] = linked(paths["evolution_figures"], results)
            section["confusion"] = linked(paths["confusion"], results)
        section["exemplars"] = _read_json(Path(paths["exemplars"]))
        for chosen in section["exemplars"]["exemplars"]:
            folder = Path(paths["exemplar_folders"]) / chosen["image"]  # rule draw: {image}/figures/{name}.png
            summary = _read_json(folder / "summary.json")
            devices = devices or summary.get("devices")
            section["images"].append(
                {
                    "summary": summary,
                    "sheet": _read_json(folder / "sheet.json"),
                    "figures": linked(folder / "figures", results),
                    "chosen": chosen,
                }
            )
        drawn = {c["image"] for c in section["exemplars"]["exemplars"]}
        for sentence in section["study"]["findings"]:  # link only the images that have a sheet
            for part in sentence:
                if part.get("image") not in drawn:
                    part.pop("image", None)
        section["params"] = sum(int(r["params"]) for r in section["architecture"])
        section["classes"] = class_summary(
            section["info"]["class_names"], predicted_classes(Path(paths["study_images"]), section["images"])
        )
        model_sections.append(section)
    return {
        "models": model_sections,
        "devices": devices,
        "warnings": run_warnings(model_sections),
        "resize": resize_modes(config),
        "comparison": comparison(comparison_json, len(files), results),
        "metric_help": {name: text for name, (_, _, text) in METRICS.items()},
    }


def run_warnings(model_sections: list[dict]) -> list[dict]:
    """Every suspicious-setup warning of the run (``convlens.suspicious``), with its model: those
    found when the model was loaded (info.json) and over the measured images (study.json)."""
    return [
        {"model": m["name"], **w}
        for m in model_sections
        for w in m["info"].get("warnings", []) + m["study"].get("warnings", [])
    ]


def resize_modes(config: dict) -> str:
    """How images reached the model's input size: config ``resize`` and any images entry's own."""
    default = config["resize"]  # the schema fills it
    own = sorted({e["resize"] for e in config["images"] if e.get("resize") and e["resize"] != default})
    return default + (f" (some images entries: {', '.join(own)})" if own else "")


def linked(path, results: Path) -> str:
    """A result file or folder as the report links it: relative to the run's results folder."""
    return Path(path).resolve().relative_to(Path(results).resolve()).as_posix()


def comparison(comparison_json: str | Path | None, n_models: int, results: Path | None = None) -> dict | None:
    """The models' comparison (results/comparison/comparison.json) when the run has two or more;
    ``dir``: its folder, linked from ``results``."""
    if n_models < 2 or comparison_json is None or not Path(comparison_json).exists():
        return None
    return {**_read_json(Path(comparison_json)), "dir": linked(Path(comparison_json).parent, results)}


def cka_comparison(cka_json: str | Path, figure: str | Path, results: Path) -> dict:
    """The models' CKA (results/comparison/cka.json of rule cka_comparison) with its heat map
    ``figure`` (cka_layers.png) linked from ``results``."""
    return {**_read_json(Path(cka_json)), "figure": linked(figure, results)}


CLASSES_IN_FULL = 12  # a longer class list is summarized: its first and last few, and the classes seen
CLASSES_HEAD, CLASSES_TAIL, CLASSES_SEEN = 5, 2, 20


def predicted_classes(images_csv: Path, drawn: list[dict]) -> dict[str, int]:
    """The classes predicted in the run: per class, how many measured images (untransformed) it was
    predicted for, most first; then, with 0, the classes only the image sheets' transformed rows show."""
    counts: dict[str, int] = {}
    for row in _read_csv(images_csv) if images_csv.exists() else []:
        if row.get("predicted"):
            counts[row["predicted"]] = counts.get(row["predicted"], 0) + 1
    counts = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    for t in (t for im in drawn for t in im["summary"]["transforms"]):
        if t.get("predicted_name"):
            counts.setdefault(t["predicted_name"], 0)
    return counts


def class_summary(names: list[str], seen: dict[str, int] | None = None) -> dict:
    """The model's classes as the report lists them, bounded whatever their number: all of them up
    to CLASSES_IN_FULL; else the first and last few and (at most CLASSES_SEEN of) the classes predicted
    in the run, ``seen`` as from predicted_classes."""
    names = list(names)
    seen = {k: v for k, v in (seen or {}).items() if k in set(names)}
    if len(names) <= CLASSES_IN_FULL:
        return {"count": len(names), "all": names, "head": [], "tail": [], "seen": [], "more_seen": 0}
    shown = list(seen)[:CLASSES_SEEN]
    return {
        "count": len(names),
        "all": None,
        "head": names[:CLASSES_HEAD],
        "tail": names[-CLASSES_TAIL:],
        "seen": [{"name": k, "count": seen[k]} for k in shown],
        "more_seen": len(seen) - len(shown),
    }


class RunFolderFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that reads only local files under one folder (the run's results).

    Anything else (network, other folders, ``..`` escapes, links pointing out) stops the rendering.
    """

    def __init__(self, root: Path):
        super().__init__(allowed_protocols={"file"}, fail_on_errors=True)
        self.root = Path(root).resolve()

    def fetch(self, url, headers=None):
        parsed = urlparse(url)
        path = Path(unquote(parsed.path)).resolve()
        if parsed.scheme != "file" or (path != self.root and self.root not in path.parents):
            raise ValueError(f"the report may read only files under {self.root}, not {url}")
        return super().fetch(url, headers)


IMAGE_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
_LINKED = re.compile(r'(<(?:img|source)\b[^>]*?\bsrc=")([^"#][^"]*)(")|(<a\b[^>]*?\bhref=")([^"#][^"]*)(")')


def embed_figures(html_text: str, html_dir: Path, root: Path) -> str:
    """The report with every figure it links (``<img src>``, and ``<a href>`` to a figure) inside it as
    a ``data:`` URI, so the one file shows them wherever it is copied. Only files under ``root`` (the
    run's results) are read; an image outside it, or missing, is an error naming it. Links to other
    files (a table) are left as they are."""
    import base64
    import html as html_mod

    root, cache = Path(root).resolve(), {}

    def data_uri(src: str, image: bool) -> str:
        if urlparse(src).scheme:  # already data:, or a web address: left as it is
            return src
        path = (Path(html_dir) / unquote(html_mod.unescape(src))).resolve()
        kind = IMAGE_TYPES.get(path.suffix.lower())
        if not image and kind is None:
            return src
        if root not in path.parents:
            raise ValueError(f"the report links {src}, outside {root}")
        if kind is None:
            raise ValueError(f"the report shows {src}, not an image ({', '.join(IMAGE_TYPES)})")
        if path not in cache:
            cache[path] = f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
        return cache[path]

    def swap(match: re.Match) -> str:
        image = match.group(1) is not None
        head, src, tail = match.group(1, 2, 3) if image else match.group(4, 5, 6)
        return head + data_uri(src, image) + tail

    return _LINKED.sub(swap, html_text)


PDF_PNG_LEVEL = 1  # zlib level of the images WeasyPrint embeds (its own default, 6, was 38 % of the report's time)


def png_idat(pillow_image, level: int = PDF_PNG_LEVEL) -> bytes:
    """The image's PNG-filtered, zlib-compressed scanlines (its IDAT data): what a PDF image stream
    with ``/FlateDecode`` and a PNG predictor holds."""
    import io

    buffer = io.BytesIO()
    pillow_image.save(buffer, format="PNG", compress_level=level)
    data, pos, parts = buffer.getvalue(), 8, []  # after the 8-byte signature: length, type, data, CRC
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"IDAT":
            parts.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return b"".join(parts)


@contextlib.contextmanager
def fast_pdf_images():
    """While rendering, WeasyPrint re-encodes every embedded PNG through ``RasterImage._get_png_data``
    at zlib level 6; this swaps in ``png_idat`` at level 1 (the same pixels, 2-4x faster, a somewhat
    larger PDF). Without that hook (another WeasyPrint version) it changes nothing."""
    from weasyprint import images

    raster = getattr(images, "RasterImage", None)
    if raster is None or not hasattr(raster, "_get_png_data"):
        yield
        return
    original = raster.__dict__["_get_png_data"]
    raster._get_png_data = staticmethod(png_idat)
    try:
        yield
    finally:
        raster._get_png_data = original


def _missing(value) -> bool:
    return value is None or value != value  # None or NaN


def breakable(value):
    """A name (layer, transform) escaped, with a line-break opportunity (``<wbr>``) after each ``_``,
    so a narrow table header wraps between its parts, not inside a word."""
    from markupsafe import Markup, escape

    return Markup(str(escape(value)).replace("_", "_<wbr>"))


def anchor(value) -> str:
    """An HTML id / link target made of a user string: every non-alphanumeric character becomes ``-``."""
    return "".join(c if c.isalnum() else "-" for c in str(value))


@dataclass(frozen=True)
class Section:
    """One entry of the report's outline: a partial under ``reports/templates/sections/`` that starts
    with the heading ``<h1|h2 id="{{ sec.anchor }}">{{ sec.title }}…``, and the same title and anchor
    in the table of contents. ``title`` and ``anchor`` may hold ``{model}`` and ``{image}``."""

    partial: str
    title: str
    anchor: str
    each: str | None = None  # None: once; "model": once per model; "image": once per image of the model
    when: str | None = None  # only for models whose section has this key set (e.g. "metrics"); once: the run's
    wrapper: str | None = None  # wrapped in <section class="..."> ("chapter", "sheet": a new page)
    toc: bool = True  # listed in the table of contents (every heading is in the PDF outline)
    children: tuple[Section, ...] = ()  # h2 under an h1, included after the parent's partial
    detail: str | None = None  # None: in every rendering; "full" or "summary": only in that one (config report.detail)


# The report, in order: the table of contents and the body both come from this list. The verdict page
# comes before them (report.html.j2). The summary (config report.detail, the PDF's default) holds the
# comparison (with the shared exemplars), each model's sensitivity overview, the run summary and the
# method check; full (and the HTML, always) adds the per-model chapters, the method check among them.
DETAILS = ("summary", "full")
SECTIONS = (
    Section("comparison.html.j2", "Comparison of models", "comparison", wrapper="chapter", when="comparison"),
    Section(
        "sensitivity.html.j2",
        "Sensitivity to transforms",
        "sensitivity",
        wrapper="chapter",
        children=(Section("sensitivity_model.html.j2", "{model}", "sens-{model}", each="model"),),
    ),
    Section(
        "run_summary.html.j2",
        "Run summary",
        "run-summary",
        wrapper="chapter",
        children=(Section("transforms.html.j2", "Transforms", "transforms", toc=False, detail="full"),),
    ),
    Section(
        "model.html.j2",
        "Model {model}",
        "model-{model}",
        each="model",
        wrapper="chapter",
        children=(
            Section("architecture.html.j2", "Architecture", "arch-{model}"),
            Section("training.html.j2", "Training and test accuracy", "train-{model}", when="metrics"),
            Section("filters.html.j2", "Filters", "filters-{model}"),
            Section("evolution.html.j2", "Training evolution", "evolution-{model}", when="evolution"),
            Section("embedding.html.j2", "Embedding of the test set", "embedding-{model}", when="evolution"),
            Section("methods.html.j2", "Heatmap methods: sanity and faithfulness", "methods-{model}"),
            Section("image_sheet.html.j2", "Image {image}", "sheet-{model}-{image}", each="image", wrapper="sheet"),
        ),
        detail="full",
    ),
    Section(
        "method_check.html.j2",
        "Heatmap methods: sanity and faithfulness",
        "method-check",
        wrapper="chapter",
        detail="summary",
        children=(Section("methods.html.j2", "{model}", "check-{model}", each="model"),),
    ),
)


def outline(
    models: list[dict],
    sections: tuple[Section, ...] = SECTIONS,
    model: dict | None = None,
    level: int = 1,
    run: dict | None = None,
    detail: str = "full",
) -> list[dict]:
    """``sections`` expanded for this run's models and images: what the main template loops over, once
    for the table of contents and once for the body. Titles stay plain text (escaped when rendered).
    ``detail`` (config report.detail): the sections of that rendering only (``Section.detail``)."""
    nodes = []
    for sec in sections:
        if sec.detail not in (None, detail):
            continue
        if sec.each == "model":
            scopes = [(m, None) for m in models]
        elif sec.each == "image":
            scopes = [(model, im) for im in model["images"]]
        else:
            scopes = [(model, None)]
        for m, im in scopes:
            if sec.when and not (m[sec.when] if m is not None else (run or {}).get(sec.when)):
                continue
            names = {"model": m["name"] if m else "", "image": im["summary"]["image"] if im else ""}
            nodes.append(
                {
                    "partial": f"sections/{sec.partial}",
                    "title": sec.title.format(**names),
                    "anchor": sec.anchor.format(**{k: anchor(v) for k, v in names.items()}),
                    "level": level,
                    "wrapper": sec.wrapper,
                    "toc": sec.toc,
                    "toc_children": any(child.toc for child in sec.children),
                    "model": m,
                    "image": im,
                    "children": outline(models, sec.children, m, level + 1, run, detail),
                }
            )
    return nodes


def render_html(context: dict, templates_dir: str | Path, detail: str = "full") -> str:
    """The report's HTML at ``detail`` (config report.detail: summary or full), figures numbered."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "–" if _missing(v) else f"{100 * float(v):.1f} %"
    env.filters["num"] = lambda v, d=3: "–" if _missing(v) else f"{float(v):.{d}f}"
    env.filters["anchor"] = anchor
    env.filters["method_name"] = display_name  # a method's display name (Method.look, attribution.registry)
    env.globals["sheet_method"] = SHEET_METHOD  # the method the comparison sheets overlay
    env.filters["breakable"] = breakable
    env.filters["vector"] = lambda png: vector_path(png).as_posix()  # a figure's SVG beside its PNG
    env.filters["transform"] = label_of  # a transform id as a reader reads it: "shift (0, −4) px"
    env.filters["figref"] = figref  # "Figure N", numbered by number_figures
    template = env.get_template("report.html.j2")
    return number_figures(
        template.render(outline=outline(context["models"], run=context, detail=detail), detail=detail, **context)
    )

"""The HTML report (Jinja2, every user string escaped) and its PDF (WeasyPrint, sandboxed reads)."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import logging
import os
import platform
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from weasyprint.urls import URLFetcher

log = logging.getLogger("convlens")

PACKAGES = ("convlens", "tensorflow", "tensorflow-cpu", "keras", "numpy", "pandas", "snakemake", "jinja2",
            "weasyprint", "matplotlib", "pillow", "jsonschema")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "convlens" not in out:
        from convlens import __version__

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


def collect(config: dict, models: list[str], images: list[str], results: Path) -> dict:
    """Everything the template shows, read from the run's result files."""
    model_sections = []
    devices = None
    for name in models:
        base = results / name
        section = {
            "name": name,
            "spec": config["models"][name],
            "info": _read_json(base / "model" / "info.json"),
            "architecture": _read_csv(base / "model" / "architecture.csv"),
            "transforms": _read_csv(base / "transforms.csv"),
            "filters": _read_json(base / "filters" / "filters.json"),
            "filters_dir": f"{name}/filters/figures",
            "study": _read_json(base / "sensitivity" / "study.json"),
            "study_dir": f"{name}/sensitivity",
            "quality": _read_json(base / "methods" / "quality.json"),
            "quality_dir": f"{name}/methods/figures",
            "metrics": None,
            "evolution": None,
            "images": [],
        }
        if (base / "model" / "metrics.json").exists():
            section["metrics"] = _read_json(base / "model" / "metrics.json")
            section["curves"] = f"{name}/model/training_curves.png"
            section["evolution"] = _read_json(base / "evolution" / "evolution.json")
            section["evolution_dir"] = f"{name}/evolution/figures"
            section["confusion"] = f"{name}/model/confusion_matrix.png"
        for image in images:
            folder = base / "images" / image
            summary = _read_json(folder / "summary.json")
            sheet = _read_json(folder / "sheet.json")
            devices = devices or summary.get("devices")
            section["images"].append({"summary": summary, "sheet": sheet,
                                      "figures": f"{name}/images/{image}/figures"})
        section["params"] = sum(int(r["params"]) for r in section["architecture"])
        model_sections.append(section)
    from convlens.sensitivity import METRICS

    return {"models": model_sections, "devices": devices,
            "metric_help": {name: text for name, (_, _, text) in METRICS.items()}}


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


PDF_PNG_LEVEL = 1  # zlib level of the images WeasyPrint embeds (its own default, 6, was 38 % of the report's time)


def png_idat(pillow_image, level: int = PDF_PNG_LEVEL) -> bytes:
    """The image's PNG-filtered, zlib-compressed scanlines (its IDAT data): what a PDF image stream
    with ``/FlateDecode`` and a PNG predictor holds."""
    import io

    buffer = io.BytesIO()
    pillow_image.save(buffer, format="PNG", compress_level=level)
    data, pos, parts = buffer.getvalue(), 8, []  # after the 8-byte signature: length, type, data, CRC
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == b"IDAT":
            parts.append(data[pos + 8:pos + 8 + length])
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


def render_html(context: dict, templates_dir: str | Path) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: "–" if _missing(v) else f"{100 * float(v):.1f} %"
    env.filters["num"] = lambda v, d=3: "–" if _missing(v) else f"{float(v):.{d}f}"
    env.filters["anchor"] = lambda v: "".join(c if c.isalnum() else "-" for c in str(v))
    return env.get_template("report.html.j2").render(**context)


def build_report(config: dict, config_digest: str, models: list[str], images: list[str], templates_dir: str,
                 results_dir: str, out_html: str, out_pdf: str, out_run_json: str) -> None:
    """Write report.html, report.pdf and run.json (the run summary) under results/report/."""
    from weasyprint import CSS, HTML

    results = Path(results_dir).resolve()
    report_dir = Path(out_html).resolve().parent
    report_dir.mkdir(parents=True, exist_ok=True)
    data = collect(config, models, images, results)
    run = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "config_digest": config_digest,
        "seed": config["seed"],
        "versions": package_versions(),
        "hardware": hardware(),
        "devices": data["devices"] or [],
    }
    css = (Path(templates_dir) / "report.css").read_text()
    html = render_html({"config": config, "run": run, "css": css, "base": os.path.relpath(results, report_dir),
                        **data}, templates_dir)
    tmp_html = Path(out_html + ".part")
    tmp_html.write_text(html)
    os.replace(tmp_html, out_html)
    document = HTML(string=html, base_url=str(report_dir) + "/", url_fetcher=RunFolderFetcher(results))
    tmp_pdf = out_pdf + ".part"
    with fast_pdf_images():
        document.write_pdf(tmp_pdf, stylesheets=[CSS(string="@media print { .html-only { display: none } }")])
    os.replace(tmp_pdf, out_pdf)
    Path(out_run_json).write_text(json.dumps(run, indent=2))
    log.info("report: %s and %s", out_html, out_pdf)

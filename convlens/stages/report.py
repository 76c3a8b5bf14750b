"""Stage of rule report: HTML (Jinja2) and PDF (WeasyPrint) from the run's results."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from convlens.provenance import image_set_digest, model_digests
from convlens.report import (
    MODEL_FILES,
    TRAINED_FILES,
    RunFolderFetcher,
    cka_comparison,
    collect,
    embed_figures,
    fast_pdf_images,
    hardware,
    linked,
    package_versions,
    render_html,
)
from convlens.stages.files import replacing, write_json, write_text
from convlens.stages.run import log

_LINK = re.compile(r'<a\b[^>]*?\bhref="([^"]*)"[^>]*>.*?</a>', re.S)
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")


def without_file_links(html: str) -> str:
    """The HTML the PDF is laid out from: every link to a file (an SVG beside its figure) left out,
    since WeasyPrint would write it as a ``file:///`` URI with this machine's absolute path (dead,
    and telling, in a mailed PDF). Links within the report (``#...``) and to the web stay."""

    def keep(match: re.Match) -> str:
        href = match.group(1)
        local = href.startswith("file:") or not (href.startswith("#") or _SCHEME.match(href))
        return "" if local else match.group(0)

    return _LINK.sub(keep, html)


def model_files(inputs: Mapping[str, Sequence[str]], models: list[str], trained: list[str]) -> dict[str, dict]:
    """Per model, its report files by name, from the rule's named inputs: each of MODEL_FILES a list in
    the order of ``models``, each of TRAINED_FILES a list in the order of the trained ones among them;
    ``channel_maps`` (the equivariance ladder's figure) and ``cka`` (the CKA invariance figure) each a
    list in the order of ``models``, or empty (none of the models has it)."""
    in_order = [m for m in models if m in set(trained)]
    files = {m: {key: inputs[key][models.index(m)] for key in MODEL_FILES} for m in models}
    for key in TRAINED_FILES:
        for m, path in zip(in_order, inputs.get(key, []), strict=True):
            files[m][key] = path
    for key in ("channel_maps", "cka"):  # the ladder's figure (an empty list: the ladder is off); CKA's
        for m, path in zip(models, inputs.get(key) or [], strict=bool(inputs.get(key))):
            files[m][key] = path
    return files


def shared_exemplars(manifest_json: str, figures_dir: str, results: Path) -> dict:
    """The study's exemplars drawn side by side (rule side_by_side), each figure linked from ``results``."""
    shared = json.loads(Path(manifest_json).read_text())
    for chosen in shared["exemplars"]:
        chosen["figure"] = linked(Path(figures_dir) / chosen["file"], results)
    return shared


def verdict_page(verdict_json: str, figure: str, results: Path) -> dict:
    """The verdict (rule verdict's verdict.json) with its key figure linked from ``results``."""
    page = json.loads(Path(verdict_json).read_text())
    return {**page, "figure": linked(figure, results) if page.get("figure") else None}


def build_report(
    config: dict,
    config_digest: str,
    files: dict[str, dict],
    comparison_json: str,
    templates_dir: str,
    results_dir: str,
    out_html: str,
    out_pdf: str,
    out_run_json: str,
    images: list[dict] | None = None,
    cka: tuple[str, str] | None = None,
    side_by_side: tuple[str, str] | None = None,
    verdict: tuple[str, str] | None = None,
) -> None:
    """Write report.html, report.pdf and run.json (the run summary) under results/report/: ``files`` as
    model_files gives them, the figures they link under ``results_dir``. run.json records the SHA-256
    and size of every model file and one digest of the image set (``images``: the rule's image
    descriptions; ``convlens.provenance``). ``cka``: the models' CKA comparison (rule cka_comparison:
    cka.json, cka_layers.png), shown in the comparison chapter. ``side_by_side``: the shared exemplars
    drawn with every model (rule side_by_side: its manifest and figures folder), shown there too.
    ``verdict``: the first page (rule verdict: verdict.json, verdict.png). The HTML holds every section;
    the PDF the sections of config report.detail (summary: the verdict, comparison, sensitivity
    overviews, run summary and method check; full: the same as the HTML), laid out once."""
    from weasyprint import CSS, HTML

    results = Path(results_dir).resolve()
    report_dir = Path(out_html).resolve().parent
    report_dir.mkdir(parents=True, exist_ok=True)
    data = collect(config, files, results, comparison_json)
    if data["comparison"] is not None and cka:
        data["comparison"]["cka"] = cka_comparison(*cka, results)
    if data["comparison"] is not None and side_by_side:
        data["comparison"]["side_by_side"] = shared_exemplars(*side_by_side, results)
    data["verdict"] = verdict_page(*verdict, results) if verdict else None
    run = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "config_digest": config_digest,
        "seed": config["seed"],
        "versions": package_versions(),
        "hardware": hardware(),
        "devices": data["devices"] or [],
        "resize": data["resize"],
        "warnings": data["warnings"],
        "models": model_digests(config, list(files)),
        "images": image_set_digest(images or []),
    }
    log.info("report: image set of %d images, SHA-256 %s", run["images"]["count"], run["images"]["sha256"])
    css = (Path(templates_dir) / "report.css").read_text()
    context = {"config": config, "run": run, "css": css, "base": os.path.relpath(results, report_dir), **data}
    html = render_html(context, templates_dir, "full")
    detail = config["report"].get("detail", "summary")
    t0 = time.time()
    # the PDF is laid out from the linked HTML (its fetcher reads only files under results/)
    write_text(out_html, embed_figures(html, report_dir, results) if config["report"]["self_contained"] else html)
    log.info(
        "report: %s written (%s, %.0f KB); laying out the PDF",
        out_html,
        "self-contained" if config["report"]["self_contained"] else "figures linked",
        Path(out_html).stat().st_size / 1024,
    )
    pdf_html = without_file_links(html if detail == "full" else render_html(context, templates_dir, detail))
    document = HTML(string=pdf_html, base_url=str(report_dir) + "/", url_fetcher=RunFolderFetcher(results))
    with fast_pdf_images(), replacing(out_pdf) as tmp:
        laid_out = document.render(stylesheets=[CSS(string="@media print { .html-only { display: none } }")])
        log.info(
            "report: %d PDF pages (report.detail: %s) laid out in %.1f s; writing them",
            len(laid_out.pages),
            detail,
            time.time() - t0,
        )
        laid_out.write_pdf(tmp)
    write_json(out_run_json, run)
    log.info("report: %s and %s in %.1f s", out_html, out_pdf, time.time() - t0)

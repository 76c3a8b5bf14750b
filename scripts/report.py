"""Snakemake entry for rule report: HTML (Jinja2) and PDF (WeasyPrint)."""

from convlens.stages.report import build_report, model_files
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    build_report,
    sm.params.config,
    sm.params.digest,
    model_files(sm.input, sm.params.models, sm.params.trained),
    sm.input.comparison,
    sm.params.templates,
    sm.params.results,
    sm.output.html,
    sm.output.pdf,
    sm.output.run,
    images=sm.params.images,
    cka=(sm.input.cka_comparison, sm.input.cka_layers),
    side_by_side=(sm.input.side_by_side, sm.input.side_by_side_figures),
    verdict=(sm.input.verdict, sm.input.verdict_figure),
)

"""Snakemake entry for rule model_figures: training curves and confusion matrix."""

from convlens.stages.model_figures import model_figures
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    model_figures,
    sm.input.history,
    sm.input.metrics,
    {"curves": sm.output.curves, "confusion": sm.output.confusion},
)

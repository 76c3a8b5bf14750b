"""Snakemake entry for rule side_by_side: each exemplar drawn with every model side by side."""

from convlens.stages.exemplars import draw_side_by_side
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    draw_side_by_side,
    sm.input.exemplars,
    sm.params.models,
    sm.input.folders,
    sm.output.figures,
    sm.output.manifest,
)

"""Snakemake entry for rule draw: the study's exemplars (rule choose_exemplars) drawn by one model."""

from convlens.stages.draw import draw_exemplars
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    draw_exemplars,
    sm.input.model,
    sm.input.info,
    sm.input.exemplars,
    sm.wildcards.model,
    sm.params.images,
    sm.params.cfg,
    sm.threads,
    sm.params.sheet_layers,
    sm.output.folder,
    sm.output.manifest,
)

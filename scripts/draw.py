"""Snakemake entry for rule draw: one model's exemplars, chosen from the measured table and drawn."""

from convlens.stages.draw import draw_exemplars
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    draw_exemplars,
    sm.input.model,
    sm.input.info,
    sm.input.metrics,
    sm.params.images,
    sm.params.cfg,
    sm.params.choice,
    sm.params.seed,
    sm.threads,
    sm.params.sheet_layers,
    sm.output.folder,
    sm.output.manifest,
)

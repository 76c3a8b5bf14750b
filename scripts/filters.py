"""Snakemake entry for rule filters: first-layer kernels and gradient-ascent patterns."""

from convlens.stages.filters import filters
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    filters,
    sm.input.model,
    sm.input.info,
    sm.params.cfg,
    sm.params.seed,
    sm.threads,
    sm.output.figures,
    sm.output.manifest,
)

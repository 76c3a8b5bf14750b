"""Snakemake entry for rule fit_channel_maps: one model's equivariance-ladder channel maps, fit on the fit set."""

from convlens.stages.channel_maps import fit_channel_maps
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    fit_channel_maps,
    sm.input.model,
    sm.input.info,
    sm.params.images,
    sm.params.cfg,
    sm.threads,
    {"maps": sm.output.maps, "table": sm.output.table, "figure": sm.output.figure},
)

"""Snakemake entry for rule transform_table."""

from convlens.stages.run import run_stage
from convlens.stages.transform_table import transform_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(sm.log[0], transform_table, sm.params.transforms, sm.input.info, sm.output[0])

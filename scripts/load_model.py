"""Snakemake entry for rule load_model."""

from convlens.stages.load_model import load_model
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(sm.log[0], load_model, sm.wildcards.model, sm.params.spec, sm.threads, dict(sm.output.items()))

"""Snakemake entry for rule load_model."""
from convlens.pipeline import load_model, run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(sm.log[0], load_model, sm.wildcards.model, sm.params.spec, sm.threads, dict(sm.output.items()))

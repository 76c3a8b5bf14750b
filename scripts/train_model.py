"""Snakemake entry for rule train_model."""

from convlens.stages.run import run_stage
from convlens.stages.train_model import train_model

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    train_model,
    sm.wildcards.model,
    sm.params.spec,
    sm.input.dataset,
    sm.params.seed,
    sm.threads,
    sm.params.evolution,
    dict(sm.output.items()),
)

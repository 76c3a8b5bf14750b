"""Snakemake entry for rule training_views: evolution strips from the checkpoints and the embedding."""

from convlens.stages.run import run_stage
from convlens.stages.training_views import training_views

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    training_views,
    sm.input.model,
    sm.input.info,
    sm.input.checkpoints,
    sm.input.dataset,
    sm.params.evolution,
    sm.params.top_k,
    sm.params.seed,
    sm.threads,
    {"manifest": sm.output.manifest, "figures": sm.output.figures},
)

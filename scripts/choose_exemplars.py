"""Snakemake entry for rule choose_exemplars: the study's exemplars, chosen once across the models."""

from convlens.stages.exemplars import choose_exemplars, model_shards
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    choose_exemplars,
    model_shards(sm.input.metrics, sm.input.images, sm.params.models, sm.params.shards),
    sm.params.choice,
    sm.params.seed,
    sm.output[0],
)

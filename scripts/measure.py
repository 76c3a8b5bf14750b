"""Snakemake entry for rule measure: one model, one shard of images, measured."""

from convlens.stages.measure import measure_shard
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    measure_shard,
    sm.input.model,
    sm.input.info,
    sm.params.images,
    sm.params.cfg,
    sm.threads,
    {"metrics": sm.output.metrics, "images": sm.output.images, "pooled": sm.output.pooled, "cka": sm.output.cka},
    channel_maps=getattr(sm.input, "channel_maps", None) or None,  # none when no rung of the ladder is on
)

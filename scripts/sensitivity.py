"""Snakemake entry for rule sensitivity: one model's study from its shards' tables."""

from convlens.stages.run import run_stage
from convlens.stages.sensitivity import sensitivity_study

sm = snakemake  # noqa: F821 (injected by Snakemake)
shards = [
    {"metrics": m, "images": i, "pooled": p}
    for m, i, p in zip(sm.input.metrics, sm.input.images, sm.input.pooled, strict=False)
]
run_stage(
    sm.log[0],
    sensitivity_study,
    shards,
    sm.params.transforms,
    sm.params.seed,
    {"manifest": sm.output.manifest, "figures": sm.output.figures, "images": sm.output.images},
    info_json=sm.input.info,
    plot_layers=sm.params.plot_layers,
    plot_max_layers=sm.params.plot_max_layers,
)

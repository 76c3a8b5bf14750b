"""Snakemake entry for rule method_quality: sanity and faithfulness of each heatmap method."""

from convlens.stages.method_quality import method_quality
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    method_quality,
    sm.input.model,
    sm.input.info,
    sm.params.images,
    sm.params.cfg,
    sm.params.seed,
    sm.threads,
    {"json": sm.output.json, "csv": sm.output.csv, "figures": sm.output.figures},
    study_images=sm.params.study_images,
)

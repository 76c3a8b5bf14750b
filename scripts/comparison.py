"""Snakemake entry for rule comparison: every model of the run with intervals, each against the reference."""

from convlens.stages.comparison import compare_models
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    compare_models,
    dict(zip(sm.params.models, sm.input.metrics, strict=False)),
    dict(zip(sm.params.models, sm.input.studies, strict=False)),
    sm.params.transforms,
    sm.params.options,
    sm.params.seed,
    {
        "summary": sm.output.summary,
        "differences": sm.output.differences,
        "group_summary": sm.output.group_summary,
        "group_differences": sm.output.group_differences,
        "manifest": sm.output.manifest,
        "figures": sm.output.figures,
    },
    dict(zip(sm.params.models, sm.input.layers, strict=False)),
)

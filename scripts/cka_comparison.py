"""Snakemake entry for rule cka_comparison: layer × layer CKA of every model against the reference."""

from convlens.stages.cka import compare_cka
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    compare_cka,
    dict(zip(sm.params.models, sm.input.grams, strict=False)),
    dict(zip(sm.params.models, sm.input.layers, strict=False)),
    sm.params.options["reference"],
    sm.params.options,
    {"table": sm.output.table, "pairs": sm.output.pairs, "figure": sm.output.figure, "manifest": sm.output.manifest},
)

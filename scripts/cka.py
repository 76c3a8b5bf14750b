"""Snakemake entry for rule cka: one model's CKA invariance from its measure shards."""

from convlens.stages.cka import cka_study
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    cka_study,
    list(sm.input.shards),
    sm.params.n_boot,
    sm.params.level,
    sm.params.seed,
    {"table": sm.output.table, "grams": sm.output.grams, "layers": sm.output.layers, "figure": sm.output.figure},
)

"""Snakemake entry for rule dataset: build or read a dataset into one .npz."""

from convlens.stages.make_dataset import make_dataset
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(sm.log[0], make_dataset, sm.params.spec, sm.params.seed, sm.output[0])

"""Snakemake entry for rule sensitivity: one model's study from its images' metrics."""
from convlens.stages.sensitivity import sensitivity_study
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
images = [{"id": i, "metrics": m, "raw": r} for i, m, r in zip(sm.params.images, sm.input.metrics, sm.input.raw)]
run_stage(sm.log[0], sensitivity_study, images, sm.params.transforms,
          {"manifest": sm.output.manifest, "figures": sm.output.figures})

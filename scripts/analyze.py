"""Snakemake entry for the analyze_<shard> rules: one model, one shard of images."""
from convlens.stages.analyze import analyze_shard
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
images = [dict(entry, raw=raw, summary=summary, metrics=metrics)
          for entry, raw, summary, metrics in zip(sm.params.images, sm.output.raw, sm.output.summary, sm.output.metrics)]
run_stage(sm.log[0], analyze_shard, sm.input.model, sm.input.info, images, sm.params.cfg, sm.threads)

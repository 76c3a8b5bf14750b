"""Snakemake entry for rule render_image: one image's figures with numpy/Pillow."""
from convlens.stages.render_image import render_image
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(sm.log[0], render_image, sm.input.raw, sm.input.summary, sm.output.figures, sm.output.sheet,
          sm.params.sheet_layers)

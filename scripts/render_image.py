"""Snakemake entry for rule render_image: one image's figures with numpy/Pillow."""
from convlens.pipeline import render_image, run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(sm.log[0], render_image, sm.input.raw, sm.input.summary, sm.output.figures, sm.output.sheet,
          sm.params.sheet_layers)

"""Stages: one module per workflow rule, with file I/O at the edges.

The ``scripts/`` entry points only unpack ``snakemake.input/output/params`` and call a stage
(through ``run.run_stage``), so every stage can also be run and tested without Snakemake. Every
file a stage writes goes through ``files`` (a temporary file, then a rename), so an interrupted
job never leaves a file that looks finished.
"""

"""Snakemake entry for rule verdict: the report's first page from the comparison's tables."""

from convlens.stages.run import run_stage
from convlens.stages.verdict import build_verdict

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(
    sm.log[0],
    build_verdict,
    {key: sm.input[key] for key in ("manifest", "summary", "group_summary", "group_differences")},
    dict(zip(sm.params.models, sm.input.baselines, strict=True)),
    dict(zip(sm.params.models, sm.input.cka, strict=True)),
    sm.params.transforms,
    sm.output.json,
    sm.output.figure,
)

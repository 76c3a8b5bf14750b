# convlens: CNN models and images in, a reproducible visual report out.
# Run: snakemake --cores all [--configfile my.yaml]   (see README.md and config/README.md)
from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/transforms.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/cka.smk"
include: "workflow/rules/sensitivity.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "results/report/report.html",
        "results/report/report.pdf",
        every_model(rules.cka.output.table),
        rules.cka_comparison.output.table,

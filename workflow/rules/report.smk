# Report: one HTML and one PDF with run summary, models, filters and the exemplars' comparison sheets.


rule report:
    input:
        model_report_inputs,
        comparison="results/comparison/comparison.json",
        templates=[
            TEMPLATES / "report.html.j2",
            TEMPLATES / "report.css",
            *sorted((TEMPLATES / "sections").glob("*.html.j2")),
        ],
    output:
        html=report("results/report/report.html", category="Report"),
        pdf=report("results/report/report.pdf", category="Report"),
        run="results/report/run.json",
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    conda:
        "../../environment.yml"
    params:
        config=config,
        digest=CONFIG_DIGEST,
        models=MODELS,
        templates=lambda wildcards, input: str(Path(input.templates[0]).parent),
        results=lambda wildcards, output: str(Path(output.html).parent.parent),
    script:
        "../../scripts/report.py"

# Report: one HTML and one PDF with run summary, models, filters and per-image comparison sheets.


rule report:
    input:
        model_report_inputs,
        templates=["reports/templates/report.html.j2", "reports/templates/report.css"],
    output:
        html=report("results/report/report.html", category="Report"),
        pdf=report("results/report/report.pdf", category="Report"),
        run="results/report/run.json",
    params:
        config=config,
        digest=CONFIG_DIGEST,
        models=MODELS,
        images=IMAGE_IDS,
        templates="reports/templates",
        results="results",
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    script:
        "../../scripts/report.py"

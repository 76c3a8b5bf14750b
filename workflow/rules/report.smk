# Report: one HTML and one PDF with run summary, models, filters and the exemplars' comparison sheets.
# Its inputs are the producing rules' outputs (rules.<rule>.output.<name>), one list per kind in the
# order of params.models (trained-only kinds: in the order of params.trained): each path is written
# once, in the rule that makes it, and the report stage reads what it is handed.


# Verdict: the report's first page, a key figure and at most five sentences from the comparison's
# per-group tables (convlens.sensitivity.verdict).
rule verdict:
    input:
        manifest=rules.comparison.output.manifest,
        summary=rules.comparison.output.summary,
        group_summary=rules.comparison.output.group_summary,
        group_differences=rules.comparison.output.group_differences,
        baselines=every_model(rules.sensitivity.output.baseline),
        cka=every_model(rules.cka.output.table),
    output:
        json="results/verdict/verdict.json",
        figure=report(
            "results/verdict/verdict.png",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
    log:
        "results/logs/verdict.log",
    benchmark:
        "results/benchmarks/verdict.tsv"
    conda:
        "../../environment.yml"
    params:
        models=MODELS,
        transforms=config["transforms"],
    script:
        "../../scripts/verdict.py"


rule report:
    input:
        # info.json and architecture.csv: train_model and load_model write the same paths
        info=every_model(rules.load_model.output.info),
        architecture=every_model(rules.load_model.output.architecture),
        transforms=every_model(rules.transform_table.output[0]),
        filters=every_model(rules.model_extras.output.filters),
        filter_figures=every_model(rules.model_extras.output.filter_figures),
        study=every_model(rules.sensitivity.output.manifest),
        study_images=every_model(rules.sensitivity.output.images),
        study_figures=every_model(rules.sensitivity.output.figures),
        channel_maps=every_model(rules.fit_channel_maps.output.figure) if LADDER else [],
        cka=every_model(rules.cka.output.figure),
        quality=every_model(rules.model_extras.output.quality),
        quality_figures=every_model(rules.model_extras.output.quality_figures),
        exemplars=every_model(rules.draw.output.manifest),
        exemplar_folders=every_model(rules.draw.output.folder),
        metrics=every_model(rules.train_model.output.metrics, TRAINED),
        history=every_model(rules.train_model.output.history, TRAINED),
        curves=every_model(rules.model_figures.output.curves, TRAINED),
        confusion=every_model(rules.model_figures.output.confusion, TRAINED),
        evolution=every_model(rules.model_extras.output.evolution, TRAINED),
        evolution_figures=every_model(
            rules.model_extras.output.evolution_figures, TRAINED
        ),
        comparison=rules.comparison.output.manifest,
        comparison_figures=rules.comparison.output.figures,
        cka_comparison=rules.cka_comparison.output.manifest,
        cka_layers=rules.cka_comparison.output.figure,
        side_by_side=rules.side_by_side.output.manifest,
        side_by_side_figures=rules.side_by_side.output.figures,
        verdict=rules.verdict.output.json,
        verdict_figure=rules.verdict.output.figure,
        templates=[
            TEMPLATES / "report.html.j2",
            TEMPLATES / "report.css",
            *sorted((TEMPLATES / "sections").glob("*.html.j2")),
        ],
    output:
        html=report(
            "results/report/report.html",
            caption="../report/report.rst",
            category="Report",
        ),
        pdf=report(
            "results/report/report.pdf",
            caption="../report/report.rst",
            category="Report",
        ),
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
        trained=TRAINED,
        images=image_params(IMAGES),
        templates=lambda wildcards, input: str(Path(input.templates[0]).parent),
        results=lambda wildcards, output: str(Path(output.html).parent.parent),
    script:
        "../../scripts/report.py"

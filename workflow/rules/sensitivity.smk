# Sensitivity study: per model, the images' metrics gathered into one tidy table, its summaries,
# plots and the sentences that read them (pandas and matplotlib; no TensorFlow).


rule sensitivity:
    input:
        metrics=lambda wildcards: image_files(wildcards.model, "metrics.csv"),
        raw=lambda wildcards: image_files(wildcards.model, "raw.npz"),
    output:
        manifest="results/{model}/sensitivity/study.json",
        metrics=report(
            "results/{model}/sensitivity/metrics.csv",
            category="Sensitivity",
            subcategory="{model}",
        ),
        summary=report(
            "results/{model}/sensitivity/summary.csv",
            category="Sensitivity",
            subcategory="{model}",
        ),
        predictions="results/{model}/sensitivity/predictions.csv",
        heatmap="results/{model}/sensitivity/heatmap_agreement.csv",
        baseline="results/{model}/sensitivity/baseline.csv",
        figures=report(
            directory("results/{model}/sensitivity/figures"),
            patterns=["{name}.png"],
            category="Sensitivity",
            subcategory="{model}",
        ),
    log:
        "results/logs/{model}/sensitivity.log",
    benchmark:
        "results/benchmarks/{model}/sensitivity.tsv"
    conda:
        "../../environment.yml"
    params:
        images=IMAGE_IDS,
        transforms=config["transforms"],
    script:
        "../../scripts/sensitivity.py"

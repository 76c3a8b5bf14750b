# Sensitivity study: per model, the shards' tables gathered into one tidy table of every image, its
# summaries, plots and the sentences that read them (pandas and matplotlib; no TensorFlow).


rule sensitivity:
    input:
        metrics=lambda wildcards: shard_files(wildcards.model, "metrics"),
        images=lambda wildcards: shard_files(wildcards.model, "images"),
        pooled=lambda wildcards: shard_files(wildcards.model, "pooled"),
        info="results/{model}/model/info.json",
    output:
        manifest="results/{model}/sensitivity/study.json",
        metrics=report(
            "results/{model}/sensitivity/metrics.csv",
            caption="../report/sensitivity.rst",
            category="Sensitivity",
            subcategory="{model}",
        ),
        summary=report(
            "results/{model}/sensitivity/summary.csv",
            caption="../report/sensitivity.rst",
            category="Sensitivity",
            subcategory="{model}",
        ),
        images="results/{model}/sensitivity/images.csv",
        predictions="results/{model}/sensitivity/predictions.csv",
        heatmap="results/{model}/sensitivity/heatmap_agreement.csv",
        baseline="results/{model}/sensitivity/baseline.csv",
        figures=report(
            directory("results/{model}/sensitivity/figures"),
            caption="../report/sensitivity.rst",
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
        transforms=config["transforms"],
        seed=config["seed"],
        plot_layers=lambda wildcards: model_override(
            wildcards.model, "plot_layers", "report", "plot_layers"
        ),
        plot_max_layers=config["report"]["plot_max_layers"],
    script:
        "../../scripts/sensitivity.py"


# Comparison: every model of the run with bootstrap intervals over images, and each model's paired
# differences from the reference (comparison.reference); one model: intervals only.
rule comparison:
    input:
        metrics=expand("results/{model}/sensitivity/metrics.csv", model=MODELS),
        studies=expand("results/{model}/sensitivity/study.json", model=MODELS),
        layers=every_model(rules.cka.output.layers),  # each model's layer structure, for pairing layers
    output:
        manifest="results/comparison/comparison.json",
        summary=report(
            "results/comparison/summary.csv",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        differences=report(
            "results/comparison/differences.csv",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        group_summary="results/comparison/summary_groups.csv",
        group_differences="results/comparison/differences_groups.csv",
        figures=report(
            directory("results/comparison/figures"),
            caption="../report/comparison.rst",
            patterns=["{name}.png"],
            category="Comparison",
        ),
    log:
        "results/logs/comparison.log",
    benchmark:
        "results/benchmarks/comparison.tsv"
    conda:
        "../../environment.yml"
    params:
        models=MODELS,
        transforms=config["transforms"],
        options=config["comparison"],
        seed=config["seed"],
    script:
        "../../scripts/comparison.py"

# CKA (convlens.stages.cka): per model, linear CKA between each layer's maps of the images and of
# their transforms, from the measure shards' per-minibatch HSIC values; between models, layer × layer
# CKA on the reference images, with the layers paired across models by structure.


rule cka:
    input:
        shards=lambda wildcards: shard_files(wildcards.model, "cka"),
    output:
        table=report(
            "results/{model}/sensitivity/cka.csv",
            caption="../report/cka.rst",
            category="Sensitivity",
            subcategory="{model}",
        ),
        grams="results/{model}/sensitivity/cka_grams.npz",
        layers="results/{model}/sensitivity/layers.csv",
        figure=report(
            "results/{model}/sensitivity/cka.png",
            caption="../report/cka.rst",
            category="Sensitivity",
            subcategory="{model}",
        ),
    log:
        "results/logs/{model}/cka.log",
    benchmark:
        "results/benchmarks/{model}/cka.tsv"
    conda:
        "../../environment.yml"
    params:
        n_boot=config["comparison"]["n_boot"],
        level=config["comparison"]["level"],
        seed=config["seed"],
    script:
        "../../scripts/cka.py"


rule cka_comparison:
    input:
        grams=every_model(rules.cka.output.grams),
        layers=every_model(rules.cka.output.layers),
    output:
        manifest="results/comparison/cka.json",
        table=report(
            "results/comparison/cka_layers.csv",
            caption="../report/cka.rst",
            category="Comparison",
        ),
        pairs="results/comparison/layer_pairs.csv",
        figure=report(
            "results/comparison/cka_layers.png",
            caption="../report/cka.rst",
            category="Comparison",
        ),
    log:
        "results/logs/cka_comparison.log",
    benchmark:
        "results/benchmarks/cka_comparison.tsv"
    conda:
        "../../environment.yml"
    params:
        models=MODELS,
        options=config["comparison"],
    script:
        "../../scripts/cka_comparison.py"

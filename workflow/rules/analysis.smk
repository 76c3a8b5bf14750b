# Analysis: per model and shard of images, one TensorFlow process runs every transform of every
# image through the model in batches (activations, predictions, Grad-CAM) and measures the
# sensitivity metrics from the maps in memory; results are written per image. Figures are then
# drawn per image with numpy/Pillow, and filters per model.

# One rule per shard, so each shard's outputs are the literal per-image paths of its members.
for _shard, _members in SHARDS.items():

    rule:
        name:
            f"analyze_{_shard}"
        input:
            model="results/{model}/model/model.keras",
            info="results/{model}/model/info.json",
            images=image_inputs(_members),
        output:
            raw=[f"results/{{model}}/images/{m.id}/raw.npz" for m in _members],
            summary=[f"results/{{model}}/images/{m.id}/summary.json" for m in _members],
            metrics=[f"results/{{model}}/images/{m.id}/metrics.csv" for m in _members],
        log:
            f"results/logs/{{model}}/analyze_{_shard}.log",
        benchmark:
            f"results/benchmarks/{{model}}/analyze_{_shard}.tsv"
        conda:
            "../../environment.yml"
        threads: TF_THREADS
        resources:
            gpu=1,
        params:
            images=image_params(_members),
            cfg=analysis_config,
        script:
            "../../scripts/analyze.py"


rule render_image:
    input:
        raw="results/{model}/images/{image}/raw.npz",
        summary="results/{model}/images/{image}/summary.json",
    output:
        sheet="results/{model}/images/{image}/sheet.json",
        figures=report(
            directory("results/{model}/images/{image}/figures"),
            patterns=["{name}.png"],
            category="Images",
            subcategory="{model} {image}",
        ),
    log:
        "results/logs/{model}/render/{image}.log",
    benchmark:
        "results/benchmarks/{model}/render/{image}.tsv"
    conda:
        "../../environment.yml"
    params:
        sheet_layers=lambda wildcards: model_override(
            wildcards.model, "sheet_layers", "report", "sheet_layers"
        ),
    script:
        "../../scripts/render_image.py"


rule filters:
    input:
        model="results/{model}/model/model.keras",
        info="results/{model}/model/info.json",
    output:
        manifest="results/{model}/filters/filters.json",
        figures=report(
            directory("results/{model}/filters/figures"),
            patterns=["{name}.png"],
            category="Filters",
            subcategory="{model}",
        ),
    log:
        "results/logs/{model}/filters.log",
    benchmark:
        "results/benchmarks/{model}/filters.tsv"
    conda:
        "../../environment.yml"
    threads: TF_THREADS
    resources:
        gpu=1,
    params:
        cfg=filters_config,
        seed=config["seed"],
    script:
        "../../scripts/filters.py"


rule method_quality:
    input:
        model="results/{model}/model/model.keras",
        info="results/{model}/model/info.json",
        images=image_inputs(QUALITY_IMAGES),
    output:
        json="results/{model}/methods/quality.json",
        csv=report(
            "results/{model}/methods/quality.csv",
            category="Heatmap methods",
            subcategory="{model}",
        ),
        figures=report(
            directory("results/{model}/methods/figures"),
            patterns=["{name}.png"],
            category="Heatmap methods",
            subcategory="{model}",
        ),
    log:
        "results/logs/{model}/method_quality.log",
    benchmark:
        "results/benchmarks/{model}/method_quality.tsv"
    conda:
        "../../environment.yml"
    threads: TF_THREADS
    resources:
        gpu=1,
    params:
        images=image_params(QUALITY_IMAGES),
        cfg=lambda wildcards: {
            "heatmaps": {
                **config["heatmaps"],
                **analysis_config(wildcards)["heatmaps"],
            },
            "batch_size": config["batch_size"],
        },
        seed=config["seed"],
    script:
        "../../scripts/method_quality.py"

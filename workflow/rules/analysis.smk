# Analysis in two tiers. Measure: per model and shard of images, one TensorFlow process runs every
# transform of every image through the model in batches (images decoded ahead of the model step)
# and writes the shard's metrics as one compact table. Draw: a few exemplars, chosen once for the
# study from every model's shards (rule choose_exemplars), are analysed again by each model with their
# raw arrays and drawn, then drawn with all models side by side. Jobs are per shard and per model,
# never per image.


rule measure:
    input:
        model="results/{model}/model/model.keras",
        info="results/{model}/model/info.json",
        images=lambda wildcards: image_inputs(SHARDS[wildcards.model][wildcards.shard]),
        channel_maps=channel_maps,
    output:
        metrics="results/{model}/measure/{shard}/metrics.csv.gz",
        images="results/{model}/measure/{shard}/images.csv",
        pooled="results/{model}/measure/{shard}/pooled.npz",
        cka="results/{model}/measure/{shard}/cka.npz",
    log:
        "results/logs/{model}/measure_{shard}.log",
    benchmark:
        "results/benchmarks/{model}/measure_{shard}.tsv"
    priority: 1
    conda:
        "../../environment.yml"
    threads: tf_threads(sum(len(shards) for shards in SHARDS.values()))
    resources:
        gpu=1,
    params:
        images=lambda wildcards: image_params(SHARDS[wildcards.model][wildcards.shard]),
        cfg=analysis_config,
    script:
        "../../scripts/measure.py"


# The study's exemplars, chosen once across the models from their shards' tables (image rows and
# output metric rows), so every model draws the same images.
rule choose_exemplars:
    input:
        # the measured tables change whenever an image does; the images are read by path (params)
        metrics=every_shard("metrics"),
        images=every_shard("images"),
    output:
        "results/exemplars.json",
    log:
        "results/logs/choose_exemplars.log",
    benchmark:
        "results/benchmarks/choose_exemplars.tsv"
    conda:
        "../../environment.yml"
    params:
        models=MODELS,
        shards=[len(SHARDS[m]) for m in MODELS],
        choice=config["report"]["exemplars"],
        seed=config["seed"],
    script:
        "../../scripts/choose_exemplars.py"


rule draw:
    input:
        model="results/{model}/model/model.keras",
        info="results/{model}/model/info.json",
        exemplars=rules.choose_exemplars.output[0],
    output:
        manifest="results/{model}/exemplars.json",
        folder=report(
            directory("results/{model}/exemplars"),
            caption="../report/exemplars.rst",
            patterns=["{image}/figures/{name}.png"],
            category="Exemplars",
            subcategory="{model}",
        ),
    log:
        "results/logs/{model}/draw.log",
    benchmark:
        "results/benchmarks/{model}/draw.tsv"
    conda:
        "../../environment.yml"
    threads: tf_threads()
    resources:
        gpu=1,
    params:
        images=image_params(IMAGES),
        cfg=analysis_config,
        sheet_layers=lambda wildcards: model_override(
            wildcards.model, "sheet_layers", "report", "sheet_layers"
        ),
    script:
        "../../scripts/draw.py"


# Each exemplar with every model side by side (numpy/Pillow, from the draw jobs' saved arrays).
rule side_by_side:
    input:
        exemplars=rules.choose_exemplars.output[0],
        folders=every_model(rules.draw.output.folder),
    output:
        manifest="results/exemplars/side_by_side.json",
        figures=report(
            directory("results/exemplars/figures"),
            caption="../report/side_by_side.rst",
            patterns=["{image}.png"],
            category="Exemplars",
            subcategory="side by side",
        ),
    log:
        "results/logs/side_by_side.log",
    benchmark:
        "results/benchmarks/side_by_side.tsv"
    conda:
        "../../environment.yml"
    params:
        models=MODELS,
    script:
        "../../scripts/side_by_side.py"


# The extras beside the study, per model in one job (one TensorFlow start and model load): first-layer
# kernels and filter patterns, every heatmap method's check (sanity and faithfulness) and, for a model
# trained here, the training views (evolution strips from its checkpoints, the embedding). A model
# loaded from a file has no checkpoints: rule model_extras_loaded, the same without the views.
EXTRAS_INPUT = {
    "model": "results/{model}/model/model.keras",
    "info": "results/{model}/model/info.json",
    "images": image_inputs(QUALITY_IMAGES),
}
EXTRAS_OUTPUT = {
    "filters": "results/{model}/filters/filters.json",
    "filter_figures": report(
        directory("results/{model}/filters/figures"),
        caption="../report/filters.rst",
        patterns=["{name}.png"],
        category="Filters",
        subcategory="{model}",
    ),
    "quality": "results/{model}/methods/quality.json",
    "quality_csv": report(
        "results/{model}/methods/quality.csv",
        caption="../report/method_quality.rst",
        category="Heatmap methods",
        subcategory="{model}",
    ),
    "quality_figures": report(
        directory("results/{model}/methods/figures"),
        caption="../report/method_quality.rst",
        patterns=["{name}.png"],
        category="Heatmap methods",
        subcategory="{model}",
    ),
}


rule model_extras:
    input:
        **EXTRAS_INPUT,
        checkpoints="results/{model}/checkpoints",
        dataset=lambda wc: dataset_npz(config["models"][wc.model]["dataset"]),
    output:
        **EXTRAS_OUTPUT,
        evolution="results/{model}/evolution/evolution.json",
        evolution_figures=report(
            directory("results/{model}/evolution/figures"),
            caption="../report/evolution.rst",
            patterns=["{name}.png"],
            category="Training",
            subcategory="{model}",
        ),
    log:
        "results/logs/{model}/model_extras.log",
    benchmark:
        "results/benchmarks/{model}/model_extras.tsv"
    wildcard_constraints:
        model=one_of(TRAINED),
    conda:
        "../../environment.yml"
    threads: tf_threads()
    resources:
        gpu=1,
    params:
        filters=filters_config,
        quality_images=image_params(QUALITY_IMAGES),
        quality=quality_config,
        # the study's count only while it is within heatmaps.quality_images: adding an image to a larger
        # study must not rerun the extras (the subset line then says "of the study's images")
        study_images=(
            len(IMAGES)
            if len(IMAGES) <= config["heatmaps"]["quality_images"]
            else "more"
        ),
        # a loaded model has no training views: their settings must not rerun its extras
        evolution=lambda wc: config["evolution"] if wc.model in TRAINED else None,
        top_k=lambda wc: config["activations"]["top_k"] if wc.model in TRAINED else None,
        seed=config["seed"],
    script:
        "../../scripts/model_extras.py"


use rule model_extras as model_extras_loaded with:
    input:
        **EXTRAS_INPUT,
    output:
        **EXTRAS_OUTPUT,
    wildcard_constraints:
        model=one_of(LOADED),


# The equivariance ladder's channel maps: per model, fit on the first equivariance.fit_images images
# (a held-apart fit set) from streamed C×C sums; the measure jobs score every other image with them.
rule fit_channel_maps:
    input:
        model="results/{model}/model/model.keras",
        info="results/{model}/model/info.json",
        images=image_inputs(FIT_IMAGES),
    output:
        maps="results/{model}/sensitivity/channel_maps.npz",
        table=report(
            "results/{model}/sensitivity/channel_maps.csv",
            caption="../report/channel_maps.rst",
            category="Sensitivity",
            subcategory="{model}",
        ),
        figure=report(
            "results/{model}/sensitivity/channel_maps.png",
            caption="../report/channel_maps.rst",
            category="Sensitivity",
            subcategory="{model}",
        ),
    log:
        "results/logs/{model}/fit_channel_maps.log",
    benchmark:
        "results/benchmarks/{model}/fit_channel_maps.tsv"
    priority: 1
    conda:
        "../../environment.yml"
    threads: tf_threads()
    resources:
        gpu=1,
    params:
        images=image_params(FIT_IMAGES),
        cfg=analysis_config,
    script:
        "../../scripts/fit_channel_maps.py"

# Models: trained here (history, best-validation weights, test metrics) or loaded in safe mode.


rule train_model:
    input:
        dataset=lambda wc: dataset_npz(config["models"][wc.model]["dataset"]),
    output:
        model="results/{model}/model/model.keras",
        info="results/{model}/model/info.json",
        architecture=report(
            "results/{model}/model/architecture.csv",
            caption="../report/architecture.rst",
            category="Models",
            subcategory="{model}",
        ),
        history="results/{model}/model/history.csv",
        metrics="results/{model}/model/metrics.json",
        checkpoints=directory("results/{model}/checkpoints"),
        tensorboard=directory("results/{model}/tensorboard"),
    log:
        "results/logs/{model}/train.log",
    benchmark:
        "results/benchmarks/{model}/train.tsv"
    wildcard_constraints:
        model=one_of(TRAINED),
    priority: 2
    conda:
        "../../environment.yml"
    threads: tf_threads(len(TRAINED))
    resources:
        gpu=1,
    params:
        spec=lambda wc: model_spec(wc.model),
        seed=config["seed"],
        evolution={k: config["evolution"][k] for k in ("epochs", "image")},
    script:
        "../../scripts/train_model.py"


rule load_model:
    input:
        lambda wc: [p for p in [config["models"][wc.model].get("path")] if p],
    output:
        model="results/{model}/model/model.keras",
        info="results/{model}/model/info.json",
        architecture=report(
            "results/{model}/model/architecture.csv",
            category="Models",
            subcategory="{model}",
        ),
    log:
        "results/logs/{model}/load.log",
    benchmark:
        "results/benchmarks/{model}/load.tsv"
    wildcard_constraints:
        model=one_of(LOADED),
    priority: 2
    conda:
        "../../environment.yml"
    threads: tf_threads()
    resources:
        gpu=1,
    params:
        spec=lambda wc: model_spec(wc.model),
    script:
        "../../scripts/load_model.py"


rule model_figures:
    input:
        history="results/{model}/model/history.csv",
        metrics="results/{model}/model/metrics.json",
    output:
        curves=report(
            "results/{model}/model/training_curves.png",
            caption="../report/training_curves.rst",
            category="Models",
            subcategory="{model}",
        ),
        confusion=report(
            "results/{model}/model/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="Models",
            subcategory="{model}",
        ),
    log:
        "results/logs/{model}/model_figures.log",
    benchmark:
        "results/benchmarks/{model}/model_figures.tsv"
    conda:
        "../../environment.yml"
    script:
        "../../scripts/model_figures.py"

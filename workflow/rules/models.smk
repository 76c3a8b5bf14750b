# Models: trained here (history, best-validation weights, test metrics) or loaded in safe mode.


rule train_model:
    input:
        dataset=lambda wc: f"results/data/{config['models'][wc.model]['dataset']}/data.npz",
    output:
        model="results/{model}/model/model.keras",
        info="results/{model}/model/info.json",
        architecture=report(
            "results/{model}/model/architecture.csv", category="Models", subcategory="{model}"
        ),
        history="results/{model}/model/history.csv",
        metrics="results/{model}/model/metrics.json",
    wildcard_constraints:
        model=one_of(TRAINED),
    params:
        spec=lambda wc: config["models"][wc.model],
        seed=config["seed"],
    threads: workflow.cores
    resources:
        gpu=1,
    log:
        "results/logs/{model}/train.log",
    benchmark:
        "results/benchmarks/{model}/train.tsv"
    script:
        "../../scripts/train_model.py"


rule load_model:
    input:
        lambda wc: [p for p in [config["models"][wc.model].get("path")] if p],
    output:
        model="results/{model}/model/model.keras",
        info="results/{model}/model/info.json",
        architecture=report(
            "results/{model}/model/architecture.csv", category="Models", subcategory="{model}"
        ),
    wildcard_constraints:
        model=one_of(LOADED),
    params:
        spec=lambda wc: config["models"][wc.model],
    threads: workflow.cores
    resources:
        gpu=1,
    log:
        "results/logs/{model}/load.log",
    benchmark:
        "results/benchmarks/{model}/load.tsv"
    script:
        "../../scripts/load_model.py"


rule model_figures:
    input:
        history="results/{model}/model/history.csv",
        metrics="results/{model}/model/metrics.json",
    output:
        curves=report(
            "results/{model}/model/training_curves.png",
            category="Models",
            subcategory="{model}",
        ),
        confusion=report(
            "results/{model}/model/confusion_matrix.png",
            category="Models",
            subcategory="{model}",
        ),
    log:
        "results/logs/{model}/model_figures.log",
    benchmark:
        "results/benchmarks/{model}/model_figures.tsv"
    script:
        "../../scripts/model_figures.py"

# Datasets: generated shapes, a user folder tree, or a local mnist.npz.


rule dataset:
    output:
        dataset_npz("{dataset}"),
    log:
        "results/logs/data/{dataset}.log",
    benchmark:
        "results/benchmarks/data/{dataset}.tsv"
    conda:
        "../../environment.yml"
    params:
        spec=lambda wc: config["datasets"][wc.dataset],
        seed=config["seed"],
    script:
        "../../scripts/make_dataset.py"

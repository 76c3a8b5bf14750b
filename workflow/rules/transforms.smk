# Transforms: the study's list, each a canvas-preserving affine matrix at the model's input size.
# The warps themselves run batched inside the analysis jobs (convlens.transforms.warp).


rule transform_table:
    input:
        info="results/{model}/model/info.json",
    output:
        report(
            "results/{model}/transforms.csv",
            caption="../report/transforms.rst",
            category="Transforms",
            subcategory="{model}",
        ),
    log:
        "results/logs/{model}/transform_table.log",
    benchmark:
        "results/benchmarks/{model}/transform_table.tsv"
    conda:
        "../../environment.yml"
    params:
        transforms=config["transforms"],
    script:
        "../../scripts/transform_table.py"

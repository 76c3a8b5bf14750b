"""Snakemake entry for rules model_extras and model_extras_loaded: filters, the heatmap methods'
check and (a model trained here) the training views, in one process."""

from convlens.stages.model_extras import model_extras
from convlens.stages.run import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake)
out = sm.output
views = None
if "evolution" in out.keys():  # rule model_extras: a model trained here, with its checkpoints
    views = {
        "checkpoints_dir": sm.input.checkpoints,
        "dataset_npz": sm.input.dataset,
        "evolution": sm.params.evolution,
        "top_k": sm.params.top_k,
        "seed": sm.params.seed,
        "out": {"manifest": out.evolution, "figures": out.evolution_figures},
    }
run_stage(
    sm.log[0],
    model_extras,
    sm.input.model,
    sm.input.info,
    sm.threads,
    {
        "filters": {
            "cfg": sm.params.filters,
            "seed": sm.params.seed,
            "out_dir": out.filter_figures,
            "out_json": out.filters,
        },
        "training_views": views,
        "method_quality": {
            "images": sm.params.quality_images,
            "cfg": sm.params.quality,
            "seed": sm.params.seed,
            "out": {"json": out.quality, "csv": out.quality_csv, "figures": out.quality_figures},
            "study_images": sm.params.study_images,
        },
    },
)

# Config loading and validation, and the helpers the rule files share (image list, shards, paths).
import json
import os
import re
import sys
from pathlib import Path

# Here the convlens library imports because Snakemake puts the Snakefile's folder (this checkout) on
# sys.path. The jobs' scripts are Python processes of their own that Snakemake gives only the script's
# folder: PYTHONPATH (passed on to cluster jobs by envvars) adds this checkout there too. This is the
# one place that makes the library importable; it is not pip-installed, so that a run always uses the
# checkout it runs from (the venv is shared by checkouts) and a --use-conda env needs nothing extra.
from convlens.config import ConfigError, digest, list_images, validate
from convlens.model_cost import shard_plan, unknown_cost
from convlens.order import model_order
from convlens.workflow_console import quiet_job_lines

os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(Path(workflow.basedir)), os.environ.get("PYTHONPATH")) if p
)


envvars:
    "PYTHONPATH",


# --configfile replaces the embedded default instead of being merged into it, so a user's
# models and images are the only ones in their run.
# (found beside the Snakefile, also when --directory runs a study in a folder of its own)
if not workflow.overwrite_configfiles:

    configfile: str(Path(workflow.basedir) / "config" / "config.yaml")


# A bad config is one line on stderr and exit status 1, before any job: not a WorkflowError, whose
# frame (file, line, "File ...") would bury the line that says which key and what is allowed.
try:
    _validated = validate(config)
    IMAGES = list_images(_validated)
except ConfigError as error:
    print(f"bad config: {error}", file=sys.stderr)
    sys.exit(1)
config.clear()
config.update(_validated)

TEMPLATES = Path(workflow.basedir) / "reports" / "templates"
# The threads a job that runs TensorFlow asks for (tf_threads): at most TF_THREADS, and on a local
# machine half of --cores, so that two model jobs run side by side (on 2 cores: one core each; a
# TensorFlow job on a small model keeps a second core only partly busy, so two jobs finish sooner
# than one after the other). A rule whose jobs carry the study's compute (train_model, measure)
# and has only one job gets all of --cores: nothing of its kind would run beside it (a VGG16 study
# of 128 images, one measure job, took 360 s with one thread and 259 s with two). On a cluster
# (--executor slurm, no --cores) TF_THREADS, lowered by --max-threads. --set-threads overrides it
# per rule; the scripts hand TensorFlow the job's snakemake.threads.
# Rule priorities: the models first (train_model, load_model: 2), then the chain to the study
# (fit_channel_maps, measure: 1); each model's extras (model_extras: filters, method check, training
# views) fill the gaps.
TF_THREADS = 8


def tf_threads(jobs: int = 2):
    """A rule's threads callable, for a rule with ``jobs`` jobs in the study (see above)."""

    def threads(wildcards):
        if not workflow.local_exec:
            return TF_THREADS
        return min(TF_THREADS, max(1, workflow.cores // min(2, max(1, jobs))))

    return threads


# config order, the reference first: in every plot, table and chapter (never alphabetical)
MODELS = model_order(config)
TRAINED = [m for m in MODELS if config["models"][m]["source"] == "train"]
LOADED = [m for m in MODELS if config["models"][m]["source"] == "load"]
# each model's measure shards: images_per_job (or models.<m>.images_per_job) or, with auto, a size from
# the model's estimated cost per image (convlens.model_cost), known before any job runs; with CKA on,
# every model split alike (shard_plan)
SHARDS = shard_plan(IMAGES, config, MODELS)
QUALITY_IMAGES = IMAGES[: config["heatmaps"]["quality_images"]]
# the equivariance ladder's held-apart fit set (its images get no rung rows); the ladder runs when a
# rung is on and some image is left to score
FIT_IMAGES = IMAGES[: config["equivariance"]["fit_images"]]
RUNG_ON = config["equivariance"]["perm"] or config["equivariance"]["linear"]
LADDER = RUNG_ON and len(IMAGES) > len(FIT_IMAGES)
CONFIG_DIGEST = digest(config)


def note_replaced_report(run_json="results/report/run.json"):
    """One line when results/report/ here came from another config: this run replaces it (every output
    lives under results/ of the working directory; --directory gives a study a folder of its own).
    """
    try:
        earlier = json.loads(Path(run_json).read_text()).get("config_digest")
    except (OSError, ValueError):
        return
    if earlier and earlier != CONFIG_DIGEST:
        print(
            f"note: {run_json} was made with another config (digest {earlier[:12]}); this run replaces "
            f"that report. To keep studies apart, give each a folder: --directory studies/<name> "
            f"(README: Several studies).",
            file=sys.stderr,
        )


# not again in every cluster job, which parses this file too
if workflow.is_main_process:
    note_replaced_report()
    # the console gets one line per finished job and the errors; .snakemake/log/ keeps Snakemake's every line;
    # a dry run's plan (known only once the run starts: workflow.dryrun is False while this file is read) passes
    quiet_job_lines(lambda: workflow.dryrun)
    for _model in unknown_cost(config["models"], config):
        print(
            f"note: images_per_job auto: the cost per image of model {_model} cannot be estimated before "
            f"it exists (a folder dataset's image size, an .h5 file without layer shapes, or a base not in "
            f"convlens/model_cost.py's table): 1,024 images a job; set models.{_model}.images_per_job to choose",
            file=sys.stderr,
        )


def model_override(model, key, section, section_key):
    """A per-model setting (e.g. models.<m>.sheet_layers) or else the global one."""
    return config["models"][model].get(key, config[section][section_key])


# a model's own overrides of analysis settings: changing one reruns the analysis, not the model's training or load
MODEL_ANALYSIS_KEYS = (
    "heatmap_layer",
    "sheet_layers",
    "plot_layers",
    "filter_layers",
    "images_per_job",
)


def model_spec(model):
    """What train_model and load_model depend on: the model's entry without its analysis overrides."""
    return {
        k: v for k, v in config["models"][model].items() if k not in MODEL_ANALYSIS_KEYS
    }


def analysis_config(wildcards):
    """The config an analysis job depends on: changing the report title must not redo it."""
    heatmaps = {
        k: v for k, v in config["heatmaps"].items() if not k.startswith("quality_")
    }
    heatmaps["layer"] = model_override(
        wildcards.model, "heatmap_layer", "heatmaps", "layer"
    )
    return {
        **{
            key: config[key]
            for key in (
                "seed",
                "transforms",
                "fill_mode",
                "fill_value",
                "batch_size",
                "mixed_precision",
                "lie_derivative",
                "equivariance",
            )
        },
        "heatmaps": heatmaps,
        "activations": config["activations"],
        "sheet_transforms": config["report"]["sheet_transforms"],
        "cka": config["cka"],
    }


def quality_config(wildcards):
    """The method check's settings: every heatmaps key (quality_* included) and the batch size."""
    heatmaps = {**config["heatmaps"], **analysis_config(wildcards)["heatmaps"]}
    return {"heatmaps": heatmaps, "batch_size": config["batch_size"]}


def filters_config(wildcards):
    layers = model_override(wildcards.model, "filter_layers", "filters", "layers")
    return {"filters": {**config["filters"], "layers": layers}}


def one_of(names):
    """A wildcard constraint matching exactly these names (none: matches nothing)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    model=one_of(MODELS),
    shard=one_of(sorted({s for shards in SHARDS.values() for s in shards})),
    dataset=one_of(config["datasets"]),


def dataset_npz(name):
    """Where rule dataset writes a dataset."""
    return f"results/data/{name}/data.npz"


def image_inputs(images):
    """The datasets a job's test images come from (the files of its images made by rule dataset).

    Image files are not inputs: a study of 10,000 files would have Snakemake check each one's size
    every scheduling round. Each image's modification time and size are in image_params instead, so
    a changed file still reruns its shard (Snakemake's params rerun trigger).
    """
    return sorted({dataset_npz(img.dataset) for img in images if not img.path})


def image_params(images):
    """Per-image descriptions for the analysis scripts, in output order; files with their stamp."""
    out = []
    for img in images:
        stamp = None
        if img.path:
            st = os.stat(img.path)
            stamp = [st.st_mtime_ns, st.st_size]
        out.append(
            {
                "id": img.id,
                "path": img.path,
                "stamp": stamp,
                "dataset": img.dataset,
                "index": img.index,
                "dataset_npz": dataset_npz(img.dataset) if img.dataset else None,
                "resize": img.resize,
                "label": img.label,
                "label_source": img.label_source,
            }
        )
    return out


def channel_maps(wildcards):
    """The measure job's fitted channel maps (rule fit_channel_maps) when a rung of the ladder is on."""
    return rules.fit_channel_maps.output.maps if LADDER else []


def shard_files(model, name):
    """One output (metrics, images, pooled) of every measure shard of a model."""
    return expand(getattr(rules.measure.output, name), model=model, shard=SHARDS[model])


def every_shard(name):
    """One output (metrics, images, ...) of every measure shard of every model."""
    return [path for model in MODELS for path in shard_files(model, name)]


def every_model(pattern, models=MODELS):
    """A path pattern with {model} (a rule's output, rules.<rule>.output.<name>) for each model."""
    return expand(pattern, model=models)

"""Stage of rule model_extras: a model's filters, its heatmap methods' check and (a model trained here)
its training views, in one process.

Each is a stage of its own (``stages.filters``, ``stages.method_quality``, ``stages.training_views``);
run here one after the other, they share one TensorFlow start and one load of the model
(``core.setup.shared_model``), which a job of each would pay again: about 4.5 s a job on 2 cores.
"""

from __future__ import annotations

import time

from convlens.core.setup import shared_model
from convlens.stages.filters import filters
from convlens.stages.method_quality import method_quality
from convlens.stages.run import log
from convlens.stages.training_views import training_views


def model_extras(model_path: str, info_json: str, threads: int, parts: dict) -> None:
    """Run the parts given, in this order: ``filters``, ``training_views``, ``method_quality``, each
    a dict of its stage's other arguments (``training_views``: None for a loaded model). A part that
    fails stops the job (Snakemake then removes every output of it)."""
    stages = {"filters": filters, "training_views": training_views, "method_quality": method_quality}
    seconds = {}
    with shared_model(model_path, threads):
        for name, stage in stages.items():
            kwargs = parts.get(name)
            if kwargs is None:
                continue
            t0 = time.time()
            stage(model_path, info_json, threads=threads, **kwargs)
            seconds[name] = time.time() - t0
    log.info("model extras: %s", ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items()))

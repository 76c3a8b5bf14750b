"""Stage of rule load_model."""

from __future__ import annotations

from convlens import models
from convlens.core.layers import iter_layers
from convlens.core.setup import configure
from convlens.errors import InputError
from convlens.stages.files import save_model
from convlens.stages.run import log
from convlens.suspicious import application_preprocess


def load_model(name: str, spec: dict, threads: int, out: dict) -> None:
    """Loads (safe mode) or builds the model and saves it as model.keras with info.json."""
    configure(threads)
    model = models.load(spec)
    source = spec.get("path") or f"keras.applications.{spec.get('application')}"
    models.check_loaded(model, source)
    shape = [int(d) for d in model.inputs[0].shape[1:]]
    if None in shape or len(shape) != 3:
        raise InputError(f"config.models.{name}: input shape {shape} must be fixed (H, W, C)")
    n_classes = int(model.outputs[0].shape[-1])
    names = spec.get("class_names") or [f"class_{i}" for i in range(n_classes)]
    if len(names) != n_classes:
        raise InputError(f"config.models.{name}.class_names: {len(names)} names for a model with {n_classes} outputs")
    preprocess = models.resolve_preprocess(spec)
    suspicious = application_preprocess(
        source,
        f"config.models.{name}.preprocess",
        model.name,
        [p for p, _ in iter_layers(model)],
        preprocess,
        spec.get("preprocess", "auto"),
    )
    warnings = [suspicious] if suspicious else []
    for w in warnings:
        log.warning("%s", w["message"])
    save_model(model, models.ModelInfo(name, "load", shape, names, preprocess, warnings), out)

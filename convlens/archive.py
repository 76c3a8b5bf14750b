"""What a saved model file says about the model, read without TensorFlow: a ``.keras`` file is a zip
archive whose ``config.json`` lists every layer (class, name, inputs), the input shape and the
output layer. The config check uses it to refuse, before any job starts, a class-name count, a named
layer or an input the model cannot have. An ``.h5`` file (HDF5) holds the same JSON in its
``model_config`` attribute, read with h5py when it is installed; without h5py, or in a weights-only
file, its checks stay at the load_model job.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from convlens.errors import did_you_mean

CONV_CLASSES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")
MODEL_CLASSES = ("Functional", "Sequential", "Model")


@dataclass
class ArchiveFacts:
    """The facts of a model file: layer paths (``outer/inner`` in nested models, as
    ``convlens.core.layers.iter_layers`` names them), input shape without the batch axis (None where
    unknown), output units (None where the config does not say) and whether a conv layer exists."""

    layers: list[str] = field(default_factory=list)
    input_shape: list | None = None
    outputs: int | None = None
    has_conv: bool = False


def read_config(path: Path | str) -> dict | None:
    """The archive's config.json (an ``.h5`` file's ``model_config``) as a dict (ValueError if it is
    not there or not JSON; None for an ``.h5`` file when h5py is missing or it holds weights only)."""
    if str(path).endswith(".h5"):
        return _h5_config(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"no readable config.json ({exc})") from None


def _h5_config(path: Path | str) -> dict | None:
    try:
        import h5py
    except ImportError:
        return None
    try:
        with h5py.File(path, "r") as f:
            text = f.attrs.get("model_config")
    except OSError as exc:
        raise ValueError(f"no readable HDF5 content ({exc})") from None
    if text is None:
        return None
    try:
        return json.loads(text.decode() if isinstance(text, bytes) else text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"no readable model_config ({exc})") from None


def facts(path: Path | str) -> ArchiveFacts | None:
    """Facts of a ``.keras`` or ``.h5`` model file (ValueError if unreadable; None if not known here)."""
    config = read_config(path)
    return None if config is None else facts_of_config(config)


def facts_of_config(config: dict) -> ArchiveFacts:
    out = ArchiveFacts()
    _walk(config, "", out)
    out.input_shape = _input_shape(config)
    out.outputs = _output_units(config)
    return out


def _layers(model: dict) -> list[dict]:
    return list(model.get("config", {}).get("layers", []))


def _name(layer: dict) -> str:
    return str(layer.get("config", {}).get("name", ""))


def _is_model(layer: dict) -> bool:
    return layer.get("class_name") in MODEL_CLASSES and "layers" in layer.get("config", {})


def _walk(model: dict, prefix: str, out: ArchiveFacts) -> None:
    for layer in _layers(model):
        path = prefix + _name(layer)
        if _is_model(layer):
            _walk(layer, path + "/", out)
            continue
        out.layers.append(path)
        if layer.get("class_name") in CONV_CLASSES:
            out.has_conv = True


def _input_shape(model: dict) -> list | None:
    for layer in _layers(model):
        if layer.get("class_name") == "InputLayer":
            shape = layer["config"].get("batch_shape") or layer["config"].get("batch_input_shape")
            return list(shape[1:]) if shape else None
    shape = model.get("config", {}).get("build_input_shape") or (model.get("build_config") or {}).get("input_shape")
    if shape and isinstance(shape[0], (int, type(None))):
        return list(shape[1:])
    first = _layers(model)[:1]
    return _input_shape(first[0]) if first and _is_model(first[0]) else None


def _output_layer(model: dict) -> dict | None:
    layers = _layers(model)
    if not layers:
        return None
    outputs = model.get("config", {}).get("output_layers")
    if model.get("class_name") == "Functional" and outputs:
        first = outputs[0] if isinstance(outputs[0], list) else outputs
        by_name = {_name(layer): layer for layer in layers}
        return by_name.get(str(first[0]))
    return layers[-1]


def _inbound(layer: dict) -> list[str]:
    """Names of the layers feeding ``layer`` (Keras 3 ``inbound_nodes``)."""
    names = []
    for node in layer.get("inbound_nodes", []):
        args = node.get("args", []) if isinstance(node, dict) else []
        stack = list(args)
        while stack:
            item = stack.pop()
            if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
                names.append(str(item["config"]["keras_history"][0]))
            elif isinstance(item, list):
                stack.extend(item)
    return names


def _output_units(model: dict) -> int | None:
    """Units of the layer making the output: the output layer's, or the nearest earlier Dense's when
    the output is an activation, dropout or reshape (which keep the width). None if unknown."""
    layer = _output_layer(model)
    by_name = {_name(item): item for item in _layers(model)}
    seen = set()
    while layer is not None and _name(layer) not in seen:
        seen.add(_name(layer))
        if _is_model(layer):
            return _output_units(layer)
        cfg = layer.get("config", {})
        if "units" in cfg:
            return int(cfg["units"])
        if layer.get("class_name") not in ("Activation", "Softmax", "Dropout", "ReLU", "Identity"):
            return None
        if model.get("class_name") == "Sequential":
            layers = _layers(model)
            index = next(i for i, item in enumerate(layers) if item is layer)
            layer = layers[index - 1] if index > 0 else None
        else:
            feeding = _inbound(layer)
            layer = by_name.get(feeding[0]) if len(feeding) == 1 else None
    return None


# the named-layer keys: per-model key, and the global key it overrides
LAYER_KEYS = (
    ("heatmap_layer", "heatmaps", "layer"),
    ("sheet_layers", "report", "sheet_layers"),
    ("plot_layers", "report", "plot_layers"),
    ("filter_layers", "filters", "layers"),
)


def model_problem(name: str, model: dict, cfg: dict, base: Path | str = ".") -> str | None:
    """One line naming the config key, for what the model file of model ``name`` (``source: load``
    with ``path``) refuses: an input that is not one fixed-size image, a class-name count other than
    its outputs, a named layer it does not have, no conv layer. None when all fits, or when the file
    says nothing here (an ``.h5`` file without h5py or with weights only: load_model checks it)."""
    path = model.get("path")
    if model.get("source") != "load" or not path or not str(path).endswith((".keras", ".h5")):
        return None
    where = f"config.models.{name}"
    try:
        found = facts(Path(base) / path)
    except ValueError as exc:
        return f"{where}.path: {path!r} has {exc}"
    if found is None:
        return None
    shape = found.input_shape
    if shape is not None and (len(shape) != 3 or None in shape[:2]):
        return (
            f"{where}.path: {path!r} takes input shape {shape}; allowed: one fixed-size image "
            "(height, width, channels), e.g. keras.Input((224, 224, 3))"
        )
    names = model.get("class_names")
    if names and found.outputs is not None and len(names) != found.outputs:
        return f"{where}.class_names: {len(names)} names for a model with {found.outputs} outputs ({path})"
    for key, section, section_key in LAYER_KEYS:
        own = key in model
        wanted = model[key] if own else cfg.get(section, {}).get(section_key)
        wanted = [wanted] if isinstance(wanted, str) and key == "heatmap_layer" else wanted
        if not isinstance(wanted, list):  # null (the default layer) or plot_layers: auto
            continue
        missing = [w for w in wanted if w not in found.layers]
        if missing:
            key_path = f"{where}.{key}" if own else f"config.{section}.{section_key}"
            return _missing_layer(key_path, missing[0], name, found)
    problem = _comparison_layer_problem(name, cfg, found)
    if problem:
        return problem
    if not found.has_conv:
        return (
            f"{where}.path: {path!r} has no convolution layer (Conv2D, DepthwiseConv2D or SeparableConv2D); "
            "allowed: a CNN (feature maps, sheets and Grad-CAM need one)"
        )
    return None


def _comparison_layer_problem(name: str, cfg: dict, found: ArchiveFacts) -> str | None:
    """config.comparison.layers names layers of this model: as its own (keys of its entry) and, for
    the reference model, as the partners (values of every entry)."""
    comparison = cfg.get("comparison") or {}
    pairs = comparison.get("layers") or {}
    own = list(pairs.get(name) or {})
    partners = [ref for mapping in pairs.values() for ref in (mapping or {}).values()]
    wanted = own + (partners if comparison.get("reference") == name else [])
    missing = [w for w in wanted if w not in found.layers]
    if missing:
        key = f"config.comparison.layers.{name}" if missing[0] in own else "config.comparison.layers"
        return _missing_layer(key, missing[0], name, found)
    return None


def _missing_layer(key: str, layer: str, model: str, found: ArchiveFacts) -> str:
    hint = did_you_mean(layer, found.layers)
    shown = found.layers if len(found.layers) <= 12 else found.layers[:6] + ["..."] + found.layers[-5:]
    return (
        f"{key}: layer {layer!r} is not in model {model}{hint}; allowed: one of its {len(found.layers)} layers "
        f"({', '.join(shown)})"
    )

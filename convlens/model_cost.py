"""What measuring one image costs a model, estimated before any job runs: the shard size of
``images_per_job: auto`` (config/README.md).

A measure job pays a start (Python, TensorFlow, the model's load, the compiled step's trace) and then
a share per image. Small shards of a small model spend most of their time starting (16 jobs of 625
images of the 28-pixel shapes CNN: 4 s of work and 4 s of start each); large shards of a large
model leave cores idle. So each model gets shards sized to carry about ``START_SHARE`` times a
job's start in work, from an estimate of that work:

    seconds per image = rows × (F × passes / MAC_RATE + ROW_SECONDS)

F is the model's forward multiply-accumulates for one input (``forward_macs``: counted from the
model's own config, with no TensorFlow: a ``.keras`` file's ``config.json``, the built-in
architectures, a ``keras.applications`` table); rows are the transformed inputs per image (the
transforms and the untransformed image); passes the forward-pass equivalents each row costs: 1 for
the step plus each heatmap method's (``attribution`` ``Method.passes``: a gradient is about 3,
Integrated Gradients 3 per step, the gradient-CAM family nothing beyond the step) and the Lie
derivative's share. MAC_RATE and ROW_SECONDS were measured on one core of the machines this
project runs on (2 vCPUs, no GPU; README's timing table); a GPU computes far faster, so there the
estimate sizes shards larger than needed, which costs parallelism, not starts.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

from convlens.attribution.registry import method as registered
from convlens.config import assign_shards, shard_count
from convlens.models import MNIST_CNN, SHAPES_CNN_FILTERS
from convlens.sensitivity.lie import generators_of
from convlens.transforms import build_transforms

MAC_RATE = 50e9  # multiply-accumulates a second, one CPU core, TensorFlow on a convolutional model
ROW_SECONDS = 1e-3  # per transformed input beyond the model: warps, sums, metric rows
START_SECONDS = 10.0  # a measure job's start: Python and TensorFlow, the model's load, the step's trace
START_SHARE = 10  # a shard carries about this many starts' worth of work
LIE_PASSES_PER_GENERATOR = 2.5  # the Lie derivative, per image and generator (config/README.md)
MOST_IMAGES_PER_JOB = 1 << 16
FALLBACK_IMAGES_PER_JOB = 1024  # when a model's cost cannot be told before it exists

# keras.applications bases without their top at 224 × 224 × 3, forward multiply-accumulates
# (``forward_macs_of_config`` on each constructor's own config, weights=None; tests check some).
APPLICATION_MACS = {
    "VGG16": 15_346_630_656,
    "VGG19": 19_508_428_800,
    "ResNet50": 3_855_925_248,
    "ResNet101": 7_568_146_432,
    "ResNet152": 11_280_367_616,
    "ResNet50V2": 3_480_207_360,
    "MobileNet": 567_716_352,
    "MobileNetV2": 299_494_272,
    "DenseNet121": 2_833_137_664,
    "DenseNet169": 3_358_179_328,
    "EfficientNetB0": 384_534_752,
    "Xception": 4_550_831_072,
    "InceptionV3": 2_835_873_120,
}


CONVOLUTIONS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")  # counted, with Dense


def _pair(value) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (list, tuple)) else (int(value), int(value))


def _out_side(size: int | None, kernel: int, stride: int, padding: str, dilation: int = 1) -> int | None:
    if size is None:
        return None
    if padding == "same":
        return -(-size // stride)
    return max(0, (size - (kernel - 1) * dilation - 1) // stride + 1)


def _layer_macs(class_name: str, cfg: dict, shape: list) -> float | None:
    """Multiply-accumulates of one layer for one input of ``shape`` (its input shape without the batch)."""
    if class_name in CONVOLUTIONS:
        h, w, c = shape[-3], shape[-2], shape[-1]
        if None in (h, w, c):
            return None
        kh, kw = _pair(cfg.get("kernel_size", 1))
        sh, sw = _pair(cfg.get("strides", 1))
        dh, dw = _pair(cfg.get("dilation_rate", 1))
        pad = cfg.get("padding", "valid")
        if class_name == "Conv2DTranspose":
            return float(h * w * kh * kw * c * cfg["filters"])
        oh, ow = _out_side(h, kh, sh, pad, dh), _out_side(w, kw, sw, pad, dw)
        multiplier = cfg.get("depth_multiplier", 1)
        if class_name == "DepthwiseConv2D":
            return float(oh * ow * kh * kw * c * multiplier)
        if class_name == "SeparableConv2D":
            return float(oh * ow * (kh * kw * c * multiplier + c * multiplier * cfg["filters"]))
        return float(oh * ow * kh * kw * (c // cfg.get("groups", 1)) * cfg["filters"])
    if class_name == "Dense":
        if shape[-1] is None:
            return None
        return float(math.prod(d for d in shape[:-1] if d is not None) * shape[-1] * cfg["units"])
    return 0.0


def forward_macs_of_config(config: dict) -> float | None:
    """Forward multiply-accumulates of one input through a serialized Keras model (the structure of
    a ``.keras`` file's ``config.json``: each built layer's ``build_config`` holds its input shape),
    nested models included. None when a convolution or dense layer has no input shape (an older
    ``.h5`` file)."""
    total = 0.0
    for layer in config.get("config", {}).get("layers", []):
        cfg = layer.get("config", {})
        if "layers" in cfg:  # a nested model (a keras.applications base inside a classifier)
            part = forward_macs_of_config(layer)
        else:
            shape = (layer.get("build_config") or {}).get("input_shape")
            if isinstance(shape, list) and shape and isinstance(shape[0], list):
                shape = shape[0]  # several inputs: the first
            part = _layer_macs(layer.get("class_name", ""), cfg, shape[1:]) if shape else None
            if part is None and layer.get("class_name") not in (*CONVOLUTIONS, "Dense"):
                part = 0.0  # a layer not counted (pooling, normalization ...): no shape needed
        if part is None:
            return None
        total += part
    return total


def file_macs(path: str | Path) -> float | None:
    """A saved model's forward multiply-accumulates from its config (no TensorFlow), or None."""
    path = Path(path)
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                return forward_macs_of_config(json.loads(archive.read("config.json")))
        if path.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                text = f.attrs.get("model_config")
            if text is None:
                return None
            return forward_macs_of_config(json.loads(text.decode() if isinstance(text, bytes) else text))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return None


def builtin_macs(architecture: str, input_shape, n_classes: int) -> float | None:
    """Forward multiply-accumulates of a built-in architecture (``models.build_shapes_cnn``,
    ``build_mnist_cnn``; anti-aliasing's blur adds under 1 %, left out)."""
    h, w, c = (int(v) for v in input_shape)
    if architecture == "shapes_cnn":
        total = 0.0
        for block, filters in enumerate(SHAPES_CNN_FILTERS, start=1):
            total += h * w * 9 * (c + filters) * filters  # two 3x3 'same' convolutions
            c = filters
            if block < len(SHAPES_CNN_FILTERS):
                h, w = h // 2, w // 2
        return total + c * n_classes
    if architecture == "mnist_cnn":
        total, k = 0.0, MNIST_CNN["kernel"]
        for filters in MNIST_CNN["filters"]:
            total += h * w * k * k * c * filters
            c, h, w = filters, h // 2, w // 2
        return total + h * w * c * MNIST_CNN["dense"] + MNIST_CNN["dense"] * n_classes
    return None


def application_macs(name: str, side_h: int, side_w: int) -> float | None:
    """A ``keras.applications`` base at another input size: the 224-pixel count scaled by the area
    (convolutions dominate; their cost grows with the pixels)."""
    at_224 = APPLICATION_MACS.get(name)
    return None if at_224 is None else at_224 * side_h * side_w / (224 * 224)


def _dataset_input(datasets: dict, name: str | None) -> tuple[int, int] | None:
    """(side, channels) of a dataset's images, known from its config: None for a ``folder`` dataset
    (its files' size; the schema's image_size default does not apply to it)."""
    data = datasets.get(name, {})
    kind = data.get("kind")
    if kind == "mnist":
        return 28, 1
    if kind not in ("shapes", "digits") or not data.get("image_size"):
        return None
    return int(data["image_size"]), 1 if kind == "digits" else 3


def forward_macs(spec: dict, datasets: dict) -> float | None:
    """A config model's forward multiply-accumulates for one input, or None when unknown before it exists."""
    if spec.get("source") == "load":
        if spec.get("path"):
            return file_macs(spec["path"])
        if spec.get("application"):
            side = int(spec.get("input_size") or 224)
            return application_macs(spec["application"], side, side)
        return None
    found = _dataset_input(datasets, spec.get("dataset"))
    if found is None:
        return None
    side, channels = found
    if spec.get("architecture") == "transfer":
        return application_macs(spec.get("base", ""), side, side)
    return builtin_macs(spec.get("architecture", ""), (side, side, channels), 10)


def seconds_per_image(macs: float, rows: int, passes: float) -> float:
    """The estimate of the module docstring."""
    return rows * (macs * passes / MAC_RATE + ROW_SECONDS)


def auto_images_per_job(seconds: float | None) -> int:
    """The power of two nearest to the images that carry START_SHARE starts of work (at least 1)."""
    if seconds is None or seconds <= 0:
        return FALLBACK_IMAGES_PER_JOB
    wanted = START_SHARE * START_SECONDS / seconds
    return int(min(MOST_IMAGES_PER_JOB, max(1, 2 ** round(math.log2(max(wanted, 1.0))))))


def method_passes(heatmaps: dict, side: int) -> float:
    """Forward-pass equivalents per transformed input of the configured heatmap methods (with the
    methods they reuse, each once): ``attribution`` ``Method.passes`` with the config's parameters."""
    todo, seen = list(heatmaps.get("methods") or []), {}
    while todo:
        name = todo.pop()
        if name not in seen:
            seen[name] = registered(name)
            todo += list(seen[name].requires)
    params = heatmaps.get("params") or {}
    return sum(m.passes({**m.defaults, **params.get(name, {})}, side) for name, m in seen.items())


def study_seconds_per_image(spec: dict, cfg: dict) -> float | None:
    """``seconds_per_image`` of a validated config's model ``spec`` in its study (the transforms,
    heatmap methods and Lie derivative of ``cfg``), or None when the model's cost is unknown."""
    macs = forward_macs(spec, cfg.get("datasets", {}))
    if macs is None:
        return None
    side = _input_side(spec, cfg.get("datasets", {}))
    rows = len(build_transforms(cfg["transforms"]))
    passes = 1.0 + method_passes(cfg.get("heatmaps", {}), side)
    if cfg.get("lie_derivative"):
        generators = generators_of(build_transforms(cfg["transforms"]))
        passes += LIE_PASSES_PER_GENERATOR * len(generators) / rows
    return seconds_per_image(macs, rows, passes)


def _input_side(spec: dict, datasets: dict) -> int:
    """The model input's side for the methods whose passes depend on it (occlusion): a guess where
    the config does not say (224, ImageNet's)."""
    if spec.get("source") == "load":
        return int(spec.get("input_size") or 224)
    return (_dataset_input(datasets, spec.get("dataset")) or (224, 3))[0]


def _given(spec: dict, cfg: dict):
    """The model's ``images_per_job``, else the config's: a number or "auto"."""
    return spec.get("images_per_job", cfg.get("images_per_job", "auto"))


def images_per_job(spec: dict, cfg: dict) -> int:
    """A model's measure shard size: ``models.<m>.images_per_job``, else ``images_per_job`` when it is
    a number, else (``auto``) from the model's estimated cost (``auto_images_per_job``); with CKA on,
    ``auto`` gives at least one CKA minibatch (``cka.batch_images``) a shard."""
    given = _given(spec, cfg)
    if given != "auto":
        return int(given)
    auto = auto_images_per_job(study_seconds_per_image(spec, cfg))
    cka = cfg.get("cka") or {}
    return max(auto, int(cka.get("batch_images") or 1)) if cka.get("enabled") else auto


def unknown_cost(models: dict, cfg: dict) -> list[str]:
    """The models whose ``auto`` shard size falls back to FALLBACK_IMAGES_PER_JOB (their cost per
    image cannot be estimated before they exist)."""
    return [
        m for m, spec in models.items() if _given(spec, cfg) == "auto" and study_seconds_per_image(spec, cfg) is None
    ]


def shard_plan(images: list, cfg: dict, models: list[str]) -> dict[str, dict[str, list]]:
    """Each model's measure shards ({model: {shard name: images}}, ``config.assign_shards``), each
    model's count from its ``images_per_job``. With CKA on and more than one model, every model gets
    the largest count: CKA pairs the models' minibatches of the same images, and a minibatch is
    made within one shard (``stages.cka``), so the models must split the images alike."""
    counts = {m: shard_count(len(images), images_per_job(cfg["models"][m], cfg)) for m in models}
    if (cfg.get("cka") or {}).get("enabled") and len(models) > 1:
        counts = dict.fromkeys(models, max(counts.values()))
    return {m: assign_shards(images, n_shards=counts[m]) for m in models}

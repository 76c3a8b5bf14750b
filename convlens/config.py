"""Config validation and the facts the workflow derives from it (image list, shards, digest).

No TensorFlow here: this runs in Snakemake's own process while the DAG is built.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from convlens.archive import model_problem
from convlens.attribution.registry import DEFAULT_METHODS, METHODS, check_method_params
from convlens.config_schema import fill_defaults, schema_order
from convlens.data import split_sizes
from convlens.errors import InputError, did_you_mean
from convlens.image_folders import config_label_problem, folder_images, sanitize_id
from convlens.models import APPLICATION_PREPROCESS
from convlens.transform_groups import parse_groups
from convlens.transform_kinds import DEFAULT_TRANSFORMS, REGISTRY
from convlens.transforms import build_transforms, sheet_selection

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(InputError):
    """A config value that is not allowed; the message names the key path."""


@dataclass(frozen=True)
class ImageEntry:
    """One image to analyse: a stable id, where it comes from, and its label when known."""

    id: str
    dataset: str | None = None
    index: int | None = None
    path: str | None = None
    resize: str = "stretch"  # how it reaches the model's input size (config resize)
    label: str | None = None  # a folder image's class (class folder or labels.csv; convlens.image_folders)
    label_source: str | None = None  # where that label comes from, for error messages

    @property
    def source(self) -> str:
        return self.path if self.path else f"{self.dataset} test[{self.index}]"


def _key_path(path) -> str:
    out = "config"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _describe(error: jsonschema.ValidationError) -> str:
    """One line: key path, what was found, what is allowed."""
    path = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = did_you_mean(extra, allowed)
        return f"{path}: unknown key(s) {', '.join(map(repr, extra))}{hint}; allowed: {', '.join(allowed)}"
    if error.validator == "enum":
        allowed = ", ".join(map(repr, error.validator_value))
        hint = did_you_mean(str(error.instance), error.validator_value)
        return f"{path}: {error.instance!r} is not allowed{hint}; allowed: {allowed}"
    if error.validator == "oneOf" and isinstance(error.instance, dict):
        options = [" or ".join(s.get("required", [])) for s in error.validator_value if "required" in s]
        if options:
            return f"{path}: give exactly one of {', '.join(options)}"
        return f"{path}: {error.instance!r} matches none of the allowed forms ({error.schema.get('description', '')})"
    if error.validator == "oneOf":
        # a list item outside an enum (e.g. an unknown name in heatmaps.methods): name the item, list the enum
        deeper = [e for e in error.context if e.validator == "enum" and len(e.absolute_path) > len(error.absolute_path)]
        if deeper:
            item = deeper[0]
            others = [repr(s["const"]) for s in error.validator_value if "const" in s]
            return (
                f"{_key_path(item.absolute_path)}: {item.instance!r} is not allowed"
                f"{did_you_mean(str(item.instance), item.validator_value)}; allowed: "
                f"{', '.join(map(repr, item.validator_value))}"
                + (f" (or {' or '.join(others)} in place of the list)" if others else "")
            )
        return f"{path}: {error.instance!r} is not allowed; {error.schema.get('description', '').strip()}"
    return f"{path}: {error.message}"


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    """The config schema, with the transform kinds filled in from ``convlens.transform_kinds`` (the file
    names none): see ``transform_entry_schema``."""
    with open(path) as fh:
        schema = yaml.safe_load(fh)
    transform_entry_schema(schema["properties"]["transforms"])
    return schema


def transform_entry_schema(transforms: dict) -> None:
    """Fill the registry's facts into the schema of ``transforms``: the default study, the ``kind`` enum
    (registry order, as error messages list it), every kind's parameters (a number, or an integer;
    with the bounds its kinds share: a bound only some of them have is left to ``transforms.check_spec``,
    which checks each kind's own) and range options (their values)."""
    transforms["default"] = copy.deepcopy(list(DEFAULT_TRANSFORMS))
    properties = transforms["items"]["properties"]
    properties["kind"]["enum"] = list(REGISTRY)
    params: dict[str, list] = {}
    for kind in REGISTRY.values():
        for p in kind.params:
            params.setdefault(p.name, []).append((kind.name, p))
        for option in kind.range_options:
            properties[option.name] = {
                "enum": list(option.values),
                "description": f"{kind.name} with range: one of {', '.join(option.values)} (default {option.default}).",
            }
    for name, uses in params.items():
        bounds = {_bounds(p) for _, p in uses}
        properties[name] = {
            "type": "integer" if all(p.integer for _, p in uses) else "number",
            **(dict(bounds.pop()) if len(bounds) == 1 else {}),
            "description": "; ".join(f"{k}: {p.allowed() or 'any number'}" for k, p in uses) + " (config/README.md).",
        }


def _bounds(p) -> tuple:
    """A parameter's bounds as JSON Schema keywords."""
    out = []
    if p.low is not None:
        out.append(("exclusiveMinimum" if p.above else "minimum", p.low))
    if p.high is not None:
        out.append(("maximum", p.high))
    return tuple(out)


def validate(config: dict, schema: dict | None = None, base_dir: Path | str = ".") -> dict:
    """Return a copy of ``config`` with defaults filled in, or raise ConfigError naming the key.

    Checks the JSON Schema first, then what a schema cannot say: references between sections,
    files that must exist, and per-kind required keys.
    """
    schema = schema or load_schema()
    cfg = copy.deepcopy(dict(config))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        # the deepest error is the most specific one for a user
        deepest = max(errors, key=lambda e: len(e.absolute_path))
        raise ConfigError(_describe(deepest))
    fill_defaults(cfg, schema)
    _check_methods(cfg["heatmaps"])
    _check_semantics(cfg, Path(base_dir))
    return schema_order(cfg, schema)


def _require(cfg_section: dict, keys: list[str], where: str, why: str):
    for key in keys:
        if key not in cfg_section:
            raise ConfigError(f"{where}.{key}: required {why}")


def _check_semantics(cfg: dict, base: Path):
    _check_datasets(cfg["datasets"], base)
    _check_comparison(cfg)  # first: the model-file checks read comparison.reference and comparison.layers
    for name, model in cfg["models"].items():
        _check_model(name, model, cfg, base)
    for i, entry in enumerate(cfg["images"]):
        _check_image_entry(entry, f"config.images[{i}]", cfg["datasets"], base)
    for i, spec in enumerate(cfg["transforms"]):
        _check_range(spec, f"config.transforms[{i}]")
    _check_method_params(cfg["heatmaps"]["params"])
    try:
        build_transforms(cfg["transforms"])
        sheet_selection(cfg["transforms"], cfg["report"]["sheet_transforms"])
    except InputError as exc:
        raise ConfigError(str(exc)) from None


def _check_datasets(datasets: dict, base: Path) -> None:
    for name, ds in datasets.items():
        where = f"config.datasets.{name}"
        _check_id(name, f"config.datasets: name {name!r}")
        if ds["kind"] == "folder":
            _require(ds, ["train_dir", "test_dir"], where, "for kind folder")
            for key in ("train_dir", "test_dir"):
                if not (base / ds[key]).is_dir():
                    raise ConfigError(f"{where}.{key}: folder {ds[key]!r} does not exist")
        if ds["kind"] == "mnist":
            _require(ds, ["path"], where, "for kind mnist")
            if not (base / ds["path"]).is_file():
                raise ConfigError(f"{where}.path: file {ds['path']!r} does not exist (mnist.npz in the Keras layout)")


def _check_model(name: str, model: dict, cfg: dict, base: Path) -> None:
    where, datasets = f"config.models.{name}", cfg["datasets"]
    _check_id(name, f"config.models: name {name!r}")
    _check_training_variant(model, where, datasets, base)
    if model["source"] == "train":
        _require(model, ["architecture", "dataset"], where, "for source train")
        if model["dataset"] not in datasets:
            raise ConfigError(
                f"{where}.dataset: {model['dataset']!r} is not a key of config.datasets "
                f"(defined: {', '.join(datasets)})"
            )
        return
    if ("path" in model) == ("application" in model):
        raise ConfigError(f"{where}: source load needs exactly one of path or application")
    if "path" in model:
        if not str(model["path"]).endswith((".keras", ".h5")):
            raise ConfigError(f"{where}.path: {model['path']!r} must end in .keras or .h5")
        if not (base / model["path"]).is_file():
            raise ConfigError(f"{where}.path: file {model['path']!r} does not exist")
        problem = model_file_problem(base / model["path"])
        if problem:
            raise ConfigError(f"{where}.path: {model['path']!r} {problem}")
        problem = model_problem(name, model, cfg, base)
        if problem:
            raise ConfigError(problem)
    weights = model.get("weights")
    if weights not in (None, "imagenet") and not (base / weights).is_file():
        raise ConfigError(f"{where}.weights: file {weights!r} does not exist; allowed: imagenet, null or a file path")


def _check_image_entry(entry: dict, where: str, datasets: dict, base: Path) -> None:
    if "dataset" in entry:
        _check_dataset_images(entry, where, datasets)
    elif "folder" in entry:
        if not (base / entry["folder"]).is_dir():
            raise ConfigError(f"{where}.folder: folder {entry['folder']!r} does not exist")
        try:
            found = folder_images(entry["folder"], base)
        except InputError as exc:
            raise ConfigError(f"{where}.folder: {exc}") from None
        if not found:
            raise ConfigError(f"{where}.folder: no image files in {entry['folder']!r} or its class folders")
    elif not (base / entry["file"]).is_file():
        raise ConfigError(f"{where}.file: file {entry['file']!r} does not exist")


def _check_dataset_images(entry: dict, where: str, datasets: dict) -> None:
    if entry["dataset"] not in datasets:
        raise ConfigError(f"{where}.dataset: {entry['dataset']!r} is not a key of config.datasets")
    if ("count" in entry) == ("indices" in entry):
        raise ConfigError(f"{where}: with dataset give exactly one of count or indices")
    sizes = split_sizes(datasets[entry["dataset"]])
    if sizes is not None:
        n_test = sizes[1]
        wanted = entry.get("indices") or range(entry["count"])
        too_big = [j for j in wanted if j >= n_test]
        if too_big:
            raise ConfigError(f"{where}: index {too_big[0]} is past the end of the test split ({n_test} images)")


MAX_RANGE_STEPS = 200


def _check_range(spec: dict, where: str) -> None:
    """A range's shape: increasing, not too long, and what its kind refuses (``Kind.range_problem``)."""
    if "range" not in spec:
        return
    where += ".range"
    start, stop, step = spec["range"]
    if step <= 0 or stop < start:
        raise ConfigError(f"{where}: [{start}, {stop}, {step}] must have start <= stop and step > 0")
    kind = REGISTRY[spec["kind"]]
    problem = kind.range_problem(start, stop, step) if kind.range_problem is not None else None
    if problem:
        raise ConfigError(f"{where}: [{start}, {stop}, {step}] {problem}")
    if (stop - start) / step > MAX_RANGE_STEPS:
        raise ConfigError(f"{where}: [{start}, {stop}, {step}] gives more than {MAX_RANGE_STEPS} transforms")


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def model_file_problem(path: Path) -> str | None:
    """Why a model file cannot be a Keras model, from its first bytes (no TensorFlow): a ``.keras``
    file is a zip archive holding config.json, an ``.h5`` file starts with the HDF5 signature."""
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes)"
    if path.suffix == ".keras":
        if not zipfile.is_zipfile(path):
            return "is not a Keras archive (a .keras file is a zip archive; save it with model.save('x.keras'))"
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError) as exc:
            return f"is not a readable Keras archive ({exc})"
        if "config.json" not in names:
            return "is a zip archive without config.json, not a Keras archive (save it with model.save('x.keras'))"
    elif path.suffix == ".h5":
        with open(path, "rb") as fh:  # the signature is at 0 or, after a user block, at 512, 1024, 2048, ...
            head = fh.read(4096)
        if not any(head[at : at + 8] == HDF5_SIGNATURE for at in (0, 512, 1024, 2048)):
            return "is not an HDF5 file (a .h5 model starts with the HDF5 signature)"
    return None


TRAIN_ONLY = ("augment", "antialias", "base", "base_weights", "base_options", "fine_tune")
TRANSFER_ONLY = ("base", "base_weights", "base_options", "fine_tune")


def _check_training_variant(model: dict, where: str, datasets: dict, base: Path) -> None:
    """Augmentation, anti-aliasing and transfer keys: only where they apply, with values that make sense."""
    given = [k for k in TRAIN_ONLY if k in model]
    if model["source"] != "train":
        if given:
            raise ConfigError(f"{where}.{given[0]}: only for source train (a loaded model is not trained here)")
        return
    arch = model.get("architecture")
    if arch != "transfer":
        wrong = [k for k in TRANSFER_ONLY if k in model]
        if wrong:
            raise ConfigError(f"{where}.{wrong[0]}: only for architecture transfer")
    else:
        if model.get("antialias"):
            raise ConfigError(
                f"{where}.antialias: only for shapes_cnn and mnist_cnn (a transfer base keeps its own downsampling)"
            )
        _require(model, ["base"], where, "for architecture transfer")
        if model["base"] not in APPLICATION_PREPROCESS:
            raise ConfigError(
                f"{where}.base: {model['base']!r} is not allowed; allowed: {', '.join(APPLICATION_PREPROCESS)}"
            )
        weights = model.get("base_weights")
        if weights not in (None, "imagenet"):
            if not str(weights).endswith((".h5", ".keras")):
                raise ConfigError(
                    f"{where}.base_weights: {weights!r} must be null, imagenet or a .weights.h5, .h5 or .keras file"
                )
            if not (base / weights).is_file():
                raise ConfigError(
                    f"{where}.base_weights: file {weights!r} does not exist; allowed: null, imagenet or a file path"
                )
        kind = datasets.get(model.get("dataset"), {}).get("kind")
        if kind in ("mnist", "digits"):
            raise ConfigError(
                f"{where}.dataset: transfer needs RGB images (shapes or folder), not the grayscale {kind} dataset"
            )
    aug = model.get("augment")
    if aug is not None:
        low, high = aug["scale"]
        if low > high:
            raise ConfigError(f"{where}.augment.scale: [{low}, {high}] must have low <= high")
        if not (aug["shift_px"] or aug["rotate_deg"] or aug["hflip"] or aug["vflip"] or low != 1 or high != 1):
            raise ConfigError(f"{where}.augment: changes nothing; give shift_px, rotate_deg, scale, hflip or vflip")


RESERVED_FOLDERS = ("comparison", "report", "data", "logs", "benchmarks")  # results/<name>/ of the run itself


def _check_comparison(cfg: dict) -> None:
    """Model names that are not the run's own folders; the reference a model (default: the first)."""
    for name in cfg["models"]:
        if name in RESERVED_FOLDERS:
            raise ConfigError(
                f"config.models: name {name!r} is reserved (results/{name}/ is the run's own folder); "
                f"reserved: {', '.join(RESERVED_FOLDERS)}"
            )
    comparison = cfg["comparison"]
    if comparison["reference"] is None:
        comparison["reference"] = next(iter(cfg["models"]))
    elif comparison["reference"] not in cfg["models"]:
        raise ConfigError(
            f"config.comparison.reference: {comparison['reference']!r} is not a key of config.models "
            f"(defined: {', '.join(cfg['models'])})"
        )
    try:
        parse_groups(comparison["groups"])
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    for name in comparison.get("layers", {}):
        if name not in cfg["models"]:
            raise ConfigError(
                f"config.comparison.layers: {name!r} is not a key of config.models "
                f"(defined: {', '.join(cfg['models'])})"
            )


def _check_methods(heatmaps: dict) -> None:
    """heatmaps.methods against the method registry (the schema names no method), its default from it."""
    wanted = heatmaps.setdefault("methods", list(DEFAULT_METHODS))
    for i, name in enumerate([] if wanted == "all" else wanted):
        if not isinstance(name, str) or name not in METHODS:
            raise ConfigError(
                f"config.heatmaps.methods[{i}]: {name!r} is not allowed{did_you_mean(str(name), METHODS)}; allowed: "
                f"{', '.join(map(repr, METHODS))} (or 'all' in place of the list)"
            )


def _check_method_params(params: dict) -> None:
    for name, given in params.items():
        where = f"config.heatmaps.params.{name}"
        if name not in METHODS:
            hint = did_you_mean(name, METHODS)
            raise ConfigError(f"{where}: {name!r} is not a method{hint}; methods: {', '.join(METHODS)}")
        if not isinstance(given, dict):
            raise ConfigError(f"{where}: needs a mapping of parameter names to values, not {given!r}")
        try:
            check_method_params(name, given, where)
        except InputError as exc:
            raise ConfigError(str(exc)) from None


def _check_id(name: str, where: str):
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"{where} may use only letters, digits, '_', '.', '-' (it becomes a folder name)")


def list_images(cfg: dict, base: Path | str = ".") -> list[ImageEntry]:
    """Every image the config names, in config order, with unique ids."""
    base = Path(base)
    entries: list[ImageEntry] = []
    for entry in cfg["images"]:
        mode = entry.get("resize") or cfg.get("resize", "stretch")
        if "dataset" in entry:
            indices = entry.get("indices") or list(range(entry["count"]))
            entries += [
                ImageEntry(f"{entry['dataset']}-test-{j:04d}", dataset=entry["dataset"], index=j, resize=mode)
                for j in indices
            ]
        elif "folder" in entry:
            entries += [
                ImageEntry(f.id, path=f.path, resize=mode, label=f.label, label_source=f.label_source)
                for f in folder_images(entry["folder"], base)
            ]
        else:
            entries.append(ImageEntry(sanitize_id(Path(entry["file"]).stem), path=entry["file"], resize=mode))
    seen: dict[str, ImageEntry] = {}
    for e in entries:
        if e.id in seen:
            raise ConfigError(
                f"config.images: {e.source!r} and {seen[e.id].source!r} both give image id {e.id!r}; "
                "rename one file or list it once"
            )
        seen[e.id] = e
    problem = config_label_problem(cfg, entries, base)
    if problem:
        raise ConfigError(problem)
    return entries


def shard_count(n_images: int, images_per_job: int) -> int:
    """Number of shards: the next power of two at or above n_images / images_per_job.

    A power of two keeps shard membership stable: only when the image count crosses a doubling
    does every shard change; otherwise adding an image changes just the shard it hashes into.
    """
    needed = max(1, -(-n_images // images_per_job))
    return 1 << (needed - 1).bit_length()


def shard_of(image_id: str, n_shards: int) -> int:
    """The shard an image belongs to: a stable hash of its id."""
    digest = hashlib.sha1(image_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % n_shards


def assign_shards(
    images: list[ImageEntry], images_per_job: int | None = None, n_shards: int | None = None
) -> dict[str, list[ImageEntry]]:
    """Shard name -> images in it (empty shards are left out); ``n_shards`` (a power of two) or as
    many as ``shard_count`` gives for ``images_per_job``."""
    n = n_shards or shard_count(len(images), images_per_job)
    width = len(str(n - 1))
    shards: dict[str, list[ImageEntry]] = {}
    for img in images:
        shards.setdefault(f"s{shard_of(img.id, n):0{width}d}", []).append(img)
    return dict(sorted(shards.items()))


def digest(cfg: dict) -> str:
    """SHA-256 of the validated config in canonical JSON: the same run gives the same digest."""
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()

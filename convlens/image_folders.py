"""Image folders of the config's ``images`` section: their files, image ids and labels.

A folder entry takes every image file in the folder and in its subfolders one level down. An image
in a subfolder is labelled with the subfolder's name (``photos/<class>/<image>``, the layout of a
class tree); a ``labels.csv`` in the folder (columns ``file``, the path inside the folder, and
``class``) labels the files it lists (an empty class: no label). A file labelled both ways must agree.
No dataset and no training folder are needed: the labels reach the measure step with the images, and
the measured ``correct`` gives accuracy.

Image ids are the files' names without the suffix (``sanitize_id``: characters other than letters,
digits, ``_``, ``-``, ``.`` become ``_``). Two files of one folder entry whose names give the same id
in different class folders get their class as a prefix (``cat_001``, ``dog_001``).

A label must be one of the model's classes: ``label_problem`` says why not (with a did-you-mean);
``convlens.config.list_images`` checks it where the config knows the classes and the measure step
for every model. Pure Python (csv, pathlib): no TensorFlow, no pandas.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from convlens.data import IMAGE_SUFFIXES, SHAPE_CLASSES
from convlens.errors import InputError, did_you_mean

LABELS_CSV = "labels.csv"
DIGIT_CLASSES = tuple(str(d) for d in range(10))  # digits and mnist


@dataclass(frozen=True)
class FolderImage:
    """One image of a folder entry: its path as the config names it (folder/file), id and label."""

    path: str
    id: str
    label: str | None = None
    label_source: str | None = None  # where the label comes from: its class folder or labels.csv


def sanitize_id(text: str) -> str:
    """A file-name-safe id: letters, digits, '_', '-', '.'; anything else becomes '_'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip(".") or "image"


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def folder_files(root: Path) -> list[tuple[str, str | None]]:
    """(path inside the folder, class folder or None) of every image in ``root`` and one level down, sorted."""
    found = []
    for p in sorted(root.iterdir()):
        if is_image(p):
            found.append((p.name, None))
        elif p.is_dir() and not p.name.startswith("."):
            found += [(f"{p.name}/{q.name}", p.name) for q in sorted(p.iterdir()) if is_image(q)]
    return sorted(found)


def read_labels_csv(path: Path, shown: str, files: set[str]) -> dict[str, str]:
    """File (inside the folder) -> class from a labels.csv; a one-line InputError naming ``shown`` (the
    csv as the config's folder names it) for missing columns, unknown or repeated files."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        if not {"file", "class"} <= set(columns):
            raise InputError(f"{shown}: needs the columns file and class (found: {', '.join(columns) or 'none'})")
        labels: dict[str, str] = {}
        for n, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            name = row["file"]
            if name not in files:
                raise InputError(
                    f"{shown}: line {n} names {name!r}, not an image in the folder{did_you_mean(name, sorted(files))}"
                )
            if name in labels:
                raise InputError(f"{shown}: line {n} names {name!r} a second time")
            if row["class"]:
                labels[name] = row["class"]
    return labels


def folder_images(folder: str, base: Path) -> list[FolderImage]:
    """The images of a folder entry (``folder`` as the config gives it, relative to ``base``) with their
    ids and labels, sorted by path inside the folder: a ``labels.csv`` in the folder decides the labels
    when there is one (a file it does not list has none; subfolders are only places, so a folder of
    non-class subfolders takes a labels.csv, even one with no row); else each subfolder's name is its
    images' class."""
    root = base / folder
    found = folder_files(root)
    csv_path = root / LABELS_CSV
    shown = str(Path(folder) / LABELS_CSV)
    listed = read_labels_csv(csv_path, shown, {rel for rel, _ in found}) if csv_path.is_file() else {}
    stems: dict[str, int] = {}
    for rel, _ in found:
        stems[sanitize_id(Path(rel).stem)] = stems.get(sanitize_id(Path(rel).stem), 0) + 1
    images = []
    for rel, cls in found:
        if csv_path.is_file():  # the labels.csv decides (even with no row): subfolders are only places then
            label, source = listed.get(rel), (shown if rel in listed else None)
        else:  # a subfolder's name is its images' class
            label, source = cls, (str(Path(folder) / cls) + "/" if cls else None)
        stem = sanitize_id(Path(rel).stem)
        image_id = sanitize_id(f"{cls}_{Path(rel).stem}") if cls is not None and stems[stem] > 1 else stem
        images.append(FolderImage(str(Path(folder) / rel), image_id, label, source))
    return images


def known_classes(model: dict, datasets: dict, base: Path) -> list[str] | None:
    """A model's class names where the config tells them without TensorFlow: a loaded model's
    ``class_names``, a trained model's dataset's classes; None when unknown here."""
    if model.get("source") == "load":
        return list(model["class_names"]) if model.get("class_names") else None
    ds = datasets.get(model.get("dataset"), {})
    if ds.get("kind") == "shapes":
        return list(SHAPE_CLASSES)
    if ds.get("kind") in ("digits", "mnist"):
        return list(DIGIT_CLASSES)
    if ds.get("kind") == "folder" and (base / ds["train_dir"]).is_dir():
        return sorted(p.name for p in (base / ds["train_dir"]).iterdir() if p.is_dir())
    return None


def label_problem(path: str, label: str, source: str | None, classes: list[str], model: str) -> str | None:
    """Why an image's label cannot be scored against a model (one line, naming the file, the class and
    where it came from), or None when the label is one of the model's classes."""
    if label in classes:
        return None
    shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
    return (
        f"{path}: class {label!r} (from {source or 'its label'}) is not a class of model {model}"
        f"{did_you_mean(label, classes)}; its classes: {shown}"
    )


def config_label_problem(cfg: dict, entries: list, base: Path) -> str | None:
    """The first folder image (``config.ImageEntry``) whose label is not a class of a model whose classes
    the config tells (``known_classes``), as ``label_problem`` says it; None when every label fits."""
    for name, model in cfg.get("models", {}).items():
        classes = known_classes(model, cfg.get("datasets", {}), base)
        for e in entries if classes else []:
            problem = e.label is not None and label_problem(e.path, e.label, e.label_source, classes, name)
            if problem:
                return problem
    return None


def check_labels(entries: list[dict], classes: list[str], model: str) -> None:
    """Raise a one-line InputError for the first image entry (``path``, ``label``, ``label_source``)
    whose label is not one of ``classes``."""
    for entry in entries:
        if entry.get("label") is not None and entry.get("path"):
            problem = label_problem(entry["path"], entry["label"], entry.get("label_source"), classes, model)
            if problem:
                raise InputError(problem)

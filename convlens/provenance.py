"""Which files a run describes: SHA-256 and size of every model file, and one digest of the image set
(its ids and each image's content), for run.json and the report's run summary. No TensorFlow here.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

CHUNK = 1 << 20


def file_digest(path: Path | str) -> dict:
    """``{"path", "sha256", "bytes"}`` of a file, read in 1 MiB chunks (memory flat in its size)."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return {"path": str(path), "sha256": sha.hexdigest(), "bytes": size}


WEIGHTS_MEMBER = "model.weights.h5"  # where a .keras archive keeps its weights


def analysed_digest(path: Path | str) -> dict:
    """The model file a run analysed: ``{"path", "bytes"}`` and, for a .keras archive, the SHA-256 of
    its weights (``weights_sha256``). The archive's own bytes also hold its save date and Python
    object ids, so two runs that train bit-identical weights write different files; its weights are
    what the report describes. Any other file: its own SHA-256 (``sha256``)."""
    whole = file_digest(path)
    try:
        with zipfile.ZipFile(path) as archive, archive.open(WEIGHTS_MEMBER) as member:
            sha = hashlib.sha256()
            while chunk := member.read(CHUNK):
                sha.update(chunk)
    except (zipfile.BadZipFile, KeyError):
        return whole
    return {"path": whole["path"], "bytes": whole["bytes"], "weights_sha256": sha.hexdigest()}


def model_digests(config: dict, models: list[str], saved: str = "results/{model}/model/model.keras") -> dict:
    """Per model: the model file the run analysed (``saved``: the model.keras every model is saved
    as, trained or loaded) and, for a loaded model, the user's file it came from (``path``) or the
    keras.applications name and weights (``application``, ``weights``: a weights file is digested)."""
    out = {}
    for name in models:
        spec = config["models"][name]
        entry = {"source": spec["source"], "analysed": analysed_digest(saved.format(model=name))}
        if spec["source"] == "load" and spec.get("path"):
            entry["file"] = file_digest(spec["path"])
        elif spec["source"] == "load":
            entry["application"] = spec.get("application")
            weights = spec.get("weights")
            entry["weights"] = file_digest(weights) if weights not in (None, "imagenet") else weights
        out[name] = entry
    return out


def image_set_digest(images: list[dict]) -> dict:
    """One SHA-256 over the image set: a line ``id<TAB>content digest`` per image, sorted by id. An
    image file's content digest is its SHA-256; a dataset image's is its dataset file's SHA-256 and
    its index (each dataset file read once). An unreadable file counts as ``missing``. Returns
    ``{"count", "sha256", "datasets"}`` with each dataset file's digest."""
    datasets: dict[str, dict] = {}
    lines = []
    for entry in images:
        if entry.get("path"):
            try:
                content = file_digest(entry["path"])["sha256"]
            except OSError:
                content = "missing"
        else:
            npz = entry["dataset_npz"]
            if npz not in datasets:
                datasets[npz] = file_digest(npz)
            content = f"{datasets[npz]['sha256']}[{entry['index']}]"
        lines.append(f"{entry['id']}\t{content}\n")
    sha = hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()
    return {"count": len(images), "sha256": sha, "datasets": list(datasets.values())}

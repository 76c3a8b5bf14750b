"""Stage of rule make_dataset: a generated or folder dataset as one npz."""

from __future__ import annotations

from convlens.data import build_dataset
from convlens.stages.files import replacing
from convlens.stages.run import log


def make_dataset(spec: dict, seed: int, out_npz: str) -> None:
    ds = build_dataset(spec, seed)
    log.info(
        "dataset %s: %d train, %d test images of %s, classes %s",
        spec["kind"],
        len(ds.x_train),
        len(ds.x_test),
        "x".join(map(str, ds.x_train.shape[1:])),
        ", ".join(ds.class_names),
    )
    with replacing(out_npz, ".npz") as tmp:
        ds.save(tmp)

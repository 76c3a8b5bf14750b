"""CKA in the workflow (``convlens.sensitivity.cka``): each measure job's per-minibatch HSIC_1 values
and reference Grams (cka.npz per shard), the model's CKA invariance with bootstrap intervals over
minibatches (rule cka: cka.csv, cka_grams.npz, layers.csv), and layer × layer CKA between every model
and the reference (rule cka_comparison: results/comparison/cka_layers.csv, layer_pairs.csv, figure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from convlens.core.graph import build_probe
from convlens.core.grids import layer_grids
from convlens.errors import InputError
from convlens.plots import FIGURE_WIDTH_IN, MIN_FONT_PT, pyplot, save_figure
from convlens.sensitivity import cka, layer_match
from convlens.stages.files import replacing, savez, write_json
from convlens.stages.run import LOG_FILE_ONLY, log
from convlens.transform_labels import label_of

FLOAT_FORMAT = "%.7g"


class ShardCKA:
    """Collects a measure job's minibatches: ``add`` per model call, ``save`` once."""

    def __init__(self, block: int):
        self.block = block
        self.hsic, self.grams, self.ids = [], [], []

    def add(self, grams: list[np.ndarray], ids: list[str]) -> None:
        hsic, refs, parts = cka.chunk_hsic(grams, len(ids))
        self.hsic.extend(hsic)
        self.grams.extend(refs.astype(np.float32))
        self.ids.extend([ids[p] + [""] * (self.block - len(ids[p])) for p in parts])

    def save(self, path: str, layers: list[str], transforms: list[str], structure: pd.DataFrame) -> None:
        """npz: hsic (M, 3, layers, T) = kl, kk, ll; grams (M, layers, b, b) of the reference images
        (NaN-padded); ids (M, b) ("" padding); sizes (M,); layers, transforms; the layers' structure."""
        L, T, b = len(layers), len(transforms), self.block
        savez(
            path,
            hsic=np.stack(self.hsic) if self.hsic else np.zeros((0, 3, L, T)),
            grams=np.stack(self.grams) if self.grams else np.zeros((0, L, b, b), np.float32),
            ids=np.array(self.ids, dtype=str).reshape(-1, b),
            sizes=np.array([sum(1 for i in row if i) for row in self.ids], np.int64),
            layers=np.array(layers, dtype=str),
            transforms=np.array(transforms, dtype=str),
            **{c: structure[c].to_numpy() for c in layer_match.STRUCTURE_COLUMNS if c != "layer"},
        )


def structure_of(analysis) -> pd.DataFrame:
    """The probed layers' structure (``layer_match.STRUCTURE_COLUMNS``) of an ``Analysis``."""
    return layer_structure(analysis.model, analysis.layers, analysis.analyzer.probe.outputs[: len(analysis.layers)])


def layer_structure(model, layers: list[str], outputs=None) -> pd.DataFrame:
    """Each layer's map (height, width, channels) and stride in input pixels (``core.grids``);
    ``outputs``: the layers' symbolic outputs when a probe has them already."""
    grids = layer_grids(model, layers)
    if outputs is None:
        outputs = build_probe(model, layers, None).outputs[: len(layers)]
    return pd.DataFrame(
        [
            {"layer": la, "height": grids[la].height, "width": grids[la].width, "channels": int(o.shape[-1])}
            | {"stride": grids[la].ay}
            for la, o in zip(layers, outputs, strict=True)
        ],
        columns=layer_match.STRUCTURE_COLUMNS,
    )


def _read_shards(paths: list[str]) -> dict:
    parts: dict[str, list] = {"hsic": [], "grams": [], "ids": [], "sizes": []}
    meta = {}
    for p in paths:
        with np.load(p, allow_pickle=False) as npz:
            for k in parts:
                parts[k].append(npz[k])
            meta = {k: npz[k] for k in ("layers", "transforms", "height", "width", "channels", "stride")}
    if not meta:
        raise InputError("no measure shard to read CKA sums from")
    merged = {k: np.concatenate(v) for k, v in parts.items()}
    return {**merged, **meta}


def cka_study(shards: list[str], n_boot: int, level: float, seed: int, out: dict) -> None:
    """The model's CKA invariance: per layer × transform, CKA between φ(X) and φ(TX) over every
    minibatch of every shard, with its bootstrap interval (minibatches resampled). Writes out["table"]
    (cka.csv), out["grams"] (the reference Grams, for the comparison), out["layers"] (structure)."""
    data = _read_shards(shards)
    layers, transforms = [str(x) for x in data["layers"]], [str(x) for x in data["transforms"]]
    hsic, M = data["hsic"], len(data["hsic"])
    shape = (len(layers), len(transforms))
    if M == 0:  # too few images per shard: the table says so with NaN, the run goes on
        log.warning(
            "CKA: no shard has a minibatch of 4 or more readable images (or config cka.enabled is false); "
            "cka.csv is NaN"
        )
        value = low = high = np.full(shape, np.nan)
    else:
        value, low, high = cka.bootstrap_cka(hsic[:, 0], hsic[:, 1], hsic[:, 2], n_boot, seed, level)
    rows = pd.DataFrame(
        {
            "layer": np.repeat(layers, len(transforms)),
            "transform": np.tile(transforms, len(layers)),
            "cka": value.reshape(shape).ravel(),
            "ci_low": low.reshape(shape).ravel(),
            "ci_high": high.reshape(shape).ravel(),
            "minibatches": M,
            "images": int(data["sizes"].sum()),
        }
    )
    with replacing(out["table"]) as tmp:
        rows.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
    structure = pd.DataFrame({"layer": layers, **{c: data[c] for c in ("height", "width", "channels", "stride")}})
    with replacing(out["layers"]) as tmp:
        structure.to_csv(tmp, index=False)
    savez(out["grams"], grams=data["grams"], ids=data["ids"], sizes=data["sizes"], layers=data["layers"])
    if "figure" in out:
        plot_invariance(rows, layers, Path(out["figure"]), level)
    log.info("CKA: %d layers × %d transforms over %d minibatches (%d images)", *shape, M, int(data["sizes"].sum()))


def pair_models(
    structures: dict[str, str], reference: str, explicit: dict, console: bool = True
) -> tuple[pd.DataFrame, list[str]]:
    """Every model's layers paired with the reference's (``layer_match.pair_layers``): a table (model,
    layer, reference_layer, how; reference_layer empty when unpaired) and the warnings (logged; on the
    console too unless ``console`` is False: another rule says them there)."""
    ref = layer_match.layers_of(pd.read_csv(structures[reference]))
    rows, warnings = [], []
    for model, path in structures.items():
        if model == reference:
            continue
        mine = layer_match.layers_of(pd.read_csv(path))
        try:
            pairs, how, said = layer_match.pair_layers(ref, mine, (explicit or {}).get(model), model)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        warnings += said
        rows += [
            {"model": model, "layer": la.name, "reference_layer": pairs.get(la.name, ""), "how": how.get(la.name, "")}
            for la in mine
        ]
    for w in warnings:
        log.warning("%s", w, extra={} if console else LOG_FILE_ONLY)
    return pd.DataFrame(rows, columns=["model", "layer", "reference_layer", "how"]), warnings


def _minibatches(path: str) -> tuple[dict, list[np.ndarray], list[str]]:
    with np.load(path, allow_pickle=False) as npz:
        keys = {tuple(str(i) for i in row if i): m for m, row in enumerate(npz["ids"])}
        grams = [npz["grams"][:, j] for j in range(len(npz["layers"]))]
        return keys, grams, [str(x) for x in npz["layers"]]


def compare_cka(grams: dict[str, str], structures: dict[str, str], reference: str, options: dict, out: dict) -> None:
    """Layer × layer CKA between every model and the reference on the minibatches both measured (the
    same images), the layer pairs, and a heat map per model (out: table, pairs, figure, manifest)."""
    # the comparison rule, which runs whenever two models do, says the pairing warnings on the console
    pairs, warnings = pair_models(structures, reference, options.get("layers") or {}, console=False)
    with replacing(out["pairs"]) as tmp:
        pairs.to_csv(tmp, index=False)
    ref_keys, ref_grams, ref_layers = _minibatches(grams[reference])
    rows, panels = [], {}
    for model, path in grams.items():
        keys, mine, layers = _minibatches(path)
        shared = [k for k in ref_keys if k in keys]
        if not shared:
            warnings.append(f"{model}: no minibatch of the same images as {reference}; no CKA between their layers")
            continue
        sizes = np.array([len(k) for k in shared])
        a = [g[[ref_keys[k] for k in shared]] for g in ref_grams]
        b = [g[[keys[k] for k in shared]] for g in mine]
        matrix = cka.cross_cka(a, b, sizes)
        panels[model] = (matrix, layers)
        for i, rl in enumerate(ref_layers):
            for j, la in enumerate(layers):
                rows.append({"model": model, "layer": la, "reference": reference, "reference_layer": rl})
                rows[-1].update(cka=matrix[i, j], minibatches=len(shared), images=int(sizes.sum()))
    table = pd.DataFrame(
        rows, columns=["model", "layer", "reference", "reference_layer", "cka", "minibatches", "images"]
    )
    with replacing(out["table"]) as tmp:
        table.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
    plot_cross(panels, ref_layers, reference, Path(out["figure"]))
    write_json(out["manifest"], {"reference": reference, "models": list(panels), "warnings": warnings})


CKA_CELL_IN = 0.22  # a CKA cell wide enough for "0.95" at MIN_FONT_PT


def plot_invariance(rows: pd.DataFrame, layers: list[str], path: Path, level: float) -> None:
    """CKA between the maps of the images and of their transforms against layer depth, a line per
    transform (the identity, always 1, left out) with its interval as a band."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 3.4))  # at the printed width: fonts are printed sizes
    x = np.arange(len(layers))
    for t, part in rows[rows["transform"] != "identity"].groupby("transform", sort=False):
        part = part.set_index("layer").reindex(layers)
        ax.plot(x, part["cka"], marker="o", ms=2.5, lw=1.2, label=label_of(t))
        ax.fill_between(x, part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float), alpha=0.15, lw=0)
    ax.set_xticks(x, layers, rotation=60, ha="right", fontsize=6.5)
    ax.tick_params(axis="y", labelsize=6.5)
    ax.set_ylabel("linear CKA(φ(X), φ(TX))", fontsize=7)
    ax.set_title(f"CKA invariance per layer, bands {100 * level:g} % bootstrap intervals over minibatches", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)


def plot_cross(panels: dict, ref_layers: list[str], reference: str, path: Path) -> None:
    """A heat map of layer × layer CKA per model against the reference."""
    plt = pyplot()
    n = max(1, len(panels))  # the panels side by side at the printed width: fonts are printed sizes
    panel_in = FIGURE_WIDTH_IN / n
    fig, axes = plt.subplots(1, n, figsize=(FIGURE_WIDTH_IN, min(3.6, panel_in + 1.2)), squeeze=False)
    finite = [m[np.isfinite(m)] for m, _ in panels.values()]
    low = min((float(v.min()) for v in finite if v.size), default=0.0)
    low = max(0.0, np.floor(low * 20) / 20)  # the colours span the values, in steps of 0.05
    for ax, (model, (matrix, layers)) in zip(axes[0], panels.items(), strict=False):
        image = ax.imshow(matrix, vmin=low, vmax=1, cmap="viridis", origin="lower")
        if (panel_in - 1.3) / max(matrix.shape) >= CKA_CELL_IN:  # numbers only where "0.95" fits its cell
            for (i, j), v in np.ndenumerate(matrix):
                colour = "w" if v < (low + 1) / 2 else "k"
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=MIN_FONT_PT, color=colour)
        ax.set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize=6.5)
        ax.set_yticks(range(len(ref_layers)), ref_layers, fontsize=6.5)
        ax.set_xlabel(model, fontsize=7)
        ax.set_ylabel(reference, fontsize=7)
        fig.colorbar(image, ax=ax, fraction=0.046).ax.tick_params(labelsize=6.5)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no minibatch of the same images in every model", ha="center", fontsize=8)
        axes[0][0].set_axis_off()
    fig.suptitle("Linear CKA between layers (reference images, minibatch estimator)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)

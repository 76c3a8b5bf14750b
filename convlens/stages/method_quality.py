"""Stage of rule method_quality: sanity and faithfulness of every heatmap method."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np

from convlens.attribution.explainer import Explainer
from convlens.attribution.quality import cascading_randomization, deletion_insertion
from convlens.core.head import TARGET_PREDICTED
from convlens.core.layers import iter_layers, last_conv_layer
from convlens.core.setup import open_model
from convlens.errors import InputError
from convlens.models import ModelInfo
from convlens.stages.common import heatmap_methods, load_input_image
from convlens.stages.files import write_csv, write_json
from convlens.stages.run import Progress, log


def method_quality(model_path: str, info_json: str, images: list[dict], cfg: dict, seed: int, threads: int,
                   out: dict) -> None:
    """Sanity (cascading weight randomization, Adebayo et al. 2018) and faithfulness (deletion and
    insertion curves, Petsiuk et al. 2018) of every heatmap method on untransformed images.

    Writes quality.json (per method: Spearman and SSIM to the original maps after each randomization
    step, a flag when the maps do not change, deletion and insertion areas beside a random order's),
    quality.csv (one row per method) and two plots.
    """
    model, _ = open_model(model_path, threads)
    info = ModelInfo.load(info_json)
    hcfg = cfg["heatmaps"]
    figures = Path(out["figures"])
    figures.mkdir(parents=True, exist_ok=True)
    pictures, used, cache = [], [], {}
    for entry in images:
        try:
            pictures.append(load_input_image(entry, info, cache)[0])
            used.append(entry["id"])
        except InputError as exc:
            log.warning("%s left out of the method check: %s", entry["id"], exc)
    if not pictures:
        write_json(out["json"], {"images": [], "methods": [], "rows": [],
                                  "skipped": "no images (heatmaps.quality_images: 0, or none readable)"})
        write_csv(out["csv"], [], QUALITY_COLUMNS)
        return
    cam_layer = hcfg["layer"] or last_conv_layer(model)
    methods, notes = heatmap_methods(model, hcfg["methods"], cam_layer)
    x = np.stack(pictures).astype(np.float32) / 255.0
    targets = np.full(len(x), TARGET_PREDICTED)
    common = {"preprocess_mode": info.preprocess, "cam_layer": cam_layer, "score": hcfg["score"],
              "params": hcfg["params"], "max_batch": cfg["batch_size"]}
    t0 = time.time()
    explainer = Explainer(model, methods, info.preprocess, cam_layer, hcfg["score"], hcfg["params"],
                                      cfg["batch_size"])
    log.info("method check: %d methods on %d images, then cascading randomization", len(methods), len(x))
    maps = {name: r.maps for name, r in explainer.explain(x, targets).items()}
    log.info("method check: maps of %d methods in %.1f s", len(maps), time.time() - t0)
    progress, faithful = Progress("method check, deletion/insertion: methods", len(maps)), {}
    for name, m in maps.items():
        faithful[name] = deletion_insertion(model, x, targets, m, hcfg["quality_steps"], seed=seed,
                                            preprocess_mode=info.preprocess, max_batch=cfg["batch_size"],
                                            explainer=explainer)
        progress.advance()
    log.info("deletion/insertion for %d methods on %d images in %.1f s", len(methods), len(x), time.time() - t0)
    t0 = time.time()
    # a fresh Explainer per randomized layer (its compiled functions hold weight copies): TensorFlow's
    # retracing warnings about that are expected here
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    n_layers = sum(1 for _, layer in iter_layers(model) if layer.trainable_weights)
    progress = Progress("method check, cascading randomization: layers", n_layers)
    sanity = cascading_randomization(model, x, targets, methods, seed=seed, on_step=progress.advance,
                                     original={name: np.abs(m) for name, m in maps.items()}, **common)
    log.info("cascading randomization over %d layers in %.1f s", len(sanity["layers"]), time.time() - t0)
    random = next(iter(faithful.values()))["random"]
    with warnings.catch_warnings():  # a step whose maps all became constant has no Spearman: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        spearman = {m: np.nanmean(sanity["spearman"][m], axis=1) for m in methods}
        ssim = {m: np.nanmean(sanity["ssim"][m], axis=1) for m in methods}
    rows = []
    for name in methods:
        f = faithful[name]
        rows.append({"method": name, "spearman_randomized": float(spearman[name][-1]),
                     "ssim_randomized": float(ssim[name][-1]),
                     "insensitive": sanity["insensitive"][name],
                     "deletion_auc": float(f["deletion_auc"].mean()), "insertion_auc": float(f["insertion_auc"].mean()),
                     "random_deletion_auc": float(random["deletion_auc"].mean()),
                     "random_insertion_auc": float(random["insertion_auc"].mean())})
    write_csv(out["csv"], rows, QUALITY_COLUMNS)
    plot_quality(sanity, spearman, faithful, methods, figures)
    write_json(out["json"], {"images": used, "methods": methods, "notes": notes, "layers": sanity["layers"],
                              "rows": rows, "spearman": spearman,
                              "steps": hcfg["quality_steps"], "figures": ["randomization.png", "deletion_insertion.png"]})


QUALITY_COLUMNS = ["method", "spearman_randomized", "ssim_randomized", "insensitive", "deletion_auc", "insertion_auc",
                   "random_deletion_auc", "random_insertion_auc"]


def plot_quality(sanity: dict, spearman: dict, faithful: dict, methods: list[str], figures: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(9, 3.6))
    steps = np.arange(len(sanity["layers"]) + 1)
    for i, m in enumerate(methods):
        ax.plot(steps, np.r_[1.0, spearman[m]], marker="o", ms=3, color=colours(i),
                label=m, ls="--" if sanity["insensitive"][m] else "-")
    ax.set_xticks(steps, ["original"] + [p.rsplit("/", 1)[-1] for p in sanity["layers"]], rotation=50, ha="right",
                  fontsize=7)
    ax.set_ylabel("Spearman to the original map")
    ax.set_title("Cascading randomization of the weights, from the top (Adebayo et al. 2018)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    fig.tight_layout()
    fig.savefig(figures / "randomization.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    any_f = next(iter(faithful.values()))
    for ax, kind in zip(axes, ("deletion", "insertion")):
        for i, m in enumerate(methods):
            ax.plot(any_f["fractions"], faithful[m][kind].mean(axis=0), color=colours(i), lw=1.2, label=m)
        ax.plot(any_f["fractions"], any_f["random"][kind].mean(axis=0), color="black", ls=":", lw=2, label="random")
        ax.set_title(f"{kind}: class probability as pixels are {'removed' if kind == 'deletion' else 'added'}",
                     fontsize=9)
        ax.set_xlabel("fraction of pixels, in the order of the map", fontsize=8)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(figures / "deletion_insertion.png", dpi=110)
    plt.close(fig)

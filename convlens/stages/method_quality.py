"""Stage of rule method_quality: sanity and faithfulness of every heatmap method."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from convlens.attribution.explainer import Explainer
from convlens.attribution.quality import CONSTANT_TOLERANCE, against_random, cascading_randomization, deletion_insertion
from convlens.attribution.registry import display_name, method_colour
from convlens.core.head import TARGET_PREDICTED
from convlens.core.layers import iter_layers, last_conv_layer
from convlens.core.setup import open_model
from convlens.data import load_input_image
from convlens.errors import InputError
from convlens.models import ModelInfo
from convlens.plots import FIGURE_WIDTH_IN, depth_ticks, legend_beside, pick_layers, pyplot, save_figure
from convlens.stages.common import heatmap_methods
from convlens.stages.files import write_csv, write_json
from convlens.stages.run import Progress, log


def method_quality(
    model_path: str, info_json: str, images: list[dict], cfg: dict, seed: int, threads: int, out: dict
) -> None:
    """Sanity (cascading weight randomization, Adebayo et al. 2018) and faithfulness (deletion and
    insertion curves, Petsiuk et al. 2018) of every heatmap method on untransformed images.

    Writes quality.json (per method and randomization step: mean Spearman and SSIM to the original
    maps, constant maps counted as 0 and counted in n_constant, and whether the step stayed above
    ``heatmaps.quality_spearman``; deletion and insertion areas beside a random order's with a
    bootstrap interval on the paired difference; the findings in sentences), quality.csv (one row
    per method) and two plots.
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
        write_json(
            out["json"],
            {
                "images": [],
                "methods": [],
                "rows": [],
                "findings": [],
                "skipped": "no images (heatmaps.quality_images: 0, or none readable)",
            },
        )
        write_csv(out["csv"], [], QUALITY_COLUMNS)
        return
    cam_layer = hcfg["layer"] or last_conv_layer(model)
    methods, notes = heatmap_methods(model, hcfg["methods"], cam_layer)
    x = np.stack(pictures).astype(np.float32) / 255.0
    targets = np.full(len(x), TARGET_PREDICTED)
    common = {
        "preprocess_mode": info.preprocess,
        "cam_layer": cam_layer,
        "score": hcfg["score"],
        "params": hcfg["params"],
        "max_batch": cfg["batch_size"],
    }
    t0 = time.time()
    explainer = Explainer(model, methods, info.preprocess, cam_layer, hcfg["score"], hcfg["params"], cfg["batch_size"])
    log.info("method check: %d methods on %d images, then cascading randomization", len(methods), len(x))
    maps = {name: r.maps for name, r in explainer.explain(x, targets).items()}
    log.info("method check: maps of %d methods in %.1f s", len(maps), time.time() - t0)
    progress, faithful = Progress("method check, deletion/insertion: methods", len(maps)), {}
    for name, m in maps.items():
        faithful[name] = deletion_insertion(
            model,
            x,
            targets,
            m,
            hcfg["quality_steps"],
            seed=seed,
            preprocess_mode=info.preprocess,
            max_batch=cfg["batch_size"],
            explainer=explainer,
            random_orders=RANDOM_ORDERS,
        )
        progress.advance()
    log.info("deletion/insertion for %d methods on %d images in %.1f s", len(methods), len(x), time.time() - t0)
    t0 = time.time()
    # a fresh Explainer per randomized layer (its compiled functions hold weight copies): TensorFlow's
    # retracing warnings about that are expected here
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    threshold = hcfg.get("quality_spearman", SPEARMAN_THRESHOLD)
    n_layers = sum(1 for _, layer in iter_layers(model) if layer.trainable_weights)
    progress = Progress("method check, cascading randomization: layers", n_layers)
    sanity = cascading_randomization(
        model,
        x,
        targets,
        methods,
        seed=seed,
        threshold=threshold,
        on_step=progress.advance,
        original={name: np.abs(m) for name, m in maps.items()},
        **common,
    )
    log.info("cascading randomization over %d layers in %.1f s", len(sanity["layers"]), time.time() - t0)
    random = next(iter(faithful.values()))["random"]  # the same seeded orders for every method
    versus = {name: against_random(faithful[name], random, n_boot=N_BOOT, seed=seed, level=LEVEL) for name in methods}
    rows = [quality_row(name, sanity, faithful[name], random, versus[name]) for name in methods]
    write_csv(out["csv"], rows, QUALITY_COLUMNS)
    plot_quality({**sanity, "threshold": threshold}, faithful, methods, figures)
    layers = [p.rsplit("/", 1)[-1] for p in sanity["layers"]]
    per_step = {
        m: [
            {
                "layer": layer,
                "spearman": _num(sanity["mean_spearman"][m][i]),
                "ssim": _num(sanity["mean_ssim"][m][i]),
                "n_constant": int(sanity["n_constant"][m][i]),
                "similar": bool(sanity["similar"][m][i]),
            }
            for i, layer in enumerate(layers)
        ]
        for m in methods
    }
    write_json(
        out["json"],
        {
            "images": used,
            "methods": methods,
            "notes": notes,
            "layers": layers,
            "rows": rows,
            "per_step": per_step,
            "threshold": threshold,
            "level": LEVEL,
            "n_boot": N_BOOT,
            "random_orders": RANDOM_ORDERS,
            "constant_tolerance": CONSTANT_TOLERANCE,
            "findings": method_findings(rows, per_step, len(used), threshold, LEVEL),
            "steps": hcfg["quality_steps"],
            "figures": ["randomization.png", "deletion_insertion.png"],
        },
    )


SPEARMAN_THRESHOLD = 0.9  # heatmaps.quality_spearman's default
RANDOM_ORDERS = 4  # random pixel orders per image, averaged, that the deletion and insertion areas are compared with
N_BOOT, LEVEL = 10000, 0.95  # bootstrap resamples and level of the intervals on method minus random
FEW_IMAGES = 5  # below this many images the findings say the intervals are rough

QUALITY_COLUMNS = [
    "method",
    "spearman_top",
    "spearman_randomized",
    "ssim_randomized",
    "n_constant_randomized",
    "n_blank",
    "similar_steps",
    "insensitive",
    "deletion_auc",
    "random_deletion_auc",
    "deletion_diff",
    "deletion_low",
    "deletion_high",
    "deletion_beats_random",
    "insertion_auc",
    "random_insertion_auc",
    "insertion_diff",
    "insertion_low",
    "insertion_high",
    "insertion_beats_random",
]


def _num(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def quality_row(name: str, sanity: dict, f: dict, random: dict, versus: dict) -> dict:
    """One method's row of quality.csv: the cascade's first and last step (constant maps counted as
    similarity 0), the steps whose maps stayed similar, and the areas beside the random order's."""
    layers = [p.rsplit("/", 1)[-1] for p in sanity["layers"]]
    row = {
        "method": name,
        "spearman_top": _num(sanity["mean_spearman"][name][0]),
        "spearman_randomized": _num(sanity["mean_spearman"][name][-1]),
        "ssim_randomized": _num(sanity["mean_ssim"][name][-1]),
        "n_constant_randomized": int(sanity["n_constant"][name][-1]),
        "n_blank": sanity["n_blank"][name],
        "similar_steps": " ".join(layer for layer, s in zip(layers, sanity["similar"][name], strict=False) if s),
        "insensitive": sanity["insensitive"][name],
    }
    for kind in ("deletion", "insertion"):
        v = versus[kind]
        row.update(
            {
                f"{kind}_auc": float(f[f"{kind}_auc"].mean()),
                f"random_{kind}_auc": float(random[f"{kind}_auc"].mean()),
                f"{kind}_diff": v["diff"],
                f"{kind}_low": v["low"],
                f"{kind}_high": v["high"],
                f"{kind}_beats_random": v["beats_random"],
            }
        )
    return row


def method_findings(rows: list[dict], per_step: dict, n_images: int, threshold: float, level: float) -> list[str]:
    """The method check in sentences: each method whose maps survive randomization, with the steps;
    the methods that do not beat a random pixel order, with the interval of the paired difference
    (named one by one when up to three fail or a method is worse than random, else grouped); the
    constant maps counted as changed; and the methods that pass everything."""
    out, flagged = [], set()
    pct = f"{level:.0%}"
    for r in rows:
        if not r["insensitive"]:
            continue
        m, steps = r["method"], per_step[r["method"]]
        similar = [s for s in steps if s["similar"]]
        first = similar[0]
        where = "the top layer is" if first is steps[0] else f"the layers down to {first['layer']} are"
        more = (
            f"; above {threshold:g} at {len(similar)} of {len(steps)} steps, the deepest after "
            f"{similar[-1]['layer']} ({similar[-1]['spearman']:.2f})"
            if len(similar) > 1
            else ""
        )
        out.append(
            f"{display_name(m)}: maps barely change when {where} randomized (Spearman {first['spearman']:.2f} after "
            f"{first['layer']}{more}) — it explains the image, not the model."
        )
        flagged.add(m)
    for kind in ("deletion", "insertion"):
        failing = [r for r in rows if not r[f"{kind}_beats_random"]]
        flagged.update(r["method"] for r in failing)

        def says(r, kind=kind):
            worse = r[f"{kind}_low"] > 0 if kind == "deletion" else r[f"{kind}_high"] < 0
            return (
                f"{display_name(r['method'])} {'is worse than' if worse else 'does not beat'} a random pixel order on {kind} "
                f"(AUC diff {r[f'{kind}_diff']:+.3f}, {pct} CI [{r[f'{kind}_low']:+.3f}, "
                f"{r[f'{kind}_high']:+.3f}], {n_images} images).",
                worse,
            )

        if len(failing) <= 3:
            out.extend(says(r)[0] for r in failing)
            continue
        worse = [says(r)[0] for r in failing if says(r)[1]]
        passing = [r["method"] for r in rows if r[f"{kind}_beats_random"]]
        out.append(
            f"On {kind}, {len(failing)} of {len(rows)} methods do not beat a random pixel order (the {pct} "
            f"CI of their AUC minus the random order's, over {n_images} images, includes 0 or lies on the "
            f"wrong side): {', '.join(display_name(r['method']) for r in failing)}"
            + (
                f"; only {', '.join(map(display_name, passing))} {'does' if len(passing) == 1 else 'do'}."
                if passing
                else "."
            )
            + " The table gives each interval."
        )
        out.extend(worse)
    constant = [r for r in rows if r["n_constant_randomized"]]
    if constant:
        out.append(
            "Maps that became constant count as fully changed (similarity 0), not left out; after every "
            "layer was randomized: "
            + ", ".join(f"{display_name(r['method'])} {r['n_constant_randomized']} of {n_images}" for r in constant)
            + "."
        )
    for r in rows:
        if r["n_blank"]:
            out.append(
                f"{display_name(r['method'])}: the original map of {r['n_blank']} of {n_images} images is constant, so "
                f"there is nothing to compare; those images are left out of its sanity check."
            )
    if n_images < FEW_IMAGES:
        out.append(
            f"With {n_images} image{'s' if n_images != 1 else ''} the intervals are rough (a bootstrap over "
            f"{n_images} values); heatmaps.quality_images sets how many the check uses."
        )
    clean = [r["method"] for r in rows if r["method"] not in flagged]
    if clean:
        out.append(
            f"Pass every check (maps change from the first randomized layer on; better than a random order "
            f"on deletion and insertion): {', '.join(map(display_name, clean))}."
        )
    return out


def plot_quality(sanity: dict, faithful: dict, methods: list[str], figures: Path) -> None:
    """randomization.png and deletion_insertion.png (and their SVGs): a line per method in its registry
    colour and display name (dashed and marked x at the flagged steps), the threshold, legends beside."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 3.2))
    steps = np.arange(len(sanity["layers"]) + 1)
    marker = 3 if len(steps) <= 20 else 0
    for m in methods:
        curve = np.r_[1.0, sanity["mean_spearman"][m]]
        ax.plot(
            steps,
            curve,
            marker="o",
            ms=marker,
            lw=1.2,
            color=method_colour(m),
            label=display_name(m) + (" (flagged)" if sanity["insensitive"][m] else ""),
            ls="--" if sanity["insensitive"][m] else "-",
        )
        flagged = np.r_[False, sanity["similar"][m]]
        ax.plot(steps[flagged], curve[flagged], "x", ms=6, color=method_colour(m))
    ax.axhline(sanity.get("threshold", SPEARMAN_THRESHOLD), color="grey", lw=0.8, ls=":")
    labels = ["original"] + [p.rsplit("/", 1)[-1] for p in sanity["layers"]]
    depth_ticks(ax, steps, labels, set(pick_layers(labels)))
    ax.set_ylabel("Spearman to the original map", fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("Cascading randomization of the weights, from the top (Adebayo et al. 2018)", fontsize=8)
    ax.grid(alpha=0.3)
    legend_beside(ax, fontsize=6.5)
    fig.tight_layout()
    save_figure(fig, figures / "randomization.png")

    fig, axes = plt.subplots(1, 2, figsize=(FIGURE_WIDTH_IN, 3.0))
    any_f = next(iter(faithful.values()))
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=False):
        for m in methods:
            ax.plot(
                any_f["fractions"],
                faithful[m][kind].mean(axis=0),
                color=method_colour(m),
                lw=1.2,
                label=display_name(m),
            )
        ax.plot(
            any_f["fractions"], any_f["random"][kind].mean(axis=0), color="grey", ls=":", lw=2, label="random order"
        )
        ax.set_title(
            f"{kind}: class probability as pixels are {'removed' if kind == 'deletion' else 'added'}", fontsize=7.5
        )
        ax.set_xlabel("fraction of pixels, in the order of the map", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    legend_beside(axes[1], fontsize=6.5)
    fig.tight_layout()
    save_figure(fig, figures / "deletion_insertion.png")

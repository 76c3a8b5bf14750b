"""The method check's table and sentences (stage method_quality): per heatmap method, how its maps
change under cascading weight randomization (Adebayo et al. 2018) and how its deletion and insertion
curves (Petsiuk et al. 2018) compare with a random pixel order, only what the numbers say."""

from __future__ import annotations

import numpy as np

from convlens.attribution.registry import display_name

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


def num(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def quality_row(name: str, sanity: dict, f: dict, random: dict, versus: dict) -> dict:
    """One method's row of quality.csv: the cascade's first and last step (constant maps counted as
    similarity 0), the steps whose maps stayed similar, and the areas beside the random order's."""
    layers = [p.rsplit("/", 1)[-1] for p in sanity["layers"]]
    row = {
        "method": name,
        "spearman_top": num(sanity["mean_spearman"][name][0]),
        "spearman_randomized": num(sanity["mean_spearman"][name][-1]),
        "ssim_randomized": num(sanity["mean_ssim"][name][-1]),
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


def per_step(sanity: dict, methods: list[str]) -> dict:
    """{method: one entry per randomization step: layer, mean Spearman and SSIM to the original maps,
    constant maps, whether the step stayed above the threshold}."""
    layers = [p.rsplit("/", 1)[-1] for p in sanity["layers"]]
    return {
        m: [
            {
                "layer": layer,
                "spearman": num(sanity["mean_spearman"][m][i]),
                "ssim": num(sanity["mean_ssim"][m][i]),
                "n_constant": int(sanity["n_constant"][m][i]),
                "similar": bool(sanity["similar"][m][i]),
            }
            for i, layer in enumerate(layers)
        ]
        for m in methods
    }


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
                f"{display_name(r['method'])} {'is worse than' if worse else 'does not beat'} a random pixel order "
                f"on {kind} "
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

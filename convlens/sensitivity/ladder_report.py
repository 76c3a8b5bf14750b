"""The equivariance ladder and the Lie derivative in numbers for the report: per layer the mean over
images with a 95 % bootstrap interval (images resampled, ``convlens.stats.mean_ci``), and the findings'
sentences drawn from them.

Ladder (``rung_table``): per geometric kind, layer and rung (``equivariance_error``, ``..._perm``,
``..._linear``), each held-out image's mean over the kind's transforms, then the mean over images. The
same-channel error is taken on the images that have rung rows only (the held-out ones), so the rungs
compare like with like.

Lie derivative (``lie_table``): per generator and layer (``output`` included), the mean over images
of the per-image ``lie_derivative`` rows.

Sentences:

- ladder (``ladder_sentences``): per geometric kind, at the first and the deepest probed layer, the
  share of the same-channel error e₀ that a channel permutation (e₀ − e_perm)/e₀ and a 1×1 linear map
  (e₀ − e_linear)/e₀ explain; only where e₀ ≥ ``LADDER_FLOOR`` (below it there is little to explain).
- Lie derivative (``lie_sentences``): per generator, the probed layer with the largest increase in mean
  relative Lie derivative over the previous probed layer ("where equivariance breaks"); only when that
  increase is positive and at least ``BREAK_SHARE`` of the generator's largest layer value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from convlens.sensitivity.ladder import RUNGS
from convlens.stats import mean_ci
from convlens.transform_kinds import REGISTRY

SAME = "equivariance_error"
RUNG_ORDER = (SAME, RUNGS["perm"], RUNGS["linear"])
LADDER_FLOOR = 0.05  # a same-channel error below this gets no ladder sentence
BREAK_SHARE = 0.1  # the largest step must be at least this share of the largest layer value
N_BOOT = 2000


def _with_ci(per_image: pd.DataFrame, keys: list[str], seed: int) -> pd.DataFrame:
    """Rows keys + mean, ci_low, ci_high, n from an (image × keys) table of values."""
    wide = per_image.pivot_table(index="image", columns=keys, values="value", aggfunc="mean")
    if wide.empty:
        return pd.DataFrame(columns=[*keys, "mean", "ci_low", "ci_high", "n"])
    stats = mean_ci(wide.to_numpy(), n_boot=N_BOOT, seed=seed)
    out = wide.columns.to_frame(index=False)
    for name in ("mean", "ci_low", "ci_high", "n"):
        out[name] = stats[name]
    out["n"] = out["n"].astype(int)
    return out


def rung_table(table: pd.DataFrame, kinds: dict[str, str], seed: int = 0) -> pd.DataFrame:
    """Columns kind, layer, metric, mean, ci_low, ci_high, n (see the module docstring); ``kinds``:
    transform name → kind. Empty when the table has no rung rows."""
    rows = table[table["metric"].isin(RUNG_ORDER) & (table["transform"] != "identity")]
    scored = set(rows.loc[rows["metric"] != SAME, "image"])
    rows = rows[rows["image"].isin(scored)].assign(kind=lambda f: f["transform"].map(kinds))
    if rows.empty:
        return pd.DataFrame(columns=["kind", "layer", "metric", "mean", "ci_low", "ci_high", "n"])
    per_image = rows.groupby(["image", "kind", "layer", "metric"], as_index=False)["value"].mean()
    return _with_ci(per_image, ["kind", "layer", "metric"], seed)


def lie_table(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Columns generator, layer, mean, ci_low, ci_high, n of the ``lie_derivative`` rows (empty: none)."""
    rows = table[table["metric"] == "lie_derivative"].rename(columns={"transform": "generator"})
    if rows.empty:
        return pd.DataFrame(columns=["generator", "layer", "mean", "ci_low", "ci_high", "n"])
    return _with_ci(rows[["image", "generator", "layer", "value"]], ["generator", "layer"], seed)


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f} %"


def _explains(e0: float, e: float) -> str:
    """``explains 35 %``, or ``explains none`` where the held-out error did not drop (a map fit on few
    images can score worse held-out than no map)."""
    return f"explains {_pct(e0 - e, e0)}" if e < e0 and round(100 * (e0 - e) / e0) > 0 else "explains none"


def _short(layer: str) -> str:
    return layer.rsplit("/", 1)[-1]


def ladder_sentences(rungs: pd.DataFrame, layers: list[str]) -> list[list[dict]]:
    """Per geometric kind (registry order), one sentence for the first and the deepest probed layer
    that have all three rungs (see the module docstring)."""
    if rungs.empty:
        return []
    out = []
    for kind in [k for k in REGISTRY if k in set(rungs["kind"])]:
        sub = rungs[rungs["kind"] == kind].pivot_table(index="layer", columns="metric", values="mean")
        n = int(rungs.loc[rungs["kind"] == kind, "n"].max())
        complete = [la for la in layers if la in sub.index and sub.loc[la].reindex(RUNG_ORDER).notna().all()]
        picked = list(dict.fromkeys(complete[:1] + complete[-1:]))
        parts = []
        for layer in picked:
            e0, e1, e2 = (float(sub.loc[layer, m]) for m in RUNG_ORDER)
            if e0 < LADDER_FLOOR:
                continue
            verdict = (
                "most of what looks like broken equivariance is re-mapped channels"
                if (e0 - e2) / e0 >= 0.5
                else "most of the error is not a re-mapping of channels"
            )
            parts.append(
                f"at {_short(layer)}, a channel permutation {_explains(e0, e1)} of the same-channel "
                f"error ({e0:.2f} → {e1:.2f}) and a 1×1 linear map {_explains(e0, e2)} (→ {e2:.2f}): {verdict}"
            )
        if parts:
            words = REGISTRY[kind].words or kind
            out.append(
                [
                    {
                        "text": f"Under {words}, " + "; ".join(parts) + f" (mean over {n} held-out images; "
                        "the maps are fit on the held-apart fit set)."
                    }
                ]
            )
    return out


def lie_sentences(lie: pd.DataFrame, layers: list[str]) -> list[list[dict]]:
    """Per generator, where the relative Lie derivative rises most from one probed layer to the next
    (see the module docstring)."""
    if lie.empty:
        return []
    out = []
    for generator in dict.fromkeys(lie["generator"]):
        sub = lie[(lie["generator"] == generator) & (lie["layer"] != "output")].set_index("layer")
        order = [la for la in layers if la in sub.index and np.isfinite(sub.loc[la, "mean"])]
        if len(order) < 2:
            continue
        values = np.array([float(sub.loc[la, "mean"]) for la in order])
        steps = np.diff(values)
        k = int(np.argmax(steps))
        if steps[k] <= 0 or steps[k] < BREAK_SHARE * values.max():
            continue
        prev, layer = order[k], order[k + 1]
        out.append(
            [
                {
                    "text": f"Along {generator}, the Lie derivative says equivariance breaks most at {_short(layer)}: "
                    f"the relative Lie derivative rises from {values[k]:.2f} at {_short(prev)} to {values[k + 1]:.2f} "
                    f"(the largest step between probed layers; mean over {int(sub.loc[layer, 'n'])} images)."
                }
            ]
        )
    return out

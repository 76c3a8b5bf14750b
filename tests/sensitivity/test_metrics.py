"""Sensitivity metrics of one image (sensitivity.metrics) against known answers."""

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from convlens import transforms as tr  # noqa: E402
from convlens.core.graph import build_probe  # noqa: E402
from convlens.core.grids import layer_grids  # noqa: E402
from convlens.core.layers import feature_layers  # noqa: E402
from convlens.sensitivity import metrics as sensitivity  # noqa: E402
from convlens.sensitivity.analyzer import equivariance_sums  # noqa: E402


def run_metrics(model, image, specs, fill_mode="constant", label=None):
    """image_metrics for one image through ``model`` (as analyze_shard computes them) as a DataFrame."""
    h, w = image.shape[:2]
    layers = feature_layers(model)
    transforms = tr.build_transforms(specs)
    st = sensitivity.Study.build(transforms, h, w, layers, layer_grids(model, layers), fill_mode, 0.0)
    x = np.asarray(tr.warp(np.repeat(image[None], len(transforms), 0), st.matrices, fill_mode))
    probe = build_probe(model, layers, None)
    outs = [np.asarray(o) for o in probe(x)]
    acts, probs = outs[: len(layers)], outs[-1]
    heat = {"mean_map": acts[0].mean(axis=-1) if acts[0].shape[1:3] == (h, w) else np.ones((len(x), h, w))}
    stats = compiled_stats(st, acts)
    rows = sensitivity.image_metrics(st, "img", x, stats, probs, label, heat)
    return pd.DataFrame(rows), layers


def compiled_stats(st, acts):
    """The layer sums as the Analyzer's compiled step computes them (equivariance_sums), checked
    against the numpy reference (a full keras warp of every map)."""
    import tensorflow as tf

    step = tf.function(lambda *a: equivariance_sums(list(a), st.samplers, len(st.transforms)))
    stats = sensitivity.LayerStats(*([np.asarray(v) for v in part] for part in step(*acts)))
    reference = sensitivity.layer_stats(st, acts)
    for part in ("num", "den", "pooled"):
        for got, want in zip(getattr(stats, part), getattr(reference, part), strict=False):
            assert np.allclose(got, want, rtol=1e-4, atol=1e-6 * max(1.0, float(np.abs(want).max())))
    return stats


def random_cnn(shape=(24, 24, 3), seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.MaxPooling2D(2, name="p1")(x)
    x = keras.layers.Conv2D(8, 3, padding="valid", activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


def test_identity_gives_error_zero_and_cosine_one_exactly():
    image = np.random.default_rng(0).random((24, 24, 3)).astype("float32")
    df, layers = run_metrics(random_cnn(), image, [{"kind": "rotate", "angle_deg": 20}], label=1)
    ident = df[df["transform"] == "identity"].set_index(["layer", "metric"])["value"]
    for layer in layers:
        assert ident[(layer, "equivariance_error")] == 0.0
        assert ident[(layer, "invariance_cosine")] == 1.0
    assert ident[("input", "equivariance_floor")] == 0.0
    assert ident[("output", "top1_change")] == 0.0 and ident[("output", "kl_divergence")] == pytest.approx(0, abs=1e-12)
    assert ident[("mean_map", "heatmap_pearson")] == pytest.approx(1.0, abs=1e-12)
    # every image x transform x layer x metric is a row
    assert len(df) == 2 * (2 * len(layers) + 1 + 4 + 3)


def symmetric_kernel_network():
    """Convolutions whose kernels are mirror-symmetric left-right: the network commutes with hflip.

    The stride-2 'valid' layer on 29 px puts map pixel u at input 2u + 1 (centres 1..27, symmetric
    about the image centre 14): only the exact grid offsets make the flip a flip of that map.
    """
    keras.utils.set_random_seed(1)
    inp = keras.Input((29, 29, 3))
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="same3")(inp)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="valid", activation="relu", name="valid_s2")(x)
    x = keras.layers.MaxPooling2D(3, strides=1, padding="valid", name="pool3")(x)
    x = keras.layers.Conv2D(4, 5, padding="same", name="same5")(x)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            k, b = layer.get_weights()
            layer.set_weights([(k + k[:, ::-1]) / 2, b])
    return model


def test_symmetric_kernels_give_zero_hflip_equivariance_error():
    model = symmetric_kernel_network()
    image = np.random.default_rng(2).random((29, 29, 3)).astype("float32")
    df, layers = run_metrics(model, image, [{"kind": "hflip"}, {"kind": "rotate", "angle_deg": 30}])
    err = df[df["metric"] == "equivariance_error"].set_index(["transform", "layer"])["value"]
    for layer in layers:
        assert err[("hflip", layer)] < 1e-5, layer
        assert err[("rotate_30", layer)] > 1e-2  # the kernels are not rotation-symmetric
    grid = layer_grids(model, ["valid_s2"])["valid_s2"]
    assert (grid.ax, grid.bx, grid.width) == (2.0, 1.0, 14)


class CircularPad(keras.layers.Layer):
    """Wrap-around padding: with it a 'valid' convolution is a circular convolution."""

    def call(self, x):
        x = keras.ops.concatenate([x[:, -1:], x, x[:, :1]], axis=1)
        return keras.ops.concatenate([x[:, :, -1:], x, x[:, :, :1]], axis=2)


def test_circular_shift_leaves_pooled_features_of_a_circular_network_unchanged():
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, padding="valid", activation="relu", name="c1")(CircularPad()(inp))
    x = keras.layers.Conv2D(6, 3, padding="valid", activation="relu", name="c2")(CircularPad()(x))
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    image = np.random.default_rng(4).random((16, 16, 3)).astype("float32")
    df, _ = run_metrics(model, image, [{"kind": "shift", "dx": 5, "dy": -3}], fill_mode="wrap")
    cos = df[(df["metric"] == "invariance_cosine") & (df["transform"] == "shift_dx5_dy-3")]["value"]
    assert len(cos) == 2 and np.allclose(cos, 1.0, atol=1e-6)
    pred = df[(df["layer"] == "output") & (df["transform"] == "shift_dx5_dy-3")].set_index("metric")["value"]
    assert pred["top1_change"] == 0 and pred["prob_change"] < 1e-6


def test_map_agreement_of_known_maps():
    a = np.zeros((10, 10))
    a[2:5, 2:5] = 1.0
    a += np.linspace(0, 0.01, 100).reshape(10, 10)  # break ties
    mask = np.ones((10, 10), bool)
    same = sensitivity.map_agreement(a, a, mask)
    assert same["heatmap_pearson"] == pytest.approx(1.0) and same["heatmap_spearman"] == pytest.approx(1.0)
    assert same["heatmap_iou20"] == 1.0
    flipped = sensitivity.map_agreement(a, -a, mask)
    assert flipped["heatmap_pearson"] == pytest.approx(-1.0) and flipped["heatmap_iou20"] == 0.0
    assert np.isnan(sensitivity.map_agreement(a, np.zeros_like(a), mask)["heatmap_pearson"])


def test_relative_error_and_cosine_edge_cases():
    zero = np.zeros((2, 3, 3, 1))
    mask = np.ones((2, 3, 3), bool)
    assert sensitivity.relative_error(zero, zero, mask).tolist() == [0.0, 0.0]
    one = np.ones((2, 3, 3, 1))
    assert np.isnan(sensitivity.relative_error(one, zero, mask)).all()
    assert sensitivity.relative_error(2 * one, one, mask) == pytest.approx([1.0, 1.0])
    assert sensitivity.cosine_to_first(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])).tolist() == [1.0, 0.0, 1.0]
    # nothing measured is undefined, not perfect: an empty valid mask, a dead (all-zero) layer
    empty = np.zeros((2, 3, 3), bool)
    assert np.isnan(sensitivity.relative_error(2 * one, one, empty)).all()
    assert np.isnan(sensitivity.cosine_to_first(np.zeros((2, 4)))).all()


def row_by_row_agreement(a, b, mask):
    """An independent computation of one row's agreement: the masked pixels compressed, stats.pearson and
    stats.spearman, the top 20 % by a stable argsort."""
    from convlens.stats import pearson, spearman

    x, y = a[mask].astype(np.float64), b[mask].astype(np.float64)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"heatmap_pearson": np.nan, "heatmap_spearman": np.nan, "heatmap_iou20": np.nan}

    def top(v):
        out = np.zeros(v.size, bool)
        out[np.argsort(-v, kind="stable")[: max(1, int(np.ceil(0.2 * v.size)))]] = True
        return out

    ta, tb = top(x), top(y)
    return {
        "heatmap_pearson": pearson(x, y),
        "heatmap_spearman": spearman(x, y),
        "heatmap_iou20": float((ta & tb).sum() / (ta | tb).sum()),
    }


def test_map_agreements_at_once_are_the_row_by_row_answers():
    """Every row's map against the reference inside its own mask, at once: the numbers a row-by-row
    computation gives (ties, constant rows, small and empty masks included)."""
    rng = np.random.default_rng(4)
    reference = rng.random((9, 7))
    maps = rng.random((8, 9, 7))
    maps[1] = np.round(maps[1] * 3)  # many ties
    maps[2] = 0.5  # constant: NaN
    maps[3] = reference  # the same map
    masks = rng.random((8, 9, 7)) > 0.3
    masks[4] = False
    masks[4, 0, 0] = True  # one pixel: NaN
    masks[5] = False  # nothing valid: NaN
    masks[6] = True
    reference_tied = np.round(reference * 4)  # ties in the reference too
    for ref in (reference, reference_tied):
        together = sensitivity.map_agreements(ref, maps, masks)
        for k in range(len(maps)):
            alone = row_by_row_agreement(ref, maps[k], masks[k])
            for metric, value in alone.items():
                assert np.isclose(together[metric][k], value, rtol=1e-12, atol=1e-12, equal_nan=True), (k, metric)
    assert together["heatmap_pearson"][2] != together["heatmap_pearson"][2]  # NaN

"""The equivariance ladder (sensitivity.ladder): channel maps fit on held-apart images, scored on others."""

import itertools

import numpy as np
import pytest

from convlens.sensitivity import ladder

keras = pytest.importorskip("keras")

from convlens import transforms as tr  # noqa: E402
from convlens.core.grids import layer_grids  # noqa: E402
from convlens.core.layers import feature_layers  # noqa: E402
from convlens.sensitivity import metrics as sensitivity  # noqa: E402
from convlens.sensitivity.analyzer import Analyzer  # noqa: E402

GEOMETRIC = [{"kind": "rotate", "angle_deg": a} for a in (90, 180, -90)] + [{"kind": "hflip"}, {"kind": "vflip"}]
SIZE = 16  # even: a flip or 90° turn maps the 2×2 pooling blocks onto pooling blocks


def d4_kernels(bases: np.ndarray) -> np.ndarray:
    """(k, k, cin, 8 * n): the 8 flips/rotations of each of n base filters (k, k, cin, n)."""
    out = []
    for b in np.moveaxis(bases, -1, 0):
        for flip in (False, True):
            f = b[:, ::-1] if flip else b
            out += [np.rot90(f, r, axes=(0, 1)) for r in range(4)]
    return np.stack(out, axis=-1)


def conv_pool_model(kernels: np.ndarray, bias: np.ndarray, pool=keras.layers.MaxPooling2D):
    inputs = keras.Input((SIZE, SIZE, kernels.shape[2]))
    conv = keras.layers.Conv2D(kernels.shape[-1], kernels.shape[0], padding="same", activation="relu", name="conv")
    x = conv(inputs)
    x = pool(2, name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    conv.set_weights([kernels.astype("float32"), bias.astype("float32")])
    return model


def study_of(model, transforms=GEOMETRIC):
    layers = feature_layers(model)
    built = tr.build_transforms(transforms)
    return sensitivity.Study.build(built, SIZE, SIZE, layers, layer_grids(model, layers), "constant", 0.0), layers


def maps_of(model, study, pixels):
    n_t = len(study.transforms)
    x = np.asarray(tr.warp(np.repeat(pixels, n_t, 0), np.tile(study.matrices, (len(pixels), 1, 1))))
    return Analyzer(model, study.layers, "unit", samplers=study.samplers).run(x, n_t), x


def fit(study, activations, n_images, lam=ladder.DEFAULT_LAMBDA):
    n_t = len(study.transforms)
    sums = []
    for j, act in enumerate(activations):
        per_t = []
        for t in range(n_t):
            if not study.geometric[t]:
                per_t.append(None)
                continue
            s = ladder.PairSums(act.shape[-1])
            for i in range(n_images):
                s.add(*ladder.expected_and_got(act[i * n_t], act[i * n_t + t], study.samplers[j][t]))
            per_t.append(s)
        sums.append(per_t)
    return ladder.fit_maps(study.layers, sums, lam, [f"im{i}" for i in range(n_images)])


def ladder_errors(model, seed, n_fit=6, n_eval=4):
    """Maps fit on n_fit images; per rung (layers, T) mean errors on n_eval other images."""
    study, layers = study_of(model)
    pixels = np.random.default_rng(seed).random((n_fit + n_eval, SIZE, SIZE, 1)).astype("float32")
    out, _ = maps_of(model, study, pixels[:n_fit])
    maps = fit(study, out["activations"], n_fit)
    n_t = len(study.transforms)
    held, x = maps_of(model, study, pixels[n_fit:])
    import tensorflow as tf

    acts = [tf.constant(a) for a in held["activations"]]
    rungs = ladder.ladder_sums(acts, study.samplers, n_t, maps, ("perm", "linear"))
    errors = {"same": [], "perm": [], "linear": []}
    for j in range(len(layers)):
        den = held["den"][j]
        errors["same"].append(np.sqrt(held["num"][j] / den).reshape(n_eval, n_t).mean(axis=0))
        for rung in ("perm", "linear"):
            errors[rung].append(np.sqrt(np.asarray(rungs[rung][j]) / den).reshape(n_eval, n_t).mean(axis=0))
    return {k: np.array(v) for k, v in errors.items()}, maps, held, study


@pytest.mark.parametrize("pool", [keras.layers.MaxPooling2D, keras.layers.AveragePooling2D])
def test_a_d4_filter_bank_is_equivariant_up_to_its_channel_permutation(pool):
    """Filters that are the 8 flips/rotations of 3 base filters: at the conv layer and the 2×2 pool
    after it, every 90° turn and flip is a channel permutation, so the permutation and the linear rung
    score ≤ 1e-3 on held-out images while the same-channel error is large."""
    rng = np.random.default_rng(0)
    bases = rng.normal(size=(3, 3, 1, 3))
    bias = np.repeat(rng.normal(scale=0.1, size=3), 8)
    errors, maps, _, study = ladder_errors(conv_pool_model(d4_kernels(bases), bias, pool), seed=1)
    assert errors["same"].shape == (2, 6)  # identity first, then the 5 transforms
    assert np.all(errors["same"][:, 1:] > 0.15), errors["same"]
    assert np.all(errors["perm"] <= 1e-3), errors["perm"]
    assert np.all(errors["linear"] <= 1e-3), errors["linear"]
    # the fitted permutation is the known one: rotating by 90° moves filter r of an orbit to r ± 1
    for t, source in enumerate(maps.source[0]):
        assert sorted(source) == list(range(24)) and np.allclose(maps.scale[0][t], 1, atol=1e-3)
    assert np.array_equal(maps.source[0][0], np.arange(24))
    kernels = d4_kernels(bases)[:, :, 0]
    for t, axis in ((4, 1), (5, 0)):  # hflip, vflip: channel j of φ(Tx) is T φ(x) of the filter T⁻¹ K_j
        assert np.allclose(kernels, np.flip(kernels[:, :, maps.source[0][t]], axis=axis))


def test_random_filters_are_not_a_permutation_of_themselves():
    rng = np.random.default_rng(3)
    kernels = rng.normal(size=(3, 3, 1, 16))
    errors, _, _, _ = ladder_errors(conv_pool_model(kernels, np.zeros(16)), seed=4)
    assert np.all(errors["perm"][:, 1:] > 0.25), errors["perm"]  # measured: 0.35-0.58
    assert np.all(errors["perm"] <= errors["same"] + 1e-6)  # held-out, still never worse here: identity is a candidate
    assert np.all(errors["linear"][:, 1:] < errors["perm"][:, 1:])
    assert np.all(errors["perm"][:, 0] < 1e-5)  # the identity row: the identity permutation, scale 1


def test_on_its_fit_set_the_permutation_rung_is_never_worse_than_the_same_channels():
    """The identity is a candidate: summed over the fit images' valid pixels, the fitted permutation's
    squared error is at most the same-channel one (the linear rung too, up to its ridge)."""
    rng = np.random.default_rng(11)
    model = conv_pool_model(rng.normal(size=(3, 3, 1, 12)), rng.normal(scale=0.1, size=12))
    study, _ = study_of(model)
    out, _ = maps_of(model, study, rng.random((4, SIZE, SIZE, 1)).astype("float32"))
    maps = fit(study, out["activations"], 4)
    import tensorflow as tf

    n_t = len(study.transforms)
    acts = [tf.constant(a) for a in out["activations"]]
    rungs = ladder.ladder_sums(acts, study.samplers, n_t, maps, ("perm", "linear"))
    for j in range(len(acts)):
        same = out["num"][j].reshape(4, n_t).sum(axis=0)
        perm = np.asarray(rungs["perm"][j]).reshape(4, n_t).sum(axis=0)
        linear = np.asarray(rungs["linear"][j]).reshape(4, n_t).sum(axis=0)
        assert np.all(perm <= same * (1 + 1e-5) + 1e-6), (perm, same)
        assert np.all(linear <= perm * (1 + 1e-3) + 1e-6), (linear, perm)
        assert np.any(perm[1:] < 0.9 * same[1:])  # and it finds better maps than the identity


def test_the_hungarian_fit_is_the_best_of_every_permutation():
    """C = 4: the fitted permutation's cost equals the minimum over all 24 (brute force), and its
    scales are the least-squares non-negative scales."""
    rng = np.random.default_rng(5)
    p = rng.normal(size=(200, 4))
    q = np.abs(p[:, [2, 0, 3, 1]]) * [1.5, 0.5, 2.0, 1.0] + 0.3 * rng.normal(size=(200, 4))
    s = ladder.PairSums(4)
    s.add(p, q)
    source, scale = ladder.fit_permutation(s)

    def residual(perm):
        total = 0.0
        for j, i in enumerate(perm):
            k = max(p[:, i] @ q[:, j], 0) / (p[:, i] @ p[:, i])
            total += np.square(q[:, j] - k * p[:, i]).sum()
        return total

    best = min(itertools.permutations(range(4)), key=residual)
    assert tuple(source) == best
    assert np.isclose(residual(source), np.square(q - p[:, source] * scale).sum())
    assert np.all(scale >= 0)
    for j, i in enumerate(source):  # the scale minimises the channel's residual
        grid = np.linspace(0, 3, 3001)
        assert scale[j] <= grid[np.argmin([np.square(q[:, j] - g * p[:, i]).sum() for g in grid])] + 1e-3


def test_streamed_sums_equal_the_sums_of_the_concatenated_pairs():
    rng = np.random.default_rng(6)
    chunks = [(rng.normal(size=(n, 5)), rng.normal(size=(n, 5))) for n in (7, 1, 30)]
    streamed = ladder.PairSums(5)
    for p, q in chunks:
        streamed.add(p, q)
    whole = ladder.PairSums(5)
    p, q = np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])
    whole.add(p, q)
    for name in ("pp", "pq", "p", "q", "qq"):
        assert np.allclose(getattr(streamed, name), getattr(whole, name))
    assert streamed.count == whole.count == 38
    assert np.allclose(whole.pp, p.T @ p) and np.allclose(whole.qq, (q**2).sum(0)) and np.allclose(whole.pq, p.T @ q)


def test_the_linear_fit_is_the_ridge_closed_form_with_an_unpenalised_bias():
    rng = np.random.default_rng(7)
    p = rng.normal(size=(300, 4)) + 2.0
    q = p @ rng.normal(size=(4, 4)) + [1.0, -2.0, 0.5, 0.0] + 0.1 * rng.normal(size=(300, 4))
    s = ladder.PairSums(4)
    s.add(p, q)
    # λ = 0: ordinary least squares with an intercept (numpy lstsq)
    w0, b0 = ladder.fit_linear(s, 0.0)
    design = np.hstack([p, np.ones((300, 1))])
    coef = np.linalg.lstsq(design, q, rcond=None)[0]
    assert np.allclose(w0, coef[:4], atol=1e-8) and np.allclose(b0, coef[4], atol=1e-8)
    # λ > 0: the normal equations of ‖q − [p 1] β‖² + penalty·‖W − I‖², penalty λ·tr(centred scatter)/C,
    # the bias unpenalised
    lam = 0.5
    centred = p - p.mean(0)
    penalty = lam * np.trace(centred.T @ centred) / 4
    reg = np.diag([penalty] * 4 + [0.0])
    prior = np.vstack([np.eye(4), np.zeros((1, 4))])
    coef = np.linalg.solve(design.T @ design + reg, design.T @ q + reg @ prior)
    w, b = ladder.fit_linear(s, lam)
    assert np.allclose(w, coef[:4], atol=1e-8) and np.allclose(b, coef[4], atol=1e-8)


def test_lambda_zero_on_collinear_channels_still_solves_and_fits_exactly():
    """Channel 3 = channel 0 + channel 1 on the fit set: plain least squares is singular; the floor of
    1e-12 of the mean eigenvalue keeps it solvable, and the fitted map still reproduces q."""
    rng = np.random.default_rng(3)
    p = rng.normal(size=(200, 3))
    p = np.hstack([p, p[:, :1] + p[:, 1:2]])
    q = p[:, [1, 0, 2, 3]] * 2.0
    s = ladder.PairSums(4)
    s.add(p, q)
    w, b = ladder.fit_linear(s, 0.0)
    assert np.all(np.isfinite(w)) and np.abs(w).max() < 10
    assert np.allclose(p @ w + b, q, atol=1e-6)


def mapped_numerators(p: np.ndarray, q: np.ndarray, maps, j: int, t: int) -> tuple[float, float]:
    """The independent numpy reference of the step's numerators: ‖q − M p‖² for the permutation and the
    linear map."""
    perm = p[:, maps.source[j][t]] * maps.scale[j][t]
    linear = p @ maps.weight[j][t] + maps.bias[j][t]
    return float(np.square(q - perm).sum()), float(np.square(q - linear).sum())


def test_the_compiled_numerators_equal_the_numpy_ones_and_rows_are_geometric_only():
    rng = np.random.default_rng(8)
    model = conv_pool_model(rng.normal(size=(3, 3, 1, 6)), np.zeros(6))
    transforms = [{"kind": "brightness", "delta": 0.1}, *GEOMETRIC[:2], {"kind": "shift", "dx": 1, "dy": 2}]
    study, layers = study_of(model, transforms)
    pixels = rng.random((3, SIZE, SIZE, 1)).astype("float32")
    out, _ = maps_of(model, study, pixels)
    n_t = len(study.transforms)
    maps = fit(study, out["activations"], 2)
    import tensorflow as tf

    got = ladder.ladder_sums(
        [tf.constant(a) for a in out["activations"]], study.samplers, n_t, maps, ("perm", "linear")
    )
    for j, act in enumerate(out["activations"]):
        for i in range(3):
            for t in range(n_t):
                if not study.geometric[t]:
                    continue
                p, q = ladder.expected_and_got(act[i * n_t], act[i * n_t + t], study.samplers[j][t])
                perm, linear = mapped_numerators(p, q, maps, j, t)
                assert np.isclose(got["perm"][j][i * n_t + t], perm, rtol=1e-4, atol=1e-6)
                assert np.isclose(got["linear"][j][i * n_t + t], linear, rtol=1e-4, atol=1e-6)
    num = {k: [np.asarray(v)[:n_t] for v in vals] for k, vals in got.items()}
    rows = ladder.ladder_rows(study, "im", num, [d[:n_t] for d in out["den"]])
    assert {r["metric"] for r in rows} == set(ladder.RUNGS.values())
    assert len(rows) == 2 * len(layers) * int(study.geometric.sum())
    assert all(r["transform"] != study.transforms[0].name or study.geometric[0] for r in rows)
    assert all(np.isfinite(r["value"]) and r["value"] >= 0 for r in rows)


def test_channels_without_signal_on_the_fit_set_keep_their_own_channel():
    """Zero on every fit pixel: no evidence for any map, so both rungs fall back to the same channel."""
    rng = np.random.default_rng(9)
    p = np.hstack([rng.normal(size=(50, 2)), np.zeros((50, 2))])
    s = ladder.PairSums(4)
    s.add(p, p[:, [1, 0, 2, 3]])
    source, scale = ladder.fit_permutation(s)
    assert list(source) == [1, 0, 2, 3] and np.allclose(scale, 1)
    w, b = ladder.fit_linear(s, 1e-3)
    assert np.allclose(w[2:, 2:], np.eye(2)) and np.allclose(w[:2, 2:], 0) and np.allclose(b[2:], 0, atol=1e-12)


def test_saved_maps_load_back(tmp_path):
    s = ladder.PairSums(3)
    s.add(np.eye(3), np.eye(3)[:, [1, 2, 0]])
    maps = ladder.fit_maps(["conv"], [[None, s]], 1e-3, ["a", "b"])
    assert list(maps.source[0][1]) == [1, 2, 0]  # q_j = p_source_j and list(maps.source[0][0]) == [0, 1, 2]
    np.savez(tmp_path / "maps.npz", **maps.arrays())
    back = ladder.ChannelMaps.load(tmp_path / "maps.npz")
    assert back.layers == ["conv"] and back.fit_images == ["a", "b"] and back.lam == 1e-3
    assert list(back.fitted) == [False, True]
    for name in ("source", "scale", "weight", "bias"):
        assert np.array_equal(getattr(back, name)[0], getattr(maps, name)[0])
